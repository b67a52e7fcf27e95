#!/usr/bin/env bash
# Voice quality benchmark: speech from a headless caller crosses a real switchboard (real
# WebRTC, Opus with FEC, the agent's jitter buffer) and is recorded by a headless agent; PESQ
# wideband compares it with what was said. Runs clean, 10 % loss, and 20 % loss + 30 ms jitter.
# Usage: [FRAME_MS=10] bench/pesq.sh [path/to/sapa]   (needs espeak-ng, sox, python3 with numpy scipy pesq)
# FRAME_MS (20 by default, or 10) is the frame length the caller and the agent send.
set -euo pipefail
SAPA=${1:-target/release/sapa}
FRAME_MS=${FRAME_MS:-20}
dir=$(mktemp -d)
trap 'kill $sb 2>/dev/null || true; rm -rf "$dir"' EXIT
espeak-ng -w "$dir/s.wav" "Thank you for calling. I understand the charge on your card appeared twice this month. \
I have refunded the second payment, and you will see it within three business days. Is there anything else I can help with today?"
sox "$dir/s.wav" -r 16000 "$dir/ref.wav"
db="sqlite:$dir/b.db"
$SAPA user add --db "$db" --name bench --role agent --password pw >/dev/null
$SAPA switchboard --listen 127.0.0.1:17170 --media-listen 127.0.0.1:17171 --db "$db" 2>/dev/null &
sb=$!
# Wait until it listens (a dev build pre-encodes its sounds for a few seconds).
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/17170) 2>/dev/null && break; sleep 0.1; done
for impair in "" "loss=10,seed=1" "loss=20,jitter=30,seed=2"; do
  $SAPA agent --switchboard 127.0.0.1:17170 --user bench --password pw --record "$dir/heard.wav" --calls 1 --frame-ms "$FRAME_MS" >/dev/null &
  ag=$!
  sleep 1.5
  args=()
  [ -n "$impair" ] && args=(--impair "$impair")
  $SAPA caller --switchboard 127.0.0.1:17170 --from +15550001 --play "$dir/ref.wav" --record "$dir/c.wav" --talk-secs 13 --frame-ms "$FRAME_MS" "${args[@]}" >/dev/null
  wait $ag
  echo "impairment=${impair:-none} pesq_wb=$(python3 "$(dirname "$0")/pesq_wb.py" "$dir/ref.wav" "$dir/heard.wav")"
done
