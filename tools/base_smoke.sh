#!/usr/bin/env bash
# The base tier end to end at smoke size: every stage of the chain trained for $STEPS steps
# into a fresh weights folder, then `generate` from that folder and `replay` of the run. It
# shows that the wide configs build, train, save, load and sample on a backend, and what a
# step and a generation cost there (wall time and peak memory per command); the weights it
# makes are untrained noise, not a model.
#
#   tools/base_smoke.sh [cpu|cuda]      # BIN (default target/release/latentdrive), STEPS (2), BATCH (1), OUT (runs/base-smoke)
#
# BATCH sets every stage's batch: 1 shows that the configs run; on a GPU, a training batch
# (e.g. BATCH=8) shows what a real step costs there and whether it fits in memory.
#
# On a GPU machine without Rust, carry the `--features cuda` binary as tools/gpu_session.sh says
# and run `BIN=.bin/latentdrive OUT=$OUT/base tools/base_smoke.sh cuda`.
set -uo pipefail
DEV=${1:-cpu}
B=${BIN:-target/release/latentdrive}
STEPS=${STEPS:-2}
BATCH=${BATCH:-1}
OUT=${OUT:-runs/base-smoke}
W="$OUT/weights"
source "$(dirname "$0")/smoke_lib.sh"
smoke_start base_smoke.txt
echo "base tier, $DEV, $STEPS steps per stage at batch $BATCH, $("$B" --version), $(nproc) threads, $(date -u +%FT%TZ)" | tee "$T"

fail=0
for stage in autoencoder temporal-decoder image-ldm video-ldm interpolator upsampler upsampler-video; do
  timed "$stage" "$OUT/$stage.log" "$B" train "$stage" --tier base --device "$DEV" --steps "$STEPS" --batch "$BATCH" \
    --warmup 1 --eval-every 100000 --checkpoint-every 100000 --weights "$W" --run-dir "$OUT/runs/$stage" || {
    fail=1
    tail -5 "$OUT/$stage.log" | tee -a "$T"
    break
  }
done
if [ $fail = 0 ]; then
  gen=(generate scenarios/quickstart.ron --weights "$W" --device "$DEV" --futures 2 --seconds 1.2 --steps 2
    --upsample-steps 1 --out "$OUT/gen")
  timed "generate" "$OUT/generate.log" "$B" "${gen[@]}" || fail=1
  # Bit-identical replays are the CPU backend's promise.
  if [ $fail = 0 ] && [ "$DEV" = cpu ]; then
    timed "replay" "$OUT/replay.log" "$B" replay "$OUT/gen/quickstart" || fail=1
    tail -2 "$OUT/replay.log" | tee -a "$T"
  fi
fi
du -sh "$W" | tee -a "$T"
exit $fail
