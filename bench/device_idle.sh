#!/usr/bin/env bash
# CPU of a headless agent on the virtual headset between calls: logged in, available, its
# headset open (`sapa agent --devices`, noise suppression and AGC on), no call offered.
# Prints the agent's CPU per thread with its wake-ups a second over SECONDS, then the
# process's CPU and RSS (the report's "in call" wording is shared with device_cpu.sh).
# Usage: bench/device_idle.sh [path/to/sapa] [SECONDS]   (20 by default)
set -euo pipefail
SAPA=$(realpath "${1:-target/release/sapa}")
MEASURE=${2:-20}
here=$(dirname "$0")
. "$here/echo_rig.sh"
rig_start 17600 "$SAPA"
sleep 1
"$SAPA" agent --switchboard 127.0.0.1:17600 --user dev --password pw --devices \
  --noise-suppression --agc --calls 1 >/dev/null 2>"$dir/agent.log" &
peer=$!
sleep 5
cpu_mark "$dir/before"
sleep "$MEASURE"
cpu_mark "$dir/after"
cpu_report "$dir/before" "$dir/after" | sed 's/in call/between calls/'
