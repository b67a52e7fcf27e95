#!/bin/bash
# The phone's CPU and memory when it draws on a real GPU. Run from the repo root:
#
#   bash .gl/run.sh            (results in $OUT, default /tmp/gl-out)
#
# Unpacks the kit (.gl/*.deb GL loaders into / when the machine lacks them; .gl/x11.tar.xz and
# .gl/sapa.xz into /opt/sapa-x), then for each phase starts Xvfb :99 (1280x900x24), a
# switchboard on 127.0.0.1:17200/17201 with a fresh SQLite db, and `sapa phone --no-audio`
# logged in as ana; makes it available with F6 (xdotool), measures the phone idle for SECS,
# places a call (`sapa caller`), answers it with F9 and measures again in the call: CPU
# (utime+stime of the whole process and by thread), repaints/s (SAPA_BENCH_LOG), RSS and its
# parts. The same as examples/bench_phone.rs's idle and in-call phases, without screen-pops.
#
# Phases (SAPA_KIT_PHASES, in this order by default):
#   nvidia-glx     Xvfb with GLX (Mesa swrast inside the server); the phone with
#                  __GLX_VENDOR_LIBRARY_NAME=nvidia (libGLX_nvidia from the driver)
#   llvmpipe-glx   the same Xvfb; the phone with Mesa llvmpipe (LIBGL_ALWAYS_SOFTWARE=1,
#                  __GLX_VENDOR_LIBRARY_NAME=mesa): the software baseline on the same machine
#   nvidia-egl     Xvfb without GLX, so the phone's glutin falls back to EGL on X11 with the
#                  NVIDIA EGL vendor (run only when enough time is left)
# Each phase reports which GL it got (a ctypes GLX probe, the phone's own GL_VERSION log
# line, and the GL libraries and /dev/nvidia* files the phone has open).
#
# Files written to $OUT (at most 8): summary.txt, run.log (everything printed), logs.txt
# (tails of each phase's Xvfb, switchboard, phone and caller logs), screen-PHASE.png.
#
# Knobs: SAPA_KIT_SECS (20), SAPA_KIT_PHASES, SAPA_KIT_ROOT (/opt/sapa-x),
# SAPA_KIT_ALL_CARRIED=1 (use every carried library even where the system has one: for
# testing the kit on a machine that has them), SAPA_KIT_LOADERS=always|never|auto,
# SAPA_KIT_BUDGET (seconds the whole run may take, 450).
set -u
T0=$(date +%s)
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$KIT")
cd "$REPO" || exit 1
OUT=${OUT:-/tmp/gl-out}
mkdir -p "$OUT"
X=${SAPA_KIT_ROOT:-/opt/sapa-x}
W=${SAPA_KIT_WORK:-/tmp/sapa-kit}
SECS=${SAPA_KIT_SECS:-20}
BUDGET=${SAPA_KIT_BUDGET:-450}
PHASES=${SAPA_KIT_PHASES:-nvidia-glx llvmpipe-glx nvidia-egl}
export NO_COLOR=1
DNUM=99
DISP=:$DNUM
PORT=17200
MPORT=17201
PW='kit password'
SUMMARY=$OUT/summary.txt
LOGS=$OUT/logs.txt
: >"$SUMMARY"
: >"$LOGS"
exec > >(tee "$OUT/run.log") 2>&1

say() { printf '[%4ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
sum() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  PIDS=()
}
trap 'cleanup' EXIT
trap 'say "stopped by a signal"; exit 1' INT TERM
# Start "$@" in the background under timeout (so nothing outlives the run); its pid in BG.
bg() {
  local log=$1
  shift
  timeout -k 2 "$(left)" "$@" >"$log" 2>&1 &
  BG=$!
  PIDS+=("$BG")
}
# The pid of the real process that timeout started (the child of BG).
child_of() {
  local c
  for _ in $(seq 1 50); do
    c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{print $1}')
    [ -z "$c" ] && c=$(awk -v p="$1" '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); if (f[2] == p) print FILENAME }' \
      /proc/[0-9]*/stat 2>/dev/null | head -1 | cut -d/ -f3)
    [ -n "$c" ] && { echo "$c"; return 0; }
    sleep 0.1
  done
  return 1
}
stop() { # stop BG pids given, quietly
  local p
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}

