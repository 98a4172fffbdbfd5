#!/usr/bin/env bash
# One call on a CUDA machine that has no Rust toolchain (the `device` tool's GPU machine):
# a smoke test, each stage's it/s on CUDA, then the video LDM and the interpolator
# continued side by side from weights/tiny for $MINUTES, and a CUDA generation with them.
# What came out is packed into $OUT (weights F32, logs, it/s table).
#
# Here, first:  cargo build --release --locked --no-default-features --features cuda --bins
#               mkdir -p .bin && cp target/release/latentdrive .bin/ && strip .bin/latentdrive
#               xz -6 .bin/latentdrive     # 66 MB stripped → 10 MB: the carried tree must stay < 64 MiB
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

# 1. Smoke: three autoencoder steps; stop at once if CUDA does not work.
t0=$(date +%s)
if ! timeout 120 "$B" train autoencoder --tier tiny --device cuda --steps 3 --warmup 1 --batch 1 \
  --weights "$R/smoke_w" --run-dir "$R/smoke" >"$OUT/smoke.log" 2>&1; then
  cat "$OUT/smoke.log"; ldd "$B"; exit 1
fi
echo "smoke: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/gpu.txt"

# 2. CUDA against the CPU, op by op and model by model (the example, if carried: build it with
#    `--example backend_parity` and compress target/release/examples/backend_parity into .bin/ as above).
P=.bin/backend_parity
[ -x "$P" ] || [ ! -f "$P.xz" ] || xz -dk "$P.xz"
if [ -x "$P" ]; then
  chmod +x "$P"
  timeout 240 "$P" weights/tiny 2>&1 | tee "$OUT/parity.txt"
fi

# 3. it/s of each stage on its own, from fresh weights in stage order (each needs the one before).
cp -r weights/tiny "$R/speed_w"
speed() { # stage batch
  local t=$(date +%s)
  timeout -s INT 60 "$B" train "$1" --tier tiny --device cuda --batch "$2" --steps 400 --minutes 0.35 --warmup 5 \
    --eval-every 100000 --checkpoint-every 100000 --weights "$R/speed_w" --run-dir "$R/speed_$1" >"$R/speed_$1.log" 2>&1
  local rc=$?
  echo "$1 batch $2: $(rate "$R/speed_$1/log.csv"), process $(( $(date +%s) - t )) s, exit $rc" | tee -a "$OUT/gpu.txt"
}
speed autoencoder 8
speed image-ldm 32
speed temporal-decoder 4
speed upsampler 8
speed upsampler-video 2

# 4. The video stages continued from weights/tiny, side by side on the GPU.
cp -r weights/tiny "$R/w"
long() { # stage batch steps
  timeout -s INT 330 "$B" train "$1" --tier tiny --device cuda --init-from weights/tiny --batch "$2" --lr 2e-4 --warmup 50 \
    --lr-decay cosine --final-lr 0.1 --steps "$3" --minutes "$MINUTES" --eval-every 250 --checkpoint-every 250 \
    --weights "$R/w" --run-dir "$R/$1" >"$R/$1.log" 2>&1
}
long video-ldm 16 "${VIDEO_STEPS:-1500}" &
long interpolator 16 "${INTERP_STEPS:-1500}" &
wait
# The first step's loss on the CPU with the same weights, seed and batch (weights/tiny of
# 2026-12-04): video-ldm 0.36420807, interpolator 0.24498947. CUDA gave 0.598 and 0.464 then.
for s in video-ldm interpolator; do
  echo "$s step 1 loss on CUDA: $(awk -F, 'NR==2 {print $2}' "$R/$s/log.csv")" | tee -a "$OUT/gpu.txt"
  echo "$s batch 16 (two trainings sharing the GPU): $(rate "$R/$s/log.csv")" | tee -a "$OUT/gpu.txt"
  tail -3 "$R/$s.log" | tee -a "$OUT/gpu.txt"
done

# 5. Generation on CUDA with the continued weights.
t=$(date +%s)
timeout 90 "$B" generate scenarios/day_overtake.ron --device cuda --weights "$R/w" --futures 2 --out "$R/gen" \
  >"$R/gen.log" 2>&1
rc=$?
echo "generate (cuda, 2 futures, defaults): $(( $(date +%s) - t )) s, exit $rc" | tee -a "$OUT/gpu.txt"
tail -5 "$R/gen.log" >>"$OUT/gpu.txt"

cp "$R/w/video_ldm.temporal.safetensors" "$R/w/interpolator.temporal.safetensors" "$R/w/manifest.ron" "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" --exclude=checkpoint --exclude='*.safetensors' --exclude=gen -C "$R" . 2>/dev/null
find "$R/gen" -maxdepth 2 -name '*.json' -exec cp {} "$OUT/" \; 2>/dev/null
ls -la "$OUT"
