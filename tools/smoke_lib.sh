# Sourced by the smoke scripts (tools/base_smoke.sh, tools/import_smoke.sh).
#
#   smoke_start RESULTS
#
# checks the binary $B and that $OUT does not exist yet, creates $OUT and sets T=$OUT/RESULTS.
smoke_start() {
  [ -x "$B" ] || { echo "no binary at $B: cargo build --release --no-default-features --bins" >&2; exit 1; }
  [ -e "$OUT" ] && { echo "$OUT exists: remove it or set OUT" >&2; exit 1; }
  mkdir -p "$OUT"
  T="$OUT/$1"
}

#   timed LABEL LOG COMMAND...
#
# runs COMMAND under /usr/bin/time with its output in LOG, prints "LABEL  wall s  peak RSS  exit" and appends the
# line to the file $T; returns COMMAND's exit code. TIMED_WIDTH sets the label column (default 18).
timed() {
  local label=$1 log=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$log.time" "$@" >"$log" 2>&1
  local rc=$?
  # The last line holds the numbers (a killed command's file starts with the signal).
  read -r secs kb < <(tail -1 "$log.time")
  printf "%-${TIMED_WIDTH:-18}s %8.1f s  peak RSS %6.0f MB  exit %d\n" "$label" "$secs" "$((kb / 1024))" "$rc" | tee -a "$T"
  return $rc
}
