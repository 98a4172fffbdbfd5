#!/usr/bin/env bash
# One call on a CUDA machine that has no Rust toolchain (the `device` tool's GPU machine):
# CUDA against the CPU (backend_parity), then, only where they agree, the it/s of the stages
# named in $STAGES and the video LDM and the interpolator continued side by side from
# weights/tiny for $MINUTES (0: stop after the speeds). What came out is packed into $OUT (weights F32, logs, it/s table).
# Sized for 15 minutes of device time and the 10-minute command limit: at most 2.5 min parity
# (70-80 s measured), 2 min check, 1 min speed, 4.25 min training.
#
# Here, first:  cargo build --release --locked --no-default-features --features cuda --bins
#               mkdir -p .bin && cp target/release/latentdrive .bin/ && strip .bin/latentdrive
#               xz -6 .bin/latentdrive     # 66 MB stripped → 10 MB: the carried tree must stay < 64 MiB
#               (the same for target/release/examples/backend_parity, built with `--example backend_parity`)
# then run `tools/gpu_session.sh` there with `.bin` carried (`.bin/` is git-ignored).
set -uo pipefail
B=${BIN:-.bin/latentdrive}
MINUTES=${MINUTES:-3.5}
OUT=${OUT:-/tmp/gpu_out}
R=/tmp/gpu_runs
mkdir -p "$OUT" "$R"
[ -x "$B" ] || xz -dk "$B.xz" || exit 1
chmod +x "$B"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >>"$OUT/gpu.txt"
# cudarc loads the driver and NVRTC at run time; cubecl compiles kernels with CUDA's headers.
if [ -z "${CUDA_PATH:-}" ] && [ ! -d /usr/local/cuda ] && command -v nvcc >/dev/null; then
  export CUDA_PATH="$(dirname "$(dirname "$(command -v nvcc)")")"
fi
echo "CUDA_PATH=${CUDA_PATH:-/usr/local/cuda} nvcc=$(command -v nvcc)" >>"$OUT/gpu.txt"
nvrtc=$(find "${CUDA_PATH:-/usr/local/cuda}/" /usr/local /opt /usr/lib -name 'libnvrtc.so*' 2>/dev/null | head -1)
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "nvrtc: ${nvrtc:-not found}" | tee -a "$OUT/gpu.txt"

# it/s over the steps after the first 5 (kernel compilation and autotuning fall in those).
rate() { awk -F, 'NR>1 {t[$1]=$5} END {a=6; b=0; for (s in t) if (s+0>b) b=s+0; if (b>a) printf "%.2f it/s (steps %d-%d)", (b-a)/(t[b]-t[a]), a, b; else print "too few steps"}' "$1"; }

# 1. CUDA against the CPU first, op by op, model by model, forward and backward (the example:
#    build it with `--example backend_parity` and compress target/release/examples/backend_parity
#    into .bin/ as above). Training on CUDA is only worth its time where it computes what the
#    CPU computes: gate on the video LDM's forward output and its parameters' gradients.
P=.bin/backend_parity
[ -x "$P" ] || [ ! -f "$P.xz" ] || xz -dk "$P.xz"
if [ ! -f "$P" ]; then
  echo "no .bin/backend_parity(.xz) carried: no training on CUDA without the parity gate" | tee -a "$OUT/gpu.txt"
  exit 3
fi
chmod +x "$P"
t0=$(date +%s)
timeout "${PARITY_SECONDS:-150}" "$P" weights/tiny 2>&1 | tee "$OUT/parity.txt"
echo "parity: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/gpu.txt"
rel() { awk -v k="$1" 'index($0, k) == 1 {print $NF}' "$OUT/parity.txt"; }
ok() { awk -v x="$1" 'BEGIN {exit !(x != "" && x + 0 < 1e-2)}'; }
fwd=$(rel "video LDM, S=2, t=500"); bwd=$(rel "video LDM grads, S=2, t=500: all")
echo "gate: video LDM forward rel L2 ${fwd:-missing}, gradients ${bwd:-missing}" | tee -a "$OUT/gpu.txt"
if ! ok "$fwd" || ! ok "$bwd"; then
  echo "CUDA does not compute what the CPU does: no training on it" | tee -a "$OUT/gpu.txt"
  exit 3
