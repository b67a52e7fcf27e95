#!/usr/bin/env python3
"""Click trains for the mouth-to-ear benchmarks (device_latency.sh, phone_latency.sh).

  clicks.py write OUT.wav     20 s at 48 kHz: a 5 ms 2 kHz click every 0.5 s, from 0.25 s
  clicks.py echo HEARD.wav    what the caller recorded while the far end echoed the clicks
                              back through its devices: each click's echo delay is the round
                              trip; prints one way (round trip / 2) over the clicks
"""
import sys

import numpy as np
from scipy.io import wavfile

RATE = 48000
FIRST, EVERY, LENGTH = 12000, 24000, 240


def write(path):
    s = np.zeros(RATE * 20, dtype=np.float32)
    t = np.arange(LENGTH) / RATE
    for at in range(FIRST, len(s) - 2 * LENGTH, EVERY):
        s[at:at + LENGTH] = 0.8 * np.sin(2 * np.pi * 2000 * t)
    wavfile.write(path, RATE, (s * 32767).astype(np.int16))


def echo(path):
    _, x = wavfile.read(path)
    x = x.astype(np.float64) / 32768
    delays = []
    for at in range(FIRST, len(x) - EVERY, EVERY):
        w = np.abs(x[at:at + EVERY - 2000])
        i = np.argmax(w > 0.1)
        if w[i] > 0.1:
            delays.append(i / 48.0 / 2)
    d = np.array(delays)
    if len(d):
        print(f"clicks {len(d)}  one-way ms: median {np.median(d):.1f} "
              f"min {d.min():.1f} max {d.max():.1f}")
    else:
        print("no echo found")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "echo"):
        sys.exit(__doc__)
    {"write": write, "echo": echo}[sys.argv[1]](sys.argv[2])
