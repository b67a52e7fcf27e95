#!/usr/bin/env bash
# Mouth-to-ear latency and CPU of the phone's audio engine through real (virtual) devices.
# A headless agent runs on the virtual headset (`sapa agent --devices`: cpal capture and
# playback, noise suppression, Opus, jitter buffer); PulseAudio's loopback module feeds what
# the headset plays back into its microphone, so the agent "repeats" what it hears through
# both device buffers. A headless caller plays a click train and records, sample-aligned;
# each click's echo delay is the round trip. One way = round trip / 2 (an upper bound: the
# loopback module's own latency is included).
# The agent runs with noise suppression and automatic gain on, as a phone would. Its CPU time
# is sampled from /proc over the middle of the call, per thread with its wake-ups. The
# loopback makes the microphone wake the agent every 2.5 ms, so for the CPU figure of a call
# see device_cpu.sh.
# Usage: [FRAME_MS=10] bench/device_latency.sh [path/to/sapa]   (needs python3 with numpy scipy)
# FRAME_MS (20 by default, or 10) is the frame length both the agent and the caller send.
set -euo pipefail
SAPA=${1:-target/release/sapa}
FRAME_MS=${FRAME_MS:-20}
SAPA=$(realpath "$SAPA")
. "$(dirname "$0")/echo_rig.sh"
echo_rig_start 17190 "$SAPA"
"$SAPA" agent --switchboard 127.0.0.1:17190 --user dev --password pw --devices --noise-suppression --agc --calls 1 --frame-ms "$FRAME_MS" >/dev/null 2>"$dir/agent.log" &
peer=$!
sleep 2
"$SAPA" caller --switchboard 127.0.0.1:17190 --from +15550009 --play "$dir/clicks.wav" \
  --record "$dir/heard.wav" --frame-ms "$FRAME_MS" >/dev/null 2>&1 &
ca=$!
sleep 6
cpu_mark "$dir/before"
sleep 10
cpu_mark "$dir/after"
wait "$ca"
sleep 0.5
# Where the delay sits at the end of the call: the agent's jitter buffer and device rings.
grep -ohE "(current_delay_ms|target_delay_ms|mic_buffered_ms|speaker_buffered_ms): [0-9.]+" \
  "$dir/agent.log" | tr '\n' ' ' | sed 's/$/\n/' || true
python3 "$(dirname "$0")/clicks.py" echo "$dir/heard.wav"
cpu_report "$dir/before" "$dir/after"
