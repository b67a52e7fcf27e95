# Shared set-up of the benchmarks on the virtual headset, sourced by them. `rig_start PORT
# SAPA` (device_cpu.sh) starts the virtual headset, a scratch folder ($dir) and a switchboard
# on 127.0.0.1:PORT (media on PORT+1) with agent dev / password pw. `echo_rig_start PORT SAPA`
# (the two mouth-to-ear benchmarks, device_latency.sh and phone_latency.sh) adds the click
# train ($dir/clicks.wav) and PulseAudio's loopback from what the headset plays into its
# microphone. The script sets `peer` to the process under test; everything stops when the
# script exits. `cpu_mark FILE` notes the time, `peer`'s RSS and each of its threads' CPU
# ticks and voluntary context switches; `cpu_report BEFORE AFTER` prints each thread's CPU and
# wake-ups a second between two marks, then the process's CPU and RSS.
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

cpu_mark() {
  {
    echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' "/proc/$peer/status")"
    for task in /proc/"$peer"/task/*; do
      echo "$(basename "$task") $(cat "$task/comm") $(awk '{print $14 + $15}' "$task/stat") \
        $(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status")"
    done
  } >"$1"
}

cpu_report() {
  python3 - "$1" "$2" "$(getconf CLK_TCK)" <<'PY'
import sys
def load(path):
    lines = [line.split() for line in open(path)]
    return float(lines[0][0]), int(lines[0][1]), {f[0]: f for f in lines[1:]}
(t1, _, a), (t2, rss, b), hz = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
seconds, total = t2 - t1, 0.0
for tid, (_, name, ticks, switches) in b.items():
    # A thread started between the marks counts from zero.
    _, _, ticks0, switches0 = a.get(tid, (tid, name, 0, 0))
    cpu = (int(ticks) - int(ticks0)) / hz / seconds * 100
    wakes = (int(switches) - int(switches0)) / seconds
    total += cpu
    if cpu > 0 or wakes > 5:
        print(f"  thread {name:<16} CPU {cpu:5.2f} %   wake-ups {wakes:5.0f} / s")
print(f"agent process in call: CPU {total:.2f} % of one core over {seconds:.0f} s, RSS {rss / 1024:.0f} MB")
PY
}
