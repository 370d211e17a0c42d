#!/usr/bin/env bash
# The bundled model's whole recipe on a lent GPU machine (16 cores + one GPU): render, encode with the shipped
# codec, train from the shipped transformer, export, and copy the model to $OUT. Sized for the device budget
# of 2026-12 (15 minutes of device time per session, at most 10 minutes per call): ONE call does it all.
#
#   run(command="bash scripts/gpu_session_bundled.sh all", timeout_s=590)     ($OUT is set there)
#
# With the defaults: about 2 min to render 640 clips in 14 processes, 20 s to encode, TRAIN_SECONDS=330 of
# training, 10 s to export; $OUT then holds model.pt and config.yaml (the last checkpoint, exported with the
# shipped sampler defaults: put them over a copy of src/sana_wm/assets/sana-wm-synth), metrics.jsonl and
# train.log. Select on the CPU afterwards (docs/models/sana-wm-synth.md: validation seeds 2000-2007,
# `sana-wm eval synth --model MODEL --seeds 2000-2007`), never on the test seeds.
# Nothing here needs diffusers or PyAV (the device lacks both; checked by running this script on the CPU with
# both imports blocked, DEVICE=cpu).
#
# With a larger budget, run it as a background job that outlives each call and poll it:
#   call 1:  cp scripts/gpu_session_bundled.sh /tmp/gsb.sh
#            REPO=$PWD TRAIN_SECONDS=1800 setsid nohup bash /tmp/gsb.sh all > /tmp/bw.log 2>&1 < /dev/null &
#            sleep 540; tail -5 /tmp/bw.log
#   call 2+: sleep 570; tail -5 /tmp/bw.log          (start each call within 30 s of the last one's end)
#   last:    OUT=$OUT REPO=$PWD bash /tmp/gsb.sh collect
#
# Settings (environment): W (/tmp/bw), SCENES (640), RENDER_PROCS (14), CODEC_CLIPS (96), CODEC_FROM (the shipped
# codec; empty: fit a new one, and then set INIT_FROM= empty too), INIT_FROM (the shipped transformer),
# TRAIN_SECONDS (330), TRAIN_BATCH (32), CKPT_EVERY (100), CHANNEL_POWER (empty: the plain loss, as the shipped
# weights were trained; 1: the pixel-MSE channel weighting of session 8), DEVICE (cuda), OUT (where `all` and
# `collect` put the results, if set). The config is configs/train/bundled_synth_gpu.yaml (synth-pca-warp).
set -euo pipefail
W=${W:-/tmp/bw}
SCENES=${SCENES:-640}
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
  say "training the transformer on $DEVICE for up to ${TRAIN_SECONDS:-330} s"
  sed -e "s#^output_dir: .*#output_dir: $W/transformer#" -e "s#^  root: .*#  root: $W/data#" \
      -e "s#^  device: cuda#  device: $DEVICE#" \
      -e "s#^  batch_size: 32#  batch_size: ${TRAIN_BATCH:-32}#" -e "s#^  every: 200#  every: ${CKPT_EVERY:-100}#" \
      -e "s#^  warp_vae: .*#  warp_vae: $W/codec#" \
      "$REPO/configs/train/bundled_synth_gpu.yaml" > "$W/train.yaml"
  # A fresh run starts from the shipped transformer (INIT_FROM= empty: from scratch), which only makes sense
  # with the shipped codec (the CODEC_FROM default).
  init=${INIT_FROM-$REPO/src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt}
  if [[ -n $init ]] && ! ls "$W/transformer/checkpoints"/step-* > /dev/null 2>&1; then
    sed -i "s#^  name: synth-pca.*#&\n  init_from: $init#" "$W/train.yaml"
  fi
  # The channel-weighted loss (session 8, docs/training.md): CHANNEL_POWER=1 is the pixel MSE of the codec;
  # unset or empty trains with the plain loss (the session-9 weights were; the session-12 ones used power 1).
  power=${CHANNEL_POWER-}
  if [[ -n $power ]]; then
    sed -i "s#^  camera_dropout_prob: .*#&\n  channel_weights: $W/codec\n  channel_weight_power: $power#" "$W/train.yaml"
  fi
  resume=(); ls "$W/transformer/checkpoints"/step-* > /dev/null 2>&1 && resume=(--resume)
  TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 timeout -s INT "${TRAIN_SECONDS:-330}" \
      python3 -m sana_wm train "$W/train.yaml" "${resume[@]}" > "$W/train.log" 2>&1 || true
  grep val_loss "$W/transformer/metrics.jsonl" | tail -3 || true
fi
if [[ $stage == export || $stage == all || $stage == collect ]]; then
  last=$(ls -d "$W/transformer/checkpoints"/step-* | sort -t- -k2 -n | tail -1)
  say "exporting $last (raw weights, the shipped sampler defaults: 3 steps, shift 3)"
  sana model export "$last" --vae "$W/codec" --out "$W/model" --steps 3 --shift 3.0 --no-ema --overwrite
fi
if [[ $stage == collect ]] || [[ $stage == all && -n ${OUT:-} ]]; then
  out=${OUT:?collect copies to \$OUT}
  # $OUT takes files of at most 16 MiB: the transformer (fp16, 15.6 MB) and the config travel apart; the
  # codec is the shipped one unless CODEC_FROM= was set empty (then it travels too).
  cp "$W/model/sana_dit/model.pt" "$out/model.pt"
  cp "$W/model/config.yaml" "$out/config.yaml"
  [[ -n ${CODEC_FROM-x} ]] || tar -C "$W/model" -cf "$out/codec.tar" ltx2_causal_vae
  cp "$W/transformer/metrics.jsonl" "$out/metrics.jsonl"
  tail -c 200000 "$W/train.log" > "$out/train.log" || true
  ls -la "$out"
fi
say "stage $stage done"
