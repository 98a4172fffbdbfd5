#!/usr/bin/env bash
# Wall time and peak RSS of `generate` on this machine (issue 6's bench):
#   1. 4 futures × 16 key frames at 128×256 (key frames only, no upsampling)
#   2. the same futures upsampled 4× to 512×1024 (video upsampler)
#   3. peak RSS of a 10 s and a 60 s rollout (1 future, 128×256): memory must stay flat
# Usage: [CASES="a b c d"] tools/bench_generate.sh [weights-dir] [steps] [upsample-steps]
# Results go to runs/bench_generate/results.txt (and stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
weights="${1:-weights/tiny}"
steps="${2:-10}"
up_steps="${3:-4}"
bin=target/release/latentdrive
cargo build --release --no-default-features --quiet
out=runs/bench_generate${CASES:+_${CASES// /}}
cases="${CASES:-a b c d}"
rm -rf "$out"
mkdir -p "$out"
measure() { # case, label, then generate arguments
  local case="$1" label="$2"
  shift 2
  [[ " $cases " == *" $case "* ]] || return 0
  /usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin" generate scenarios/day_overtake.ron --weights "$weights" \
    --steps "${STEPS:-$steps}" --force "$@" > /dev/null
  read -r wall rss < "$out/time.txt"
  printf '%-48s %8.1f s %8.0f MB\n' "$label" "$wall" "$((rss / 1024))" | tee -a "$out/results.txt"
}
echo "weights $weights, DDIM steps $steps, upsampler steps $up_steps, $(nproc) cores" | tee "$out/results.txt"
# 16 key frames = 15 intervals at 2.5 Hz = 6 s.
measure a "4 futures × 16 key frames, 128×256" --out "$out/a" --futures 4 --seconds 6 --no-interpolate --no-upsample
measure b "… and upsampled to 512×1024 ($up_steps steps)" --out "$out/b" --futures 4 --seconds 6 --no-interpolate \
  --upsample-steps "$up_steps"
# RSS does not depend on the step count: 2 steps keep the 60 s rollout short.
STEPS=2 measure c "1 future, 10 s at 10 Hz, 128×256 (2 steps)" --out "$out/c" --futures 1 --seconds 10 --no-upsample
STEPS=2 measure d "1 future, 60 s at 10 Hz, 128×256 (2 steps)" --out "$out/d" --futures 1 --seconds 60 --no-upsample