say "== sapa GPU phone kit: $(uname -srm), $(nproc) CPUs, $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"

# ---------------------------------------------------------------- unpack
unxz_to_stdout() {
  if [ "${SAPA_KIT_UNXZ:-}" = python ]; then  # for testing the fallback
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"
  elif command -v xz >/dev/null 2>&1; then xz -dc "$1"
  elif [ -x "$X/usr/bin/xz" ]; then "$X/usr/bin/xz" -dc "$1"
  elif python3 -c 'import lzma' 2>/dev/null; then
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"
  else echo "no xz and no python3 lzma to unpack $1" >&2; return 1
  fi
}
have_so() { ldconfig -p 2>/dev/null | awk 'NR > 1 {print $1}' | grep -qxF "$1"; }

LOADERS=${SAPA_KIT_LOADERS:-auto}
missing=""
for so in libGLX.so.0 libEGL.so.1 libGL.so.1 libGLdispatch.so.0 libOpenGL.so.0 libGLESv2.so.2 libvulkan.so.1; do
  have_so "$so" || missing="$missing $so"
done
if [ "$LOADERS" = always ] || { [ "$LOADERS" = auto ] && [ -n "$missing" ]; }; then
  say "GL loaders missing:${missing:- none}; unpacking .gl/*.deb into /"
  for f in "$KIT"/*.deb; do dpkg -x "$f" / || say "dpkg -x $f failed"; done
  ldconfig
else
  say "GL loaders: the system has them all (not unpacking .gl/*.deb)"
fi

if [ ! -x "$X/usr/bin/Xvfb" ] || [ "$KIT/x11.tar.xz" -nt "$X/.unpacked" ]; then
  say "unpacking x11.tar.xz into $X"
  rm -rf "$X" && mkdir -p "$X"
  set -o pipefail
  unxz_to_stdout "$KIT/x11.tar.xz" | tar -xf - -C "$X" || { say "FAILED to unpack x11.tar.xz"; exit 1; }
  set +o pipefail
  touch "$X/.unpacked"
fi
SAPA=$X/sapa
if [ ! -x "$SAPA" ] || [ "$KIT/sapa.xz" -nt "$SAPA" ]; then
  say "unpacking sapa.xz"
  unxz_to_stdout "$KIT/sapa.xz" >"$SAPA.tmp" && chmod +x "$SAPA.tmp" && mv "$SAPA.tmp" "$SAPA" ||
    { say "FAILED to unpack sapa.xz"; exit 1; }
fi

# Carried libraries the system lacks (all of them with SAPA_KIT_ALL_CARRIED=1) as links in
# one directory for LD_LIBRARY_PATH; Mesa's own (glapi, GLX_mesa, LLVM) always come from the
# kit, since they must match swrast_dri.so.
M=$X/ld
rm -rf "$M" && mkdir -p "$M"
sys_libs=$(ldconfig -p 2>/dev/null | awk 'NR > 1 {print $1}' | sort -u)
n_link=0
for f in "$X"/usr/lib/x86_64-linux-gnu/*.so* "$X"/lib/x86_64-linux-gnu/*.so*; do
  [ -e "$f" ] || continue
  b=$(basename "$f")
  case $b in libglapi.so*|libGLX_mesa.so*|libGLX_indirect.so*|libLLVM*) force=1 ;; *) force=0 ;; esac
  if [ "${SAPA_KIT_ALL_CARRIED:-0}" = 1 ] || [ $force = 1 ] || ! grep -qxF "$b" <<<"$sys_libs"; then
    ln -sf "$f" "$M/$b"
    n_link=$((n_link + 1))
  fi
done
DRI=$X/usr/lib/x86_64-linux-gnu/dri
say "carried libraries used: $n_link (in $M): $(ls "$M" | grep -E '\.so\.[0-9]+$' | tr '\n' ' ' | cut -c1-600)"

# xkbcomp: Xvfb runs it from /usr/bin (compiled in).
if [ ! -x /usr/bin/xkbcomp ]; then
  say "no /usr/bin/xkbcomp: installing a wrapper for the carried one"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
    "$M" "$X/usr/bin/xkbcomp" >/usr/bin/xkbcomp && chmod +x /usr/bin/xkbcomp
fi
mkdir -p /var/lib/xkb 2>/dev/null

# ---------------------------------------------------------------- facts
say "== facts"
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 20 nvidia-smi -L
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.used --format=csv,noheader
else
  say "no nvidia-smi"
fi
NVLIB=""
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
  if ls "$d"/libGLX_nvidia.so* >/dev/null 2>&1; then NVLIB=$d; break; fi
done
echo "libGLX_nvidia: ${NVLIB:-not found}"
ls /usr/local/nvidia/lib64 2>/dev/null | grep -iE 'GLX|EGL|glcore|glsi|nvidia-tls|egl-' | tr '\n' ' '
echo
echo "ld.so.conf.d: $(cat /etc/ld.so.conf.d/*.conf 2>/dev/null | tr '\n' ' ')"
echo "ldconfig -p | grep -i glx/egl/libGL:"
ldconfig -p | grep -iE 'glx|egl|libGL\.|nvidia-glcore' | head -20
NVJSON=""
for j in /usr/share/glvnd/egl_vendor.d/10_nvidia.json /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json \
         /etc/glvnd/egl_vendor.d/10_nvidia.json; do
  [ -f "$j" ] && { NVJSON=$j; break; }
done
echo "NVIDIA EGL vendor file: ${NVJSON:-not found}"
echo "python3: $(python3 --version 2>&1), xz: $(command -v xz || echo none), glibc: $(ldd --version 2>&1 | head -1)"
sum "sapa GPU phone kit, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
gpumem() { timeout 20 nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1; }
sum "GPU: $(timeout 20 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo none); GPU memory used before the phases: $(gpumem)"
sum "libGLX_nvidia: ${NVLIB:-not found}; NVIDIA EGL vendor file: ${NVJSON:-not found}; window ${SECS} s per measurement; phone --no-audio"

# ---------------------------------------------------------------- one phase
XVFB=""
start_xvfb() { # $1: +extension GLX or -extension GLX
  local lock=/tmp/.X$DNUM-lock
  if [ -f $lock ] && kill -0 "$(tr -d ' ' <$lock)" 2>/dev/null; then
    say "display $DISP is in use by pid $(tr -d ' ' <$lock): not starting Xvfb"
    return 1
  fi
  rm -f $lock /tmp/.X11-unix/X$DNUM
  mkdir -p "$PH/fb"
  LD_LIBRARY_PATH=$M LIBGL_DRIVERS_PATH=$DRI bg "$PH/xvfb.log" "$X/usr/bin/Xvfb" $DISP -screen 0 1280x900x24 \
    -nolisten tcp -noreset -xkbdir "$X/usr/share/X11/xkb" -fbdir "$PH/fb" $1
  XVFB=$BG
  for _ in $(seq 1 100); do
    if DISPLAY=$DISP LD_LIBRARY_PATH=$M timeout 3 "$X/usr/bin/xdotool" getdisplaygeometry >/dev/null 2>&1; then
      local xp
      xp=$(child_of "$XVFB")
      say "Xvfb $DISP up ($1), pid $xp; its GL: $(grep -oE '/[^ ]*(swrast_dri|LLVM|libGL)[^ ]*' /proc/"$xp"/maps 2>/dev/null | sort -u | tr '\n' ' ')"
      return 0
    fi
    kill -0 "$XVFB" 2>/dev/null || break
    sleep 0.2
  done
  say "FAILED: Xvfb did not start; the end of its log:"
  tail -n 25 "$PH/xvfb.log"
  return 1
}

xdo() { DISPLAY=$DISP LD_LIBRARY_PATH=$M timeout 10 "$X/usr/bin/xdotool" "$@"; }
press() { # window key: as examples/bench_phone.rs does
  xdo windowfocus --sync "$1" >/dev/null 2>&1
  xdo mousemove --window "$1" 400 600 >/dev/null 2>&1
  xdo key "$2"
}
press_until() { # window key state
  for i in $(seq 1 15); do
    press "$1" "$2"
    if python3 "$KIT/kit.py" wait-state "$DB" ana "$3" 1.5 2>/dev/null; then
      say "$2 -> $3 (press $i)"
      return 0
    fi
  done
  say "FAILED: $2 never brought ana to $3 (now: $(python3 "$KIT/kit.py" state "$DB" ana 2>&1))"
  return 1
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | tail -1; }

phase_logs() {
  {
    echo "================ $NAME"
    for f in xvfb switchboard phone caller; do
      [ -f "$PH/$f.log" ] || continue
      echo "---------------- $NAME $f.log ($(wc -l <"$PH/$f.log") lines; GL lines and the last 40)"
      grep -iE 'opengl|gl version|renderer|glutin|glx|egl|shader version|error|panic|warn' "$PH/$f.log" | head -30 | cut -c1-400
      echo "...."
      tail -n 40 "$PH/$f.log" | cut -c1-400
    done
  } >>"$LOGS"
}

run_phase() {
  NAME=$1
  PH=$W/$NAME
  rm -rf "$PH" && mkdir -p "$PH"/{config,data,runtime}
  chmod 700 "$PH/runtime"
  DB=$PH/sapa.db
  local glx=+extension
  local -a genv=(LD_LIBRARY_PATH="$M" DISPLAY="$DISP" LIBGL_DRIVERS_PATH="$DRI")
  case $NAME in
    nvidia-glx)
      genv=(LD_LIBRARY_PATH="$M${NVLIB:+:$NVLIB}" DISPLAY="$DISP" LIBGL_DRIVERS_PATH="$DRI" __GLX_VENDOR_LIBRARY_NAME=nvidia)
      [ -n "$NVJSON" ] && genv+=(__EGL_VENDOR_LIBRARY_FILENAMES="$NVJSON") ;;
    llvmpipe-glx)
      genv+=(__GLX_VENDOR_LIBRARY_NAME=mesa LIBGL_ALWAYS_SOFTWARE=1) ;;
    nvidia-egl)
      glx=-extension
      genv=(LD_LIBRARY_PATH="$M${NVLIB:+:$NVLIB}" DISPLAY="$DISP" LIBGL_DRIVERS_PATH="$DRI" __GLX_VENDOR_LIBRARY_NAME=nvidia)
      [ -n "$NVJSON" ] && genv+=(__EGL_VENDOR_LIBRARY_FILENAMES="$NVJSON") ;;
    *) say "unknown phase $NAME"; return 1 ;;
  esac
  say "==================== phase $NAME ($(left) s left): ${genv[*]}"
  start_xvfb "$glx GLX" || { sum "$NAME: Xvfb did not start"; phase_logs; return 1; }

  local probe
  probe=$(env "${genv[@]}" timeout 20 python3 "$KIT/kit.py" glxprobe 2>&1 | grep -v '^$' | tail -3)
  echo "$probe"

  env LD_LIBRARY_PATH="$M" timeout 30 "$SAPA" user add --db "sqlite:$DB" --name ana --role agent --password "$PW" ||
    { say "FAILED: sapa user add"; sum "$NAME: sapa user add failed"; stop $XVFB; phase_logs; return 1; }
  bg "$PH/switchboard.log" env LD_LIBRARY_PATH="$M" "$SAPA" switchboard --listen 127.0.0.1:$PORT --media-listen 127.0.0.1:$MPORT --db "sqlite:$DB"
  local sb=$BG up=0
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then up=1; break; fi
    kill -0 $sb 2>/dev/null || break
    sleep 0.1
  done
  if [ $up = 0 ]; then
    say "FAILED: the switchboard did not listen on $PORT; its log:"; cat "$PH/switchboard.log"
    sum "$NAME: switchboard failed"; stop $sb $XVFB; phase_logs; return 1
  fi

  env "${genv[@]}" NO_COLOR=1 SAPA_PASSWORD="$PW" SAPA_BENCH_LOG="$PH/frames.log" \
    SAPA_LOG='warn,sapa=info,eframe=debug,egui_glow=debug,glutin=debug,glutin_winit=debug' \
    XDG_CONFIG_HOME="$PH/config" XDG_DATA_HOME="$PH/data" XDG_RUNTIME_DIR="$PH/runtime" \
    XKB_CONFIG_ROOT="$X/usr/share/X11/xkb" \
    "$SAPA" phone --switchboard 127.0.0.1:$PORT --user ana --no-audio \
    >"$PH/phone.log" 2>&1 &
  local ph=$!
  PIDS+=("$ph")
  local win="" i
  for i in $(seq 1 300); do
    win=$(xdo search --onlyvisible --name '^Sapa$' 2>/dev/null | head -1)
    [ -n "$win" ] && break
    kill -0 $ph 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$win" ]; then
    say "FAILED: no phone window (phone $(kill -0 $ph 2>/dev/null && echo running || echo exited)); its log:"
    tail -n 60 "$PH/phone.log"
    sum "$NAME: no phone window; probe: $(tr '\n' ' ' <<<"$probe")"
    stop $ph $sb $XVFB; phase_logs; return 1
  fi
  say "phone pid $ph, window $win"
  local gl
  gl=$(grep -oE 'opengl renderer: .*|created GL Display with version: [^ ]+( [^ ]+)?' "$PH/phone.log" | tr '\n' ';')
  say "phone GL: ${gl:-(not logged yet)}"
  python3 "$KIT/kit.py" wait-state "$DB" ana not_ready 60 || say "ana not logged in (not_ready) in 60 s"
  press_until "$win" F6 available || { sum "$NAME: F6 did not make ana available"; stop $ph $sb $XVFB; phase_logs; return 1; }
  xdo mousemove 1270 890 >/dev/null 2>&1
  sleep 5
  say "measuring idle (available) for $SECS s"
  local idle
  idle=$(python3 "$KIT/kit.py" measure $ph "$SECS" "$PH/frames.log" 2>&1)
  echo "$idle"

  bg "$PH/caller.log" env LD_LIBRARY_PATH="$M" "$SAPA" caller --switchboard 127.0.0.1:$PORT --from +15550100 --name 'Budi Santoso' \
    --play sounds/hold-music.wav --record "$PH/caller.wav" --talk-secs 60 --max-wait-secs 30
  local cl=$BG incall="" ev="" nvsmi="" gm=""
  if python3 "$KIT/kit.py" wait-state "$DB" ana offered 20; then
    say "ringing"
    sleep 2
    if press_until "$win" F9 on_call; then
      xdo mousemove 1270 890 >/dev/null 2>&1
      sleep 5
      say "measuring in the call for $SECS s"
      incall=$(python3 "$KIT/kit.py" measure $ph "$SECS" "$PH/frames.log" 2>&1)
      echo "$incall"
      ev=$(python3 "$KIT/kit.py" gpu-evidence $ph 2>&1)
      echo "$ev"
      if command -v nvidia-smi >/dev/null 2>&1; then
        gm=$(gpumem)
        nvsmi=$(timeout 20 nvidia-smi 2>&1)
        echo "$nvsmi"
      fi
      [ -f "$PH/fb/Xvfb_screen0" ] && timeout 30 python3 "$KIT/kit.py" xwd2png "$PH/fb/Xvfb_screen0" "$OUT/screen-$NAME.png"
      say "call state now: $(python3 "$KIT/kit.py" state "$DB" ana 2>&1)"
    fi
  else
    say "FAILED: the call never rang ana; caller log:"; tail -n 30 "$PH/caller.log"
  fi
  gl=$(grep -oE 'opengl (renderer|vendor|version): .*|created GL Display with version: [^ ]+( [^ ]+)?' "$PH/phone.log" |
    sed 's/created GL Display with version: /display /' | tr '\n' ';' | sed 's/;/; /g')
  local api
  api=$(grep -oE 'config: (Glx|Egl)' "$PH/phone.log" | head -1 | sed 's/config: //')

  local ir cr er
  ir=$(grep '^RESULT' <<<"$idle")
  cr=$(grep '^RESULT' <<<"$incall")
  er=$(grep '^RESULT' <<<"$ev")
  local nvproc=no
  grep -qE "\b$ph\b.*sapa|sapa.*\b$ph\b" <<<"$nvsmi" && nvproc=yes
  grep -qE '\bsapa\b' <<<"$nvsmi" && nvproc=yes
  sum ""
  sum "== $NAME"
  sum "GLX probe: $(grep -E 'GL_RENDERER|glxprobe' <<<"$probe" | tail -1 | sed 's/^glxprobe: //')"
  sum "phone GL: ${gl:-not logged}${api:+ (glutin config: $api)}"
  sum "GPU use: nvidia libraries mapped=$(field nvidia_libs "$er") /dev/nvidia* fds=$(field nvidia_fds "$er") llvmpipe mapped=$(field llvmpipe_libs "$er"); phone in nvidia-smi: $nvproc; GPU memory used in the call: ${gm:-?}"
  if [ -n "$ir" ]; then
    sum "idle (available): CPU $(field cpu "$ir") % of a core, $(field fps "$ir") repaints/s (median frame CPU $(field frame_cpu_ms "$ir") ms), RSS $(field rss "$ir") MB (anon $(field anon "$ir"), file $(field file "$ir"), shmem $(field shmem "$ir"))"
    sum "  $(grep 'by thread' <<<"$idle" | sed 's/^ *//' | cut -c1-300)"
  else
    sum "idle: not measured"
  fi
  if [ -n "$cr" ]; then
    sum "in call: CPU $(field cpu "$cr") % of a core, $(field fps "$cr") repaints/s (median frame CPU $(field frame_cpu_ms "$cr") ms), RSS $(field rss "$cr") MB (anon $(field anon "$cr"), file $(field file "$cr"), shmem $(field shmem "$cr")), peak RSS $(field hwm "$cr") MB"
    sum "  $(grep 'by thread' <<<"$incall" | sed 's/^ *//' | cut -c1-300)"
    sum "  $(grep 'biggest mappings' <<<"$incall" | sed 's/^ *//' | cut -c1-300)"
  else
    sum "in call: not measured"
  fi
  stop $cl $ph $sb $XVFB
  phase_logs
  return 0
}

mkdir -p "$W"
for p in $PHASES; do
  if [ "$(left)" -lt $((2 * SECS + 60)) ]; then
    say "skipping phase $p: $(left) s left of the ${BUDGET} s budget"
    sum "$p: skipped (time)"
    continue
  fi
  run_phase "$p"
done
cleanup
say "== done in $(($(date +%s) - T0)) s"
echo
echo "=============== summary ($SUMMARY)"
cat "$SUMMARY"
ls -la "$OUT"
