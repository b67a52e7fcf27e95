#!/usr/bin/env bash
# Mouth-to-ear latency and CPU of the phone's audio engine through real (virtual) devices.
# A headless agent runs on the virtual headset (`sapa agent --devices`: cpal capture and
# playback, noise suppression, Opus, jitter buffer); PulseAudio's loopback module feeds what
# the headset plays back into its microphone, so the agent "repeats" what it hears through
# both device buffers. A headless caller plays a click train and records, sample-aligned;
# each click's echo delay is the round trip. One way = round trip / 2 (an upper bound: the
# loopback module's own latency is included).
# The agent runs with noise suppression and automatic gain on, as a phone would. Its CPU time
# is sampled from /proc over the middle of the call.
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
ticks() { awk '{print $14 + $15}' "/proc/$peer/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$peer/status"; }
sleep 6
t1=$(ticks); s1=$(date +%s.%N)
sleep 10
t2=$(ticks); s2=$(date +%s.%N); mem=$(rss)
wait "$ca"
sleep 0.5
# Where the delay sits at the end of the call: the agent's jitter buffer and device rings.
grep -ohE "(current_delay_ms|target_delay_ms|mic_buffered_ms|speaker_buffered_ms): [0-9.]+" \
  "$dir/agent.log" | tr '\n' ' ' | sed 's/$/\n/' || true
hz=$(getconf CLK_TCK)
python3 "$(dirname "$0")/clicks.py" echo "$dir/heard.wav"
python3 -c 'import sys; t1, t2, s1, s2, hz, mem = map(float, sys.argv[1:]); print(f"agent process in call: CPU {(t2 - t1) / hz / (s2 - s1) * 100:.2f} % of one core, RSS {mem / 1024:.0f} MB")' \
  "$t1" "$t2" "$s1" "$s2" "$hz" "$mem"
