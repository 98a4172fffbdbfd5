#!/usr/bin/env bash
# `latentdrive import` end to end without real data: the procedural world rendered at KITTI's
# and BDD100K's frame sizes, laid out as their folders (KITTI tracking: label_02/ + image_02/;
# BDD100K: a label JSON + an image root), imported, and trained on for a few steps. It shows
# the layouts `import` reads, what an import of a few hundred full-size frames costs, and that
# `train --data` takes the result (and refuses a stage its frame rate cannot feed).
#
#   tools/import_smoke.sh          # BIN (default target/release/latentdrive), OUT (runs/import-smoke), SECS (10 per sequence)
#
# Wall time and peak memory per command go to $OUT/import_smoke.txt.
set -uo pipefail
B=${BIN:-target/release/latentdrive}
OUT=${OUT:-runs/import-smoke}
SECONDS_PER_SEQ=${SECS:-10}
source "$(dirname "$0")/smoke_lib.sh"
smoke_start import_smoke.txt
echo "import smoke, $("$B" --version), $(nproc) threads, $(date -u +%FT%TZ)" | tee "$T"
TIMED_WIDTH=26

fail=0
# KITTI tracking: two sequences at 1242x375, 10 Hz.
K="$OUT/kitti/training"
mkdir -p "$K/label_02" "$K/image_02"
seq=0
for s in day_overtake day_empty; do
  id=$(printf %04d $seq)
  timed "render $s 1242x375" "$OUT/render-$s.log" \
    "$B" render "scenarios/$s.ron" --out "$OUT/render-$s" --size 1242x375 --fps 10 --seconds "$SECONDS_PER_SEQ" || fail=1
  mv "$OUT/render-$s/frames" "$K/image_02/$id"
  cp "$OUT/render-$s/labels/kitti_tracking.txt" "$K/label_02/$id.txt"
  seq=$((seq + 1))
done
timed "import kitti-tracking" "$OUT/import-kitti.log" \
  "$B" import kitti-tracking "$K" --out "$OUT/kitti-ds" --size 512x256 --frames 32 || fail=1
cat "$OUT/import-kitti.log" | tee -a "$T"

# BDD100K: one video at 1280x720 (the render's own bdd100k.json names frames/<n>.png).
timed "render night_dense_road 1280x720" "$OUT/render-bdd.log" \
  "$B" render scenarios/night_dense_road.ron --out "$OUT/bdd" --size 1280x720 --fps 5 --seconds "$SECONDS_PER_SEQ" || fail=1
timed "import bdd100k" "$OUT/import-bdd.log" \
  "$B" import bdd100k "$OUT/bdd/labels/bdd100k.json" --images "$OUT/bdd" --out "$OUT/bdd-ds" --size 512x256 --frames 16 || fail=1
cat "$OUT/import-bdd.log" | tee -a "$T"

# Training on the imported KITTI clips: the autoencoder on frames, the video LDM's temporal
# layers on 8-frame clips at 2.5 Hz (every fourth 10 Hz frame), both from scratch weights.
W="$OUT/weights"
timed "train autoencoder --data" "$OUT/train-ae.log" \
  "$B" train autoencoder --tier tiny --weights "$W" --run-dir "$OUT/run-ae" --data "$OUT/kitti-ds" \
  --steps 4 --batch 2 --eval-every 4 --checkpoint-every 4 || fail=1
timed "train image-ldm --data" "$OUT/train-ldm.log" \
  "$B" train image-ldm --tier tiny --weights "$W" --run-dir "$OUT/run-ldm" --data "$OUT/kitti-ds" \
  --steps 2 --batch 2 --eval-every 2 --checkpoint-every 2 || fail=1
timed "train video-ldm --data" "$OUT/train-vldm.log" \
  "$B" train video-ldm --tier tiny --weights "$W" --run-dir "$OUT/run-vldm" --data "$OUT/kitti-ds" \
  --steps 2 --batch 1 --eval-every 2 --checkpoint-every 2 || fail=1
# The interpolator needs 40 Hz clips: refused before any work (exit 2).
"$B" train interpolator --tier tiny --weights "$W" --run-dir "$OUT/run-int" --data "$OUT/kitti-ds" --steps 1 \
  >"$OUT/train-int.log" 2>&1
rc=$?
echo "train interpolator --data (10 Hz clips): exit $rc: $(tail -1 "$OUT/train-int.log")" | tee -a "$T"
[ $rc = 2 ] || fail=1
exit $fail
