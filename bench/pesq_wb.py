#!/usr/bin/env python3
"""PESQ wideband (ITU-T P.862.2) of a degraded recording against the reference speech.

Usage: pesq_wb.py REF.wav DEG.wav   (any rate; both are resampled to 16 kHz mono)
Prints the MOS-LQO. Needs: pip install numpy scipy pesq
"""
import sys
import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly
from pesq import pesq


def load16k(path):
    rate, data = wavfile.read(path)
    data = data.astype(np.float64)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if np.issubdtype(data.dtype, np.floating) and np.abs(data).max() > 2:
        data = data / 32768.0
    g = np.gcd(int(rate), 16000)
    return resample_poly(data, 16000 // g, int(rate) // g)


ref = load16k(sys.argv[1])
deg = load16k(sys.argv[2])
# The recording starts at the answer; trim leading silence so lengths are comparable.
start = np.argmax(np.abs(deg) > 1e-3 * 32768 if np.abs(deg).max() > 2 else np.abs(deg) > 1e-3)
deg = deg[max(0, start - 1600):]
n = min(len(ref), len(deg))
print(f"{pesq(16000, ref[:n], deg[:n], 'wb'):.3f}")
