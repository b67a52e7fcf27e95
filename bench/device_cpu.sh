#!/usr/bin/env bash
# CPU of the phone's audio engine in a call on devices (issue 3's "CPU per call" figure).
# A headless agent (`sapa agent --devices`: capture, noise suppression and AGC, Opus both
# ways, jitter buffer, playout) plays on the virtual headset's speaker and talks into a
# microphone paced like a sound card's (bench/paced_mic.py: 10 ms every 10 ms; the agent talks
# 8 s of every 20), while a headless caller talks when the agent is quiet. Prints the agent
# process's CPU over the middle of the call, per thread with its wake-ups a second, and its RSS.
# device_latency.sh measures CPU too, but its loopback cuts the microphone's audio into
# 2.5 ms pieces, each of which wakes the agent: that figure counts the rig as well.
# Usage: bench/device_cpu.sh [path/to/sapa] [SECONDS]   (SECONDS measured, 40 by default;
# needs espeak-ng and python3 with numpy scipy)
set -euo pipefail
SAPA=$(realpath "${1:-target/release/sapa}")
MEASURE=${2:-40}
here=$(dirname "$0")
. "$here/echo_rig.sh"
rig_start 17590 "$SAPA"
espeak-ng -w "$dir/speech.wav" "Thank you for calling. I can see your last order from Tuesday, \
and the refund went out this morning. Is there anything else I can help you with today?"
python3 "$here/paced_mic.py" conversation "$dir/speech.wav" "$dir/caller.wav" $((MEASURE + 20))
mic=$(pactl load-module module-pipe-source source_name=sapa_desk_mic file="$dir/mic.fifo" \
  rate=48000 channels=1 format=s16le source_properties=device.description=Sapa_paced_microphone)
python3 "$here/paced_mic.py" feed "$dir/mic.fifo" "$dir/speech.wav" &
feeder=$!
sleep 1
"$SAPA" agent --switchboard 127.0.0.1:17590 --user dev --password pw --devices \
  --input sapa_desk_mic --noise-suppression --agc --calls 1 >/dev/null 2>"$dir/agent.log" &
peer=$!
sleep 2
"$SAPA" caller --switchboard 127.0.0.1:17590 --from +15550009 --play "$dir/caller.wav" \
  --record "$dir/heard.wav" >/dev/null 2>&1 &
caller=$!
sleep 8
cpu_mark "$dir/before"
sleep "$MEASURE"
cpu_mark "$dir/after"
kill -0 "$caller" 2>/dev/null || echo "warning: the call ended before the measurement did" >&2
cpu_report "$dir/before" "$dir/after"
kill "$caller" 2>/dev/null || true
