#!/usr/bin/env bash
# Mouth-to-ear latency through the phone itself (`sapa phone`, its window under X) on the
# virtual headset: the same measurement as device_latency.sh, with the phone in place of the
# headless agent. PulseAudio's loopback module feeds what the phone's speaker plays into its
# microphone; a headless caller plays a click train and records, sample-aligned; each click's
# echo delay is the round trip, and one way = round trip / 2 (loopback module included).
# The phone logs in with --switchboard/--user/SAPA_PASSWORD, goes available with F6 and
# answers with F9 (xdotool), with its default settings (20 ms frames).
# Usage: bench/phone_latency.sh [path/to/sapa]   (needs an X display in DISPLAY, e.g. Xvfb,
# xdotool, and python3 with numpy scipy)
set -euo pipefail
SAPA=$(realpath "${1:-target/release/sapa}")
. "$(dirname "$0")/echo_rig.sh"
echo_rig_start 17390 "$SAPA"
XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data" SAPA_PASSWORD=pw \
  "$SAPA" phone --switchboard ws://127.0.0.1:17390/v1/ws --user dev 2>"$dir/phone.log" &
peer=$!
window=""
for _ in $(seq 1 50); do
  window=$(xdotool search --onlyvisible --name '^Sapa$' 2>/dev/null | head -1 || true)
  [ -n "$window" ] && break
  sleep 0.2
done
[ -n "$window" ] || { echo "the phone's window did not show" >&2; exit 1; }
sleep 2
key() { xdotool windowfocus --sync "$window"; xdotool mousemove --window "$window" 400 600; xdotool key "$1"; }
key F6
sleep 1
"$SAPA" caller --switchboard 127.0.0.1:17390 --from +15550009 --play "$dir/clicks.wav" \
  --record "$dir/heard.wav" >/dev/null 2>&1 &
ca=$!
sleep 1.5
key F9
wait "$ca"
printf 'phone: '
python3 "$(dirname "$0")/clicks.py" echo "$dir/heard.wav"
