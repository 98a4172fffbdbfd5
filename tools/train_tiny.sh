#!/usr/bin/env bash
# Trains the tiny tier on this machine's CPU, stage by stage, each within a wall-time
# budget (minutes, first argument scales them all). A stage that ran out of time keeps
# its checkpoint: rerun with RESUME=1 to continue every stage from where it stopped.
# Usage: tools/train_tiny.sh [scale] ; e.g. `tools/train_tiny.sh 2` doubles every budget.
# LATENT=8 trains an 8-channel autoencoder (every later stage follows it); V=1 trains the
# image LDM (and so the video stages) with v-prediction on a zero-terminal-SNR schedule;
# NORM=channel normalises each latent channel for the denoisers (`--latent-norm channel`);
# WEIGHTS=DIR trains into DIR instead of weights/tiny; FROM=<stage> starts at that stage
# (the folder already holds the ones before it, e.g. FROM=image-ldm WEIGHTS=runs/tiny-next).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
bin="${BIN:-target/release/latentdrive}"
[ -x "$bin" ] || cargo build --release --no-default-features
resume=()
[ "${RESUME:-0}" = 1 ] && resume=(--resume)
ae=()
[ -n "${LATENT:-}" ] && ae=(--latent-channels "$LATENT")
ldm=()
[ "${V:-0}" = 1 ] && ldm=(--prediction v --zero-terminal-snr)
[ -n "${NORM:-}" ] && ldm+=(--latent-norm "$NORM")
weights=()
[ -n "${WEIGHTS:-}" ] && weights=(--weights "$WEIGHTS")
started=0
[ -z "${FROM:-}" ] && started=1
stage() { # stage minutes batch lr warmup steps [extra flags...]
  [ "$1" = "${FROM:-}" ] && started=1
  [ "$started" = 1 ] || { echo "== $1: skipped (FROM=$FROM)"; return; }
  local minutes
  minutes=$(python3 -c "print($2 * $scale)")
  echo "== $1: ${minutes} min, batch $3, lr $4"
  "$bin" train "$1" --tier tiny --steps "$6" --minutes "$minutes" --batch "$3" --lr "$4" --warmup "$5" \
    --checkpoint-every 100 --eval-every 100 "${resume[@]}" "${weights[@]}" "${@:7}"
}
# The step counts are caps (the temporal decoder's GAN starts at a quarter of them). The
# autoencoder trains on whole frames, one per step (about 1.8 s a step on one core).
stage autoencoder      25 1 5e-4 50  6000 "${ae[@]}"
stage image-ldm        30 8 3e-4 100 6000 "${ldm[@]}"
stage temporal-decoder  6 1 2e-4 20  80
stage video-ldm        18 2 3e-4 50  2000
stage interpolator      8 2 3e-4 50  1000
stage upsampler        12 2 3e-4 50  2000
stage upsampler-video   5 1 2e-4 20  300
