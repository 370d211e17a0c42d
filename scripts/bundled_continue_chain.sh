#!/usr/bin/env bash
# The sessions 7-8 continuation of the bundled weights (docs/models/sana-wm-synth.md, "Training record"; it
# was evaluated and NOT shipped): the session-6 (shipped) weights trained in LEGS legs, each a fresh optimiser
# started from the previous leg's last checkpoint, on the data of configs/train/bundled_synth_continue.yaml
# (640 clips encoded with the shipped codec). The legs are what the development sessions ran (some were
# stopped by hand; a stage of the same length at the same learning rate is the same run):
#
#   leg  steps                          objective
#   1    750 at lr 3e-4                 plain loss (session 7)
#   2    400 at 3e-4, 300 at 1e-4       plain loss (session 7's "flow fork")
#   3    450 at 3e-4                    plain loss (session 7's continuation, stopped in session 8)
#   4    500 at 3e-4, 300 at 1e-4       channel-weighted loss (objective.channel_weights, power 0.5)
#
#   WORK=runs/bundled INIT_FROM=src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt scripts/bundled_continue_chain.sh
#
# WORK must hold data/ (the clips with their latent cache) and codec/ (the shipped codec), as the recipe
# script leaves them (see the header of configs/train/bundled_synth_continue.yaml). INIT_FROM names the
# session-6 weights: `git show 57fe3ab:src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt > runs/session6.pt`.
# VAL (optional) is a held-out dataset for the validation loss. Rerun after an interruption: finished legs
# are skipped and the current one resumes. LEGS (default 4) stops the chain early; the last leg's last
# checkpoint is exported to $WORK/model as the shipped weights were (3 steps, shift 3, raw weights).
# CONTROL=1 runs leg 4 with the plain loss instead (the control arm of session 8; into chain/leg4-control).
# DRY_RUN=1 only writes each leg's config ($WORK/chain/legN/train.yaml) and checks that it loads.
set -euo pipefail
WORK=${WORK:-runs/bundled}
REPO=$(cd "$(dirname "$0")/.." && pwd)
LEGS=${LEGS:-4}
init=${INIT_FROM:?INIT_FROM must name the session-6 weights}

for leg in $(seq 1 "$LEGS"); do
  out=$WORK/chain/leg$leg
  if [[ $leg == 4 && -n ${CONTROL:-} ]]; then out=$WORK/chain/leg4-control; fi
  mkdir -p "$out"
  total=$(python - "$REPO/configs/train/bundled_synth_continue.yaml" "$out/train.yaml" "$leg" "$init" "$WORK" "${VAL:-}" \
    "${CONTROL:-}" <<'EOF'
import os
import sys

import yaml

base, dest, leg, init, work, val, control = sys.argv[1:3] + [int(sys.argv[3])] + sys.argv[4:8]
stages = {1: [("main", 750, 3e-4)], 2: [("main", 400, 3e-4), ("anneal", 300, 1e-4)], 3: [("main", 450, 3e-4)],
          4: [("main", 500, 3e-4), ("anneal", 300, 1e-4)]}[leg]
cfg = yaml.safe_load(open(base))
cfg["output_dir"] = os.path.dirname(dest)
cfg["data"]["root"] = f"{work}/data"
cfg["model"]["init_from"] = init
cfg["optimizer"]["lr"] = stages[0][2]
cfg["stages"] = [{"name": n, "steps": s, "lr": lr} for n, s, lr in stages]
if leg >= 4 and not control:
    cfg["objective"]["channel_weights"] = f"{work}/codec"
    cfg["objective"]["channel_weight_power"] = 0.5
if val:
    cfg["validation"] = {**cfg["validation"], "root": val, "num_batches": 4}
cfg["checkpoint"]["keep_last"] = 2
yaml.safe_dump(cfg, open(dest, "w"), sort_keys=False)
print(sum(s for _, s, _ in stages))  # the leg's length: its last checkpoint's step
EOF
)
  final=$(printf "%s/checkpoints/step-%08d" "$out" "$total")
  if [[ -n ${DRY_RUN:-} ]]; then
    python -c "from sana_wm.train.config import load_config; import sys; load_config(sys.argv[1])" "$out/train.yaml"
    echo "leg $leg: $total steps from $init -> $final"
    init=$final/model.safetensors
    continue
  fi
  if [[ ! -f $final/model.safetensors ]]; then
    resume=(); ls "$out/checkpoints"/step-* >/dev/null 2>&1 && resume=(--resume)
    sana-wm train "$out/train.yaml" "${resume[@]}"
  fi
  init=$final/model.safetensors
done
[[ -n ${DRY_RUN:-} ]] && exit 0
sana-wm model export "$(dirname "$init")" --vae "$WORK/codec" --out "$WORK/model" --steps 3 --shift 3 --no-ema \
    --overwrite
