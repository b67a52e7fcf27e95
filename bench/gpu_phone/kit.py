#!/usr/bin/env python3
"""Helpers for .gl/run.sh (standard library only).

  kit.py measure PID SECS FRAMELOG   CPU (% of one core, whole process and by thread),
                                     repaints/s and frame CPU from the phone's SAPA_BENCH_LOG,
                                     RSS and its parts, biggest mapped files; last line
                                     'RESULT key=value ...'
  kit.py state DB AGENT              the agent's last state in the switchboard's SQLite db
  kit.py wait-state DB AGENT STATE SECS   exit 0 once it is STATE, 1 at the deadline
  kit.py glxprobe                    GL_VENDOR / GL_RENDERER / GL_VERSION of a GLX window
                                     on $DISPLAY through libGL.so.1 (glvnd), direct or not
  kit.py gpu-evidence PID            GPU/GL libraries mapped by PID and its /dev/nvidia* and
                                     /dev/dri fds
  kit.py xwd2png IN.xwd OUT.png      Xvfb's -fbdir screen file to PNG (zlib only)
"""
import os
import sys
import time


def ticks(path):
    with open(path) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
            n = ticks(f"/proc/{pid}/task/{t}/stat")
        except (OSError, ValueError, IndexError):
            continue
        out[name] = out.get(name, 0) + n
    return out


def status_mb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    vals[k] = int(v.split()[0]) / 1024.0
    except OSError:
        pass
    return vals


def mapped_files(pid, top=8):
    """Rss per mapped file (MB), biggest first."""
    per = {}
    cur = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                    cur = parts[5] if len(parts) >= 6 else "[anon]"
                elif parts[0] == "Rss:" and cur is not None:
                    per[cur] = per.get(cur, 0) + int(parts[1])
    except OSError:
        return []
    items = sorted(per.items(), key=lambda kv: -kv[1])
    return [(os.path.basename(k) if k.startswith("/") else k, v / 1024.0) for k, v in items[:top]]


