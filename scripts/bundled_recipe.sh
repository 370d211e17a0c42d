#!/usr/bin/env bash
# The bundled model's recipe from scratch (docs/models/sana-wm-synth.md, "How to reproduce it"), resumable step by
# step: rerun it after an interruption and it continues where it stopped. Everything runs on a CPU; on a GPU
# add distributed.device: cuda to the config (CONFIG names another config file).
#
#   WORK=/path/to/workdir TRAIN_SECONDS=4800 scripts/bundled_recipe.sh [data|codec|encode|train|export|eval|all]
#
# Stages:
#   data      render SCENES clips (scene seeds 0.., evaluation uses 1000+, the bundled examples 7000+)
#   codec     fit the linear patch codec (sana-wm vae fit-pca: 16x16 pixels x 8 frames -> 128 channels)
#   encode    encode every clip's first 97 frames into the latent cache
#   train     the transformer in its warp-prior wrapper (CONFIG, default configs/train/bundled_synth.yaml),
#             TRAIN_SECONDS at most; INIT_FROM starts from other weights of the same transformer (e.g. the
#             shipped src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt, with the shipped codec copied to
#             $WORK/codec first: a transformer belongs to the latents it was trained on)
#   export    the model folder (raw weights, as shipped), the codec as its autoencoder
#   eval      sana-wm eval synth on held-out scenes
set -euo pipefail
WORK=${WORK:-runs/bundled}
SCENES=${SCENES:-256}
REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE=${1:-all}
mkdir -p "$WORK"

if [[ $STAGE == data || $STAGE == all ]]; then
  [[ -f $WORK/data/index.json ]] || sana-wm data synth --out "$WORK/data" --scenes "$SCENES" --seed 0 \
      --seconds 7 --size 128x128 --codec npz --no-depth
fi
if [[ $STAGE == codec || $STAGE == all ]]; then
  [[ -f $WORK/codec/config.json ]] || sana-wm vae fit-pca --data "$WORK/data" --out "$WORK/codec" \
      --patch-size 16 --channels 128 --frames 97 --max-clips 96
fi
if [[ $STAGE == encode || $STAGE == all ]]; then
  # ENCODE_PARTS processes of one thread each (default 2, one per core of a laptop CPU)
  parts=${ENCODE_PARTS:-2}
  pids=()
  for k in $(seq 1 "$parts"); do
    OMP_NUM_THREADS=1 sana-wm vae encode "$WORK/data" --vae "$WORK/codec" --frames 97 --part "$k/$parts" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done   # a failed part stops the recipe (set -e)
fi
if [[ $STAGE == train || $STAGE == all ]]; then
  sed "s#^output_dir: .*#output_dir: $WORK/transformer#; s#^  root: data/synth-train.*#  root: $WORK/data#; s#runs/codec#$WORK/codec#g" \
      "$REPO/${CONFIG:-configs/train/bundled_synth.yaml}" > "$WORK/train.yaml"
  resume=(); ls "$WORK/transformer/checkpoints"/step-* >/dev/null 2>&1 && resume=(--resume)
  if [[ ${#resume[@]} -eq 0 && -n ${INIT_FROM:-} ]]; then
    sed -i "s#^  name: sana-wm-synth.*#&\n  init_from: $INIT_FROM#" "$WORK/train.yaml"
  fi
  # TRAIN_SECONDS bounds this run (0: no bound); checkpoints come every 50 steps, so a stop loses little.
  timeout "${TRAIN_SECONDS:-0}" sana-wm train "$WORK/train.yaml" "${resume[@]}" || true
fi
if [[ $STAGE == export || $STAGE == all ]]; then
  last=$(ls -d "$WORK/transformer/checkpoints"/step-* | sort -t- -k2 -n | tail -1)
  sana-wm model export "$last" --vae "$WORK/codec" --out "$WORK/model" --steps "${SAMPLE_STEPS:-3}" \
      --shift "${SAMPLE_SHIFT:-3.0}" --overwrite --no-ema
fi
if [[ $STAGE == eval || $STAGE == all ]]; then
  sana-wm eval synth --model "$WORK/model" --seeds 1000-1003 --trajectories explore:walk,explore:orbit \
      --marks 1,5,10 --out "$WORK/eval"
fi
