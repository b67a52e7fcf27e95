# Shared set-up of the two mouth-to-ear benchmarks (device_latency.sh, phone_latency.sh),
# sourced by them: the virtual headset, a scratch folder ($dir) with the click train
# ($dir/clicks.wav), a switchboard on 127.0.0.1:PORT (media on PORT+1) with agent dev /
# password pw, and PulseAudio's loopback from what the headset plays into its microphone.
# The script sets `peer` to the process under test; everything stops when the script exits.
# Usage: . bench/echo_rig.sh; echo_rig_start PORT SAPA
echo_rig_cleanup() {
  kill "${sb:-}" "${peer:-}" 2>/dev/null || true
  [ -n "${loop:-}" ] && pactl unload-module "$loop" 2>/dev/null || true
  rm -rf "${dir:-}"
}

echo_rig_start() {
  local port=$1 sapa=$2 here
  here=$(dirname "${BASH_SOURCE[0]}")
  eval "$(bash "$here/../scripts/virtual-headset.sh" start)"
  dir=$(mktemp -d)
  trap echo_rig_cleanup EXIT
  python3 "$here/clicks.py" write "$dir/clicks.wav"
  local db="sqlite:$dir/b.db"
  "$sapa" user add --db "$db" --name dev --role agent --password pw >/dev/null
  "$sapa" switchboard --listen "127.0.0.1:$port" --media-listen "127.0.0.1:$((port + 1))" \
    --db "$db" 2>/dev/null &
  sb=$!
  loop=$(pactl load-module module-loopback source=sapa_ear.monitor sink=sapa_mouth_in latency_msec=1)
  sleep 1.5
}
