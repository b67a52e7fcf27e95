#!/usr/bin/env python3
"""A microphone that behaves like a sound card's, for device_cpu.sh.

The virtual headset's microphone is a null sink's monitor: it delivers audio in pieces cut at
the edges of every stream that plays into that sink (2.5-3.3 ms), three or four times as many
pieces as a sound card's 10 ms periods, and each piece wakes the phone's PulseAudio thread.
This feeds a PulseAudio pipe source instead, 10 ms every 10 ms on its own clock, as a card's
microphone would, so the benchmark counts the phone's work and not the rig's.

  paced_mic.py conversation SPEECH.wav OUT.wav SECONDS   one side of a call: SPEECH (about
      8 s) then 12 s of noise at -59 dBFS, repeated; the other side is OUT shifted by 12 s
  paced_mic.py feed FIFO SPEECH.wav       writes the agent's side to FIFO (s16le, 48 kHz,
      mono) in 10 ms blocks every 10 ms, until killed
"""
import sys
import time

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

RATE = 48000
QUIET_S = 12


def talk_then_quiet(speech_path, seed):
    rate, x = wavfile.read(speech_path)
    x = x.astype(np.float32) / 32768
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = resample_poly(x, RATE, rate) * 0.5
    rng = np.random.default_rng(seed)

    def noise(n):
        return rng.standard_normal(n).astype(np.float32) * 10 ** (-59 / 20)

    return np.concatenate([x + noise(len(x)), noise(QUIET_S * RATE)])


def pcm16(x):
    return (np.clip(x, -1, 1) * 32767).astype('<i2')


def conversation(speech_path, out_path, seconds):
    turn = talk_then_quiet(speech_path, 2)
    # The caller is quiet while the agent talks: start with the quiet part.
    turn = np.concatenate([turn[-QUIET_S * RATE:], turn[:-QUIET_S * RATE]])
    reps = int(seconds * RATE / len(turn)) + 1
    wavfile.write(out_path, RATE, pcm16(np.tile(turn, reps)[:int(seconds * RATE)]))


def feed(fifo, speech_path):
    pcm = pcm16(talk_then_quiet(speech_path, 1)).tobytes()
    block = RATE // 100 * 2
    pos = 0
    out = open(fifo, 'wb', buffering=0)
    due = time.monotonic()
    while True:
        if pos + block > len(pcm):
            pos = 0
        out.write(pcm[pos:pos + block])
        pos += block
        due += 0.01
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)


if __name__ == '__main__':
    if sys.argv[1:2] == ['conversation'] and len(sys.argv) == 5:
        conversation(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif sys.argv[1:2] == ['feed'] and len(sys.argv) == 4:
        feed(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
