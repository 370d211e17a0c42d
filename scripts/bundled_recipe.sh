#!/usr/bin/env bash
# The bundled model's whole recipe (docs/models/sana-wm-synth.md), resumable step by step: rerun it after an
# interruption (or in a later session) and it continues where it stopped. Everything runs on a CPU; on a GPU
# set DEVICE via the training config (distributed.device) for the transformer.
#
#   WORK=/path/to/workdir VAE_STEPS=1200 TRAIN_SECONDS=3600 scripts/bundled_recipe.sh [data|vae|encode|train|decoder|export|eval|all]
#
# On a GPU: CONFIG=configs/train/bundled_synth_gpu.yaml (batch 32, reads the latent cache alone, so only
# $WORK/data/index.json and $WORK/data/latents/ need to be on that machine for the train stage).
set -euo pipefail
WORK=${WORK:-runs/bundled}
SCENES=${SCENES:-384}
VAE_STEPS=${VAE_STEPS:-1200}
REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE=${1:-all}
mkdir -p "$WORK"

if [[ $STAGE == data || $STAGE == all ]]; then
  # Scene seeds 0..SCENES-1 (evaluation uses 1000+, the bundled examples 7000+).
  [[ -f $WORK/data/index.json ]] || sana-wm data synth --out "$WORK/data" --scenes "$SCENES" --seed 0 \
      --seconds 7 --size 128x128 --codec npz --no-depth
fi
if [[ $STAGE == vae || $STAGE == all ]]; then
  # VAE=DIR reuses a trained VAE (e.g. the shipped src/sana_wm/assets/sana-wm-synth/ltx2_causal_vae): the
  # transformer's latents must come from the VAE it will be shipped with.
  if [[ -n ${VAE:-} && ! -d $WORK/vae/vae ]]; then mkdir -p "$WORK/vae" && cp -r "$VAE" "$WORK/vae/vae"; fi
  if [[ ! -d $WORK/vae/vae ]]; then
    resume=(); [[ -f $WORK/vae/checkpoint.pt ]] && resume=(--resume)
    sana-wm vae train --data "$WORK/data" --out "$WORK/vae" --steps "$VAE_STEPS" --batch-size 4 --lr 2e-3 "${resume[@]}"
  fi
fi
if [[ $STAGE == encode || $STAGE == all ]]; then
  # ENCODE_PARTS processes of one thread each (default 2, one per core of a laptop CPU)
  parts=${ENCODE_PARTS:-2}
  pids=()
  for k in $(seq 1 "$parts"); do
    OMP_NUM_THREADS=1 sana-wm vae encode "$WORK/data" --vae "$WORK/vae/vae" --frames 97 --part "$k/$parts" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done   # a failed part stops the recipe (set -e)
fi
if [[ $STAGE == train || $STAGE == all ]]; then
  sed "s#^output_dir: .*#output_dir: $WORK/transformer#; s#^  root: data/synth-train.*#  root: $WORK/data#" \
      "$REPO/${CONFIG:-configs/train/bundled_synth.yaml}" > "$WORK/train.yaml"
  resume=(); ls "$WORK/transformer/checkpoints"/step-* >/dev/null 2>&1 && resume=(--resume)
  # A fresh WORK folder (e.g. a new machine) can start from the shipped weights instead of from scratch:
  # INIT_FROM=src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt (the optimizer state starts afresh).
  if [[ ${#resume[@]} -eq 0 && -n ${INIT_FROM:-} ]]; then
    sed -i "s#^  name: synth-small.*#&\n  init_from: $INIT_FROM#" "$WORK/train.yaml"
  fi
  # TRAIN_SECONDS bounds this run (0: no bound); checkpoints come every 25 steps, so a stop loses little.
  timeout "${TRAIN_SECONDS:-0}" sana-wm train "$WORK/train.yaml" "${resume[@]}" || true
fi
if [[ $STAGE == decoder || ( $STAGE == all && ${DECODER_STEPS:-0} -gt 0 ) ]]; then
  # Fine-tune the VAE's decoder alone (DECODER_STEPS, e.g. 2000): the encoder, and so every latent the
  # transformer was trained on, stays bit-identical. The export stage then ships this VAE.
  if [[ ! -d $WORK/vae_dec/vae ]]; then
    resume=(); [[ -f $WORK/vae_dec/checkpoint.pt ]] && resume=(--resume)
    sana-wm vae train --data "$WORK/data" --out "$WORK/vae_dec" --steps "${DECODER_STEPS:-2000}" --lr 1e-3 \
        --init-from "$WORK/vae/vae" --decoder-only "${resume[@]}"
  fi
fi
if [[ $STAGE == export || $STAGE == all ]]; then
  last=$(ls -d "$WORK/transformer/checkpoints"/step-* | sort -t- -k2 -n | tail -1)
  # NO_EMA=1 exports the raw weights (right for short runs: the EMA still leans on its starting point).
  ema=(); [[ -n ${NO_EMA:-} ]] && ema=(--no-ema)
  vae="$WORK/vae/vae"; [[ -d $WORK/vae_dec/vae ]] && vae="$WORK/vae_dec/vae"
  sana-wm model export "$last" --vae "$vae" --out "$WORK/model" --steps "${SAMPLE_STEPS:-4}" \
      --shift "${SAMPLE_SHIFT:-3.0}" --overwrite "${ema[@]}"
fi
if [[ $STAGE == eval || $STAGE == all ]]; then
  sana-wm eval synth --model "$WORK/model" --seeds 1000-1003 --trajectories explore:walk,explore:orbit \
      --marks 1,5,10 --out "$WORK/eval"
fi