fi

# 1b. End to end: five video-LDM training steps (forward, backward, AdamW at a high lr so the
#     updates show) whose losses the CPU reproduces with the same command and `--device cpu`:
#     with weights/tiny of 2026-12-05 (video LDM sha256 6face12c…) 0.37220147 0.46916768
#     0.39202824 0.3673578 0.4599488 (1.3 min on the 2-core machine, binary of commit f9ab20b).
check=(train video-ldm --tier tiny --init-from weights/tiny --batch 4 --steps 5 --warmup 1 --lr 1e-3
  --eval-every 100000 --checkpoint-every 100000 --weights "$R/check_w" --run-dir "$R/check")
cp -r weights/tiny "$R/check_w"
timeout 120 "$B" "${check[@]}" --device cuda >"$R/check.log" 2>&1
echo "video-ldm check, losses of steps 1-5 on CUDA: $(awk -F, 'NR>1 {printf "%s ", $2}' "$R/check/log.csv")" | tee -a "$OUT/gpu.txt"

# 2. it/s of each stage on its own, from the shipped weights (set STAGES; stop 26 measured all
#    but image-ldm, whose first step's kernel compilation took the whole slot).
cp -r weights/tiny "$R/speed_w"
speed() { # stage batch seconds
  local t=$(date +%s)
  timeout -s INT "$3" "$B" train "$1" --tier tiny --device cuda --batch "$2" --steps 400 --warmup 5 \
    --eval-every 100000 --checkpoint-every 100000 --weights "$R/speed_w" --run-dir "$R/speed_$1" >"$R/speed_$1.log" 2>&1
  local rc=$?
  echo "$1 batch $2: $(rate "$R/speed_$1/log.csv"), process $(( $(date +%s) - t )) s, exit $rc" | tee -a "$OUT/gpu.txt"
}
for s in ${STAGES:-image-ldm:16:60}; do IFS=: read -r stage batch secs <<<"$s"; speed "$stage" "$batch" "$secs"; done

[ "$MINUTES" = 0 ] && exit 0

# 3. The video stages continued from weights/tiny, side by side on the GPU.
cp -r weights/tiny "$R/w"
long() { # stage batch steps
  timeout -s INT "$(awk -v m="$MINUTES" 'BEGIN {print int(m * 60 + 45)}')" "$B" train "$1" --tier tiny --device cuda \
    --init-from weights/tiny --batch "$2" --lr 2e-4 --warmup 20 --lr-decay cosine --final-lr 0.1 --steps "$3" \
    --minutes "$MINUTES" --eval-every 100 --checkpoint-every 100 --weights "$R/w" --run-dir "$R/$1" >"$R/$1.log" 2>&1
}
long video-ldm 16 "${VIDEO_STEPS:-300}" &
long interpolator 16 "${INTERP_STEPS:-250}" &
wait
for s in video-ldm interpolator; do
  echo "$s step 1 loss on CUDA: $(awk -F, 'NR==2 {print $2}' "$R/$s/log.csv")" | tee -a "$OUT/gpu.txt"
  echo "$s batch 16 (two trainings sharing the GPU): $(rate "$R/$s/log.csv")" | tee -a "$OUT/gpu.txt"
  tail -3 "$R/$s.log" | tee -a "$OUT/gpu.txt"
done

cp "$R/w/video_ldm.temporal.safetensors" "$R/w/interpolator.temporal.safetensors" "$R/w/manifest.ron" "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" --exclude=checkpoint --exclude='*.safetensors' -C "$R" . 2>/dev/null
ls -la "$OUT"
