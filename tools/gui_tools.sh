#!/usr/bin/env bash
# The desktop app under Xvfb (software rendering), driven by a script in tools/gui/:
#   tools/gui_tools.sh screenshots   → docs/gui/{composer,generating,futures}.png
#   tools/gui_tools.sh fps           → UI frames/s while a generation runs (runs/gui-fps/state.json)
#   PROFILE=dev tools/gui_tools.sh … → the same with the dev build
# Needs: apt-get install xvfb mesa-vulkan-drivers libvulkan1 libxkbcommon-x11-0
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:?usage: tools/gui_tools.sh screenshots|fps}"
# PROFILE=dev uses the dev build (`cargo test` builds it anyway; dependencies are optimised in it).
case "${PROFILE:-release}" in
  release) cargo build --release --quiet; bin=target/release/latentdrive ;;
  dev) cargo build --quiet; bin=target/debug/latentdrive ;;
  *) echo "PROFILE must be release or dev" >&2; exit 2 ;;
esac
run() { xvfb-run -a -s "-screen 0 1280x800x24" "$bin" gui --drive "tools/gui/$1.ron"; }
case "$what" in
  screenshots)
    mkdir -p docs/gui
    run screenshots
    ls -l docs/gui ;;
  fps)
    run fps
    python3 - <<'PY'
import json
s = json.load(open("runs/gui-fps/state.json"))["ui"]
print(f"UI idle: mean {s['idle_mean_fps']:.1f} frames/s, 5th percentile {s['idle_p5_fps']:.1f} frames/s over {s['idle_frames']} frames")
print(f"UI while generating: mean {s['busy_mean_fps']:.1f} frames/s, 5th percentile {s['busy_p5_fps']:.1f} frames/s over {s['busy_frames']} frames")
m = json.load(open("runs/gui-fps/quickstart/metadata.json"))
o = m["options"]
print(f"the job ({o['futures']} futures × {m['plan']['key_frames']} key frames, {o['steps']} steps) took {m['timings_s']['total']:.1f} s in the app")
PY
    ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