def frames(log, us0, us1):
    n, cpu = 0, []
    try:
        with open(log) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[0] == "frame":
                    start = int(p[1])
                    if us0 <= start < us1:
                        n += 1
                        if int(p[2]) >= 0:
                            cpu.append(int(p[2]) / 1000.0)
    except (OSError, ValueError):
        pass
    cpu.sort()
    return n, (cpu[len(cpu) // 2] if cpu else float("nan"))


def measure(pid, secs, log):
    hz = os.sysconf("SC_CLK_TCK")
    t0, us0 = time.monotonic(), int(time.time() * 1e6)
    c0, th0 = ticks(f"/proc/{pid}/stat"), thread_ticks(pid)
    time.sleep(secs)
    c1, th1 = ticks(f"/proc/{pid}/stat"), thread_ticks(pid)
    wall, us1 = time.monotonic() - t0, int(time.time() * 1e6)
    cpu = (c1 - c0) / hz / wall * 100.0
    by = sorted(((n, (t - th0.get(n, 0)) / hz / wall * 100.0) for n, t in th1.items()),
                key=lambda kv: -kv[1])
    by = [(n, p) for n, p in by if p > 0][:10]
    n, frame_ms = frames(log, us0, us1)
    mem = status_mb(pid)
    print(f"  window {wall:.1f} s, {hz} ticks/s")
    print("  by thread: " + (", ".join(f"{n} {p:.2f} %" for n, p in by) or "(none)"))
    print("  biggest mappings (RSS): " + ", ".join(f"{n} {mb:.1f} MB" for n, mb in mapped_files(pid)))
    print(f"RESULT cpu={cpu:.2f} fps={n / wall:.2f} frame_cpu_ms={frame_ms:.2f} "
          f"rss={mem.get('VmRSS', 0):.1f} anon={mem.get('RssAnon', 0):.1f} "
          f"file={mem.get('RssFile', 0):.1f} shmem={mem.get('RssShmem', 0):.1f} "
          f"hwm={mem.get('VmHWM', 0):.1f}")


def last_state(db, agent):
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    try:
        row = con.execute("SELECT state FROM agent_state_log WHERE agent = ? "
                          "ORDER BY at DESC, id DESC LIMIT 1", (agent,)).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def wait_state(db, agent, state, secs):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        try:
            last = last_state(db, agent)
        except Exception as e:  # the db may not exist yet, or be locked for a moment
            last = f"(error: {e})"
        if last == state:
            return 0
        time.sleep(0.05)
    print(f"state of {agent}: {last}, not {state}", file=sys.stderr)
    return 1


def glxprobe():
    import ctypes as C

    x11 = C.CDLL("libX11.so.6")
    gl = C.CDLL("libGL.so.1")

    class XVisualInfo(C.Structure):
        _fields_ = [("visual", C.c_void_p), ("visualid", C.c_ulong), ("screen", C.c_int),
                    ("depth", C.c_int), ("c_class", C.c_int), ("red_mask", C.c_ulong),
                    ("green_mask", C.c_ulong), ("blue_mask", C.c_ulong),
                    ("colormap_size", C.c_int), ("bits_per_rgb", C.c_int)]

    class XSetWindowAttributes(C.Structure):
        _fields_ = [("background_pixmap", C.c_ulong), ("background_pixel", C.c_ulong),
                    ("border_pixmap", C.c_ulong), ("border_pixel", C.c_ulong),
                    ("bit_gravity", C.c_int), ("win_gravity", C.c_int),
                    ("backing_store", C.c_int), ("backing_planes", C.c_ulong),
                    ("backing_pixel", C.c_ulong), ("save_under", C.c_int),
                    ("event_mask", C.c_long), ("do_not_propagate_mask", C.c_long),
                    ("override_redirect", C.c_int), ("colormap", C.c_ulong),
                    ("cursor", C.c_ulong)]

    x11.XOpenDisplay.restype = C.c_void_p
    x11.XOpenDisplay.argtypes = [C.c_char_p]
    x11.XDefaultScreen.argtypes = [C.c_void_p]
    x11.XRootWindow.restype = C.c_ulong
    x11.XRootWindow.argtypes = [C.c_void_p, C.c_int]
    x11.XCreateColormap.restype = C.c_ulong
    x11.XCreateColormap.argtypes = [C.c_void_p, C.c_ulong, C.c_void_p, C.c_int]
    x11.XCreateWindow.restype = C.c_ulong
    x11.XCreateWindow.argtypes = [C.c_void_p, C.c_ulong, C.c_int, C.c_int, C.c_uint, C.c_uint,
                                  C.c_uint, C.c_int, C.c_uint, C.c_void_p, C.c_ulong,
                                  C.POINTER(XSetWindowAttributes)]
    x11.XMapWindow.argtypes = [C.c_void_p, C.c_ulong]
    x11.XSync.argtypes = [C.c_void_p, C.c_int]
    gl.glXQueryExtension.argtypes = [C.c_void_p, C.POINTER(C.c_int), C.POINTER(C.c_int)]
    gl.glXQueryServerString.restype = C.c_char_p
    gl.glXQueryServerString.argtypes = [C.c_void_p, C.c_int, C.c_int]
    gl.glXChooseVisual.restype = C.POINTER(XVisualInfo)
    gl.glXChooseVisual.argtypes = [C.c_void_p, C.c_int, C.POINTER(C.c_int)]
    gl.glXCreateContext.restype = C.c_void_p
    gl.glXCreateContext.argtypes = [C.c_void_p, C.POINTER(XVisualInfo), C.c_void_p, C.c_int]
    gl.glXMakeCurrent.argtypes = [C.c_void_p, C.c_ulong, C.c_void_p]
    gl.glXIsDirect.argtypes = [C.c_void_p, C.c_void_p]
    gl.glXSwapBuffers.argtypes = [C.c_void_p, C.c_ulong]
    gl.glGetString.restype = C.c_char_p
    gl.glGetString.argtypes = [C.c_uint]

    dpy = x11.XOpenDisplay(None)
    if not dpy:
        print("glxprobe: cannot open display", os.environ.get("DISPLAY"))
        return 1
    err, ev = C.c_int(), C.c_int()
    if not gl.glXQueryExtension(dpy, C.byref(err), C.byref(ev)):
        print("glxprobe: the X server has no GLX extension")
        return 1
    scr = x11.XDefaultScreen(dpy)
    vendor = gl.glXQueryServerString(dpy, scr, 1)  # GLX_VENDOR
    print(f"glxprobe: server GLX vendor {vendor!r}, "
          f"__GLX_VENDOR_LIBRARY_NAME={os.environ.get('__GLX_VENDOR_LIBRARY_NAME')}")
    attrs = (C.c_int * 5)(4, 5, 12, 16, 0)  # GLX_RGBA, GLX_DOUBLEBUFFER, GLX_DEPTH_SIZE 16
    vi = gl.glXChooseVisual(dpy, scr, attrs)
    if not vi:
        print("glxprobe: glXChooseVisual found no visual (no usable GLX vendor library?)")
        return 1
    root = x11.XRootWindow(dpy, scr)
    swa = XSetWindowAttributes()
    swa.colormap = x11.XCreateColormap(dpy, root, vi.contents.visual, 0)
    swa.border_pixel = 0
    win = x11.XCreateWindow(dpy, root, 0, 0, 64, 64, 0, vi.contents.depth, 1,
                            vi.contents.visual, (1 << 3) | (1 << 13), C.byref(swa))
    x11.XMapWindow(dpy, win)
    x11.XSync(dpy, 0)
    ctx = gl.glXCreateContext(dpy, vi, None, 1)
    if not ctx or not gl.glXMakeCurrent(dpy, win, ctx):
        print("glxprobe: no GLX context could be made current")
        return 1
    gl.glClear(0x4000)
    gl.glXSwapBuffers(dpy, win)
    gl.glFinish()
    s = lambda e: (gl.glGetString(e) or b"?").decode(errors="replace")
    print(f"glxprobe: GL_VENDOR={s(0x1F00)!r} GL_RENDERER={s(0x1F01)!r} "
          f"GL_VERSION={s(0x1F02)!r} direct={'yes' if gl.glXIsDirect(dpy, ctx) else 'no'}")
    return 0


def gpu_evidence(pid):
    libs = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                p = line.split()
                if len(p) >= 6:
                    b = os.path.basename(p[5])
                    low = b.lower()
                    if any(k in low for k in ("nvidia", "nvcuda", "mesa", "swrast", "llvm",
                                              "libglx", "libegl", "libgl.", "libgldispatch",
                                              "dri")):
                        libs.add(p[5])
    except OSError as e:
        print(f"gpu-evidence: {e}")
        return 1
    fds = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("/dev/nvidia") or t.startswith("/dev/dri"):
                fds.append(t)
    except OSError:
        pass
    print("gpu-evidence: mapped GL/GPU libraries: " + (", ".join(sorted(libs)) or "none"))
    print("gpu-evidence: device fds: " + (", ".join(sorted(fds)) or "none"))
    nv = any("nvidia" in l.lower() for l in libs)
    print(f"RESULT nvidia_libs={'yes' if nv else 'no'} nvidia_fds={sum('nvidia' in f for f in fds)} "
          f"llvmpipe_libs={'yes' if any('swrast' in l or 'LLVM' in l for l in libs) else 'no'}")
    return 0


def xwd2png(src, dst):
    import struct
    import zlib
    with open(src, "rb") as f:
        data = f.read()
    h = struct.unpack(">25I", data[:100])
    header_size, width, height = h[0], h[4], h[5]
    byte_order, bpp, bpl, ncolors = h[7], h[11], h[12], h[19]
    off = header_size + ncolors * 12
    if bpp != 32:
        print(f"xwd2png: {bpp} bits per pixel not handled")
        return 1
    pix = data[off:off + bpl * height]
    rows = []
    for y in range(height):
        row = pix[y * bpl:y * bpl + width * 4]
        rgb = bytearray(width * 3)
        if byte_order == 0:  # LSBFirst: B G R X
            rgb[0::3], rgb[1::3], rgb[2::3] = row[2::4], row[1::4], row[0::4]
        else:  # MSBFirst: X R G B
            rgb[0::3], rgb[1::3], rgb[2::3] = row[1::4], row[2::4], row[3::4]
        rows.append(b"\0" + bytes(rgb))

    def chunk(kind, body):
        c = struct.pack(">I", len(body)) + kind + body
        return c + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))
    with open(dst, "wb") as f:
        f.write(png)
    print(f"xwd2png: {width}x{height} -> {dst} ({len(png)} bytes)")
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "measure":
        measure(int(argv[2]), float(argv[3]), argv[4])
        return 0
    if cmd == "state":
        print(last_state(argv[2], argv[3]))
        return 0
    if cmd == "wait-state":
        return wait_state(argv[2], argv[3], argv[4], float(argv[5]))
    if cmd == "glxprobe":
        return glxprobe()
    if cmd == "gpu-evidence":
        return gpu_evidence(int(argv[2]))
    if cmd == "xwd2png":
        return xwd2png(argv[2], argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
