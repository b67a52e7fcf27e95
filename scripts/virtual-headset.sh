#!/usr/bin/env bash
# A virtual headset on a machine with no sound card: a private PulseAudio server with
#   sapa_ear       null sink: what the headset plays (record sapa_ear.monitor to hear it)
#   sapa_mouth_in  null sink: play into it to "speak" into the microphone
#   sapa_mouth     virtual source fed from sapa_mouth_in.monitor: the microphone
#   sapa_ring      null sink: a separate ring device (the PC speaker of a real desk)
# Defaults are set to sapa_ear / sapa_mouth, so an app that takes the defaults uses the headset.
#
# Each null sink also gets a silent keep-alive stream (pacat from /dev/zero). A null sink with
# no running stream renders in blocks of up to 2 s, so a stream that starts or resumes on it
# (the phone pauses its devices between calls) would wait that long for its first period; a
# sound card starts in one period. The keep-alives make the sinks behave like hardware.
#
#   eval "$(bash scripts/virtual-headset.sh start)"   # idempotent; prints export lines only
#   bash scripts/virtual-headset.sh stop
#
# The server runs as whoever starts it (root in CI, which PulseAudio allows with -n and our own
# module list). Its log is $DIR/pulseaudio.log. Everything else goes to stderr, so the command
# substitution above sees only the export lines.
set -euo pipefail

DIR="${SAPA_HEADSET_DIR:-/tmp/sapa-virtual-headset}"
SOCKET="$DIR/native"
export PULSE_SERVER="unix:$SOCKET"
# Keep pactl and the server away from any per-user state (and cookies) of this machine.
export HOME="$DIR/home"
export XDG_RUNTIME_DIR="$DIR/runtime"
export XDG_CONFIG_HOME="$DIR/home/.config"

exports() {
  echo "export PULSE_SERVER=unix:$SOCKET"
}

alive() {
  [ -S "$SOCKET" ] && timeout 5 pactl info >/dev/null 2>&1
}

start() {
  if alive; then
    exports
    return 0
  fi
  for tool in pulseaudio pactl; do
    if ! command -v "$tool" >/dev/null; then
      echo "virtual-headset: $tool is not installed (apt-get install pulseaudio pulseaudio-utils)" >&2
      exit 1
    fi
  done
  mkdir -p "$DIR" "$HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
  chmod 700 "$XDG_RUNTIME_DIR"
  rm -f "$SOCKET"
  # setsid + redirected output: the daemon must not hold the caller's stdout open (a command
  # substitution or a test's pipe would wait for it forever).
  setsid pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no \
    --disallow-exit --log-target=stderr \
    --load="module-native-protocol-unix socket=$SOCKET auth-anonymous=1" \
    --load="module-null-sink sink_name=sapa_ear rate=48000 channels=1 sink_properties=device.description=Sapa_virtual_headset" \
    --load="module-null-sink sink_name=sapa_mouth_in rate=48000 channels=1 sink_properties=device.description=Sapa_mouth_input" \
    --load="module-null-sink sink_name=sapa_ring rate=48000 channels=1 sink_properties=device.description=Sapa_ring_speaker" \
    --load="module-virtual-source source_name=sapa_mouth master=sapa_mouth_in.monitor source_properties=device.description=Sapa_virtual_microphone" \
    </dev/null >"$DIR/pulseaudio.log" 2>&1 &
  echo $! >"$DIR/pid"
  for _ in $(seq 1 100); do
    if alive; then
      pactl set-default-sink sapa_ear >&2
      pactl set-default-source sapa_mouth >&2
      : >"$DIR/keepalive.pids"
      for sink in sapa_ear sapa_mouth_in sapa_ring; do
        setsid pacat --playback --device="$sink" --latency-msec=20 --rate=48000 --channels=1 \
          --format=s16le --client-name=sapa-keepalive /dev/zero </dev/null >/dev/null 2>&1 &
        echo $! >>"$DIR/keepalive.pids"
      done
      exports
      return 0
    fi
    sleep 0.1
  done
  echo "virtual-headset: PulseAudio did not start; log:" >&2
  cat "$DIR/pulseaudio.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$DIR/keepalive.pids" ]; then
    while read -r pid; do
      kill "$pid" 2>/dev/null || true
    done <"$DIR/keepalive.pids"
    rm -f "$DIR/keepalive.pids"
  fi
  if [ -f "$DIR/pid" ]; then
    pid="$(cat "$DIR/pid")"
    # Only the server this script started (its pid file), never processes found by name.
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$DIR/pid"
  fi
  rm -f "$SOCKET"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if alive; then echo "running: PULSE_SERVER=unix:$SOCKET"; else echo "not running"; exit 1; fi ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
