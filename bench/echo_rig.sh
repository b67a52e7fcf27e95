# Shared set-up of the benchmarks on the virtual headset, sourced by them. `rig_start PORT
# SAPA` (device_cpu.sh) starts the virtual headset, a scratch folder ($dir) and a switchboard
# on 127.0.0.1:PORT (media on PORT+1) with agent dev / password pw. `echo_rig_start PORT SAPA`
# (the two mouth-to-ear benchmarks, device_latency.sh and phone_latency.sh) adds the click
# train ($dir/clicks.wav) and PulseAudio's loopback from what the headset plays into its
# microphone. The script sets `peer` to the process under test; everything stops when the
# script exits.
# Usage: . bench/echo_rig.sh; echo_rig_start PORT SAPA
rig_cleanup() {
  kill "${sb:-}" "${peer:-}" "${feeder:-}" 2>/dev/null || true
  for module in ${loop:-} ${mic:-}; do pactl unload-module "$module" 2>/dev/null || true; done
  rm -rf "${dir:-}"
}

rig_start() {
  local port=$1 sapa=$2 here
  here=$(dirname "${BASH_SOURCE[0]}")
  eval "$(bash "$here/../scripts/virtual-headset.sh" start)"
  dir=$(mktemp -d)
  trap rig_cleanup EXIT
  local db="sqlite:$dir/b.db"
  "$sapa" user add --db "$db" --name dev --role agent --password pw >/dev/null
  "$sapa" switchboard --listen "127.0.0.1:$port" --media-listen "127.0.0.1:$((port + 1))" \
    --db "$db" 2>/dev/null &
  sb=$!
}

echo_rig_start() {
  rig_start "$1" "$2"
  python3 "$(dirname "${BASH_SOURCE[0]}")/clicks.py" write "$dir/clicks.wav"
  loop=$(pactl load-module module-loopback source=sapa_ear.monitor sink=sapa_mouth_in latency_msec=1)
  sleep 1.5
}
