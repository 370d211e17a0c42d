#!/usr/bin/env bash
# The bundled model's whole recipe on a lent GPU machine (16 cores + one GPU), in one background job that
# outlives each 10-minute `run` call. Everything lives under $W (outside the repo: the repo copy on the
# device is reset between calls) and every stage resumes, so a lost machine costs only the current stage.
#
# The device has PyTorch but not diffusers: carry its wheel (docs/status.md, "GPU session plan").
#
#   call 1:  cp scripts/gpu_session_bundled.sh /tmp/gsb.sh
#            REPO=$PWD setsid nohup bash /tmp/gsb.sh all > /tmp/bw.log 2>&1 < /dev/null &
#            sleep 540; tail -5 /tmp/bw.log
#   call 2+: sleep 570; tail -5 /tmp/bw.log          (start each call within 30 s of the last one's end)
#   last:    REPO=$PWD bash /tmp/gsb.sh collect   (copies the model and logs to $OUT; /tmp survives between
#            calls while the machine stays warm, else run scripts/gpu_session_bundled.sh collect)
#
# Settings (environment): W (/tmp/bw), SCENES (1024), RENDER_PROCS (14), CODEC_CLIPS (96), CODEC_FROM (the shipped
# codec; empty: fit a new one, and then set INIT_FROM= empty too), INIT_FROM (the shipped transformer), TRAIN_SECONDS (1200), TRAIN_BATCH (32), CKPT_EVERY (200),
# CHANNEL_POWER (1: the pixel-MSE channel weighting of session 8; empty: the plain loss), DEVICE (cuda).
set -euo pipefail
W=${W:-/tmp/bw}
SCENES=${SCENES:-1024}
PROCS=${RENDER_PROCS:-14}
DEVICE=${DEVICE:-cuda}
# REPO: the checkout (default: the folder above this script; set it when running a copy of the script,
# which is the safe way to run it in the background: bash reads a script as it goes).
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
[[ -d $REPO/src/sana_wm ]] || { echo "REPO=$REPO is not a sana-wm checkout (no src/sana_wm); set REPO" >&2; exit 2; }
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
sana() { python3 -m sana_wm "$@"; }
stage=${1:-all}
mkdir -p "$W"
say() { echo "[$(date +%H:%M:%S)] $*"; }

if [[ $stage == data || $stage == all ]] && [[ ! -f $W/data/index.json ]]; then
  say "rendering $SCENES clips in $PROCS processes"
  per=$(( (SCENES + PROCS - 1) / PROCS ))
  pids=()
  for k in $(seq 0 $((PROCS - 1))); do
    [[ -f $W/parts/p$k/index.json ]] && continue
    rm -rf "$W/parts/p$k"
    OMP_NUM_THREADS=1 python3 -m sana_wm data synth --out "$W/parts/p$k" --scenes "$per" --seed $((k * per)) \
        --seconds 7 --size 128x128 --codec npz --no-depth > "$W/render$k.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  mkdir -p "$W/data.partial" && n=0
  for shard in "$W"/parts/p*/shard-*.tar; do
    ln -sf "$shard" "$W/data.partial/$(printf 'shard-%06d.tar' $n)"; n=$((n + 1))
  done
  python3 -c "from sana_wm.data import rebuild_index; import sys; print(len(rebuild_index(sys.argv[1]).entries), 'clips')" \
      "$W/data.partial"
  mv "$W/data.partial" "$W/data"
fi
if [[ $stage == codec || $stage == all ]] && [[ ! -f $W/codec/config.json ]]; then
  codec_from=${CODEC_FROM-$REPO/src/sana_wm/assets/sana-wm-synth/ltx2_causal_vae}
  if [[ -n $codec_from ]]; then
    say "reusing the codec $codec_from"; cp -r "$codec_from" "$W/codec"
  else
    say "fitting the patch codec"
    sana vae fit-pca --data "$W/data" --out "$W/codec" --patch-size 16 --channels 128 --frames 97 \
        --max-clips "${CODEC_CLIPS:-96}" > "$W/codec.log" 2>&1
    tail -3 "$W/codec.log"
  fi
fi
if [[ $stage == encode || $stage == all ]] && [[ ! -f $W/encoded ]]; then
  say "encoding latents in 16 processes"
  pids=()
  for k in $(seq 1 16); do
    OMP_NUM_THREADS=1 python3 -m sana_wm vae encode "$W/data" --vae "$W/codec" --frames 97 --part "$k/16" \
        > "$W/encode$k.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  touch "$W/encoded"
fi
if [[ $stage == train || $stage == all ]]; then
  say "training the transformer on $DEVICE for up to ${TRAIN_SECONDS:-1200} s"
  sed -e "s#^output_dir: .*#output_dir: $W/transformer#" -e "s#^  root: .*#  root: $W/data#" \
      -e "s#^  device: cuda#  device: $DEVICE#" \
      -e "s#^  batch_size: 32#  batch_size: ${TRAIN_BATCH:-32}#" -e "s#^  every: 200#  every: ${CKPT_EVERY:-200}#" \
      "$REPO/configs/train/bundled_synth_gpu.yaml" > "$W/train.yaml"
  # A fresh run starts from the shipped transformer (INIT_FROM= empty: from scratch), which only makes sense
  # with the shipped codec (the CODEC_FROM default).
  init=${INIT_FROM-$REPO/src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt}
  if [[ -n $init ]] && ! ls "$W/transformer/checkpoints"/step-* > /dev/null 2>&1; then
    sed -i "s#^  name: synth-pca.*#&\n  init_from: $init#" "$W/train.yaml"
  fi
  # The channel-weighted loss (session 8, docs/training.md): CHANNEL_POWER (default 1, the pixel MSE of the
  # codec); CHANNEL_POWER= empty trains with the plain loss.
  power=${CHANNEL_POWER-1}
  if [[ -n $power ]]; then
    sed -i "s#^  camera_dropout_prob: .*#&\n  channel_weights: $W/codec\n  channel_weight_power: $power#" "$W/train.yaml"
  fi
  resume=(); ls "$W/transformer/checkpoints"/step-* > /dev/null 2>&1 && resume=(--resume)
  TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 timeout -s INT "${TRAIN_SECONDS:-1200}" \
      python3 -m sana_wm train "$W/train.yaml" "${resume[@]}" > "$W/train.log" 2>&1 || true
  grep val_loss "$W/transformer/metrics.jsonl" | tail -3 || true
fi
if [[ $stage == export || $stage == all || $stage == collect ]]; then
  last=$(ls -d "$W/transformer/checkpoints"/step-* | sort -t- -k2 -n | tail -1)
  say "exporting $last (raw weights, 4 steps)"
  sana model export "$last" --vae "$W/codec" --out "$W/model" --steps 4 --shift 3.0 --no-ema --overwrite
fi
if [[ $stage == collect ]]; then
  out=${OUT:?collect copies to \$OUT}
  tar -C "$W" -cf "$out/model.tar" model
  cp "$W/codec/report.json" "$out/codec_report.json"
  cp "$W/transformer/metrics.jsonl" "$out/metrics.jsonl"
  ls -la "$out"
fi
say "stage $stage done"
