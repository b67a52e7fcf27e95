#!/usr/bin/env python3
"""Generates Sapa's sound files into sounds/ (48 kHz, mono, 16-bit WAV).

Everything is synthesised here from plain math (Python standard library only), except the two
spoken prompts, which come from espeak-ng and are resampled with sox (or, without sox, by a
simple resampler below). Output is deterministic: the same script gives the same files.

    python3 scripts/gen-sounds.py            # writes sounds/*.wav
    python3 scripts/gen-sounds.py --out DIR  # somewhere else

See sounds/README.md for what each file is.
"""

import argparse
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave

RATE = 48_000
TAU = 2.0 * math.pi


# ---------------------------------------------------------------- helpers

def db(x):
    """Linear amplitude of a level in dBFS."""
    return 10.0 ** (x / 20.0)


def silence(seconds):
    return [0.0] * int(round(seconds * RATE))


def tone(freqs, seconds, amp_each, ramp=0.005):
    """Sum of sines, each of peak amplitude amp_each, with raised-cosine ramps at both ends."""
    n = int(round(seconds * RATE))
    steps = [TAU * f / RATE for f in freqs]
    out = [amp_each * sum(math.sin(s * i) for s in steps) for i in range(n)]
    return fade(out, ramp)


def fade(samples, ramp):
    """Raised-cosine fade in and out over `ramp` seconds (in place, returns the list)."""
    r = min(int(ramp * RATE), len(samples) // 2)
    for i in range(r):
        g = 0.5 - 0.5 * math.cos(math.pi * i / r)
        samples[i] *= g
        samples[-1 - i] *= g
    return samples


def normalise(samples, peak_dbfs):
    peak = max(abs(v) for v in samples) or 1.0
    return [v * db(peak_dbfs) / peak for v in samples]


def midi_hz(note):
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def write_wav(path, samples):
    peak = max((abs(s) for s in samples), default=0.0)
    if peak > 1.0:
        raise SystemExit(f"{path}: peak {peak:.3f} would clip")
    frames = bytearray()
    for s in samples:
        frames += struct.pack("<h", int(round(max(-1.0, min(1.0, s)) * 32767)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    print(f"  {os.path.basename(path):20s} {len(samples) / RATE:6.2f} s  peak {peak:.2f}")


def read_wav_mono(path):
    """Reads a 16-bit PCM WAV (mono, or the first channel) into floats and its rate."""
    with wave.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise SystemExit(f"{path}: expected 16-bit samples, got {8 * width}-bit")
    vals = struct.unpack("<%dh" % (len(raw) // 2), raw)
    return [v / 32768.0 for v in vals[::ch]], rate


def resample_linear(samples, from_rate, to_rate):
    """Fallback resampler (when sox is missing): windowed-sinc would be better, but espeak's
    output has little energy near Nyquist, so linear interpolation after a gentle low-pass is
    adequate for prompts."""
    if from_rate == to_rate:
        return list(samples)
    # 3-tap smoothing to tame imaging when upsampling.
    sm = [samples[0]] + [
        0.25 * samples[i - 1] + 0.5 * samples[i] + 0.25 * samples[i + 1]
        for i in range(1, len(samples) - 1)
    ] + [samples[-1]]
    n_out = int(len(sm) * to_rate / from_rate)
    out = []
    for j in range(n_out):
        x = j * from_rate / to_rate
        i = int(x)
        f = x - i
        a = sm[min(i, len(sm) - 1)]
        b = sm[min(i + 1, len(sm) - 1)]
        out.append(a + (b - a) * f)
    return out


# ---------------------------------------------------------------- call-progress tones

def ringback():
    """North-American ringback: 440 + 480 Hz, 2 s on, 4 s off (one loopable cycle)."""
    return tone([440, 480], 2.0, db(-20)) + silence(4.0)


def busy():
    """Busy: 480 + 620 Hz, 0.5 s on, 0.5 s off."""
    return tone([480, 620], 0.5, db(-20)) + silence(0.5)


def monitor_beep():
    """Single 1400 Hz beep of 0.2 s (the usual "call is recorded/monitored" tone)."""
    return tone([1400], 0.2, db(-12), ramp=0.01) + silence(0.05)


DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "star": (941, 1209), "0": (941, 1336), "hash": (941, 1477),
}


def dtmf(key):
    """100 ms DTMF key tone; the high group 2 dB above the low group, as phones send it."""
    low, high = DTMF[key]
    n = int(0.1 * RATE)
    a_low, a_high = db(-12), db(-10)
    out = [a_low * math.sin(TAU * low * i / RATE) + a_high * math.sin(TAU * high * i / RATE)
           for i in range(n)]
    return fade(out, 0.003)


# ---------------------------------------------------------------- ringtone

def marimba_note(freq, seconds, amp):
    """A soft mallet note: fundamental plus the 4x and 10x partials of a marimba bar, each
    decaying faster than the last, with a 2 ms attack."""
    n = int(seconds * RATE)
    partials = [(1.0, 1.0, 2.2), (3.93, 0.16, 10.0), (9.2, 0.025, 24.0)]  # ratio, level, decay/s
    out = []
    for i in range(n):
        t = i / RATE
        v = 0.0
        for ratio, level, decay in partials:
            f = freq * ratio
            if f < RATE / 2.0:
                v += level * math.exp(-decay * t) * math.sin(TAU * f * t)
        out.append(amp * v * min(1.0, t / 0.002))
    return fade(out, 0.004)


def ringtone():
    """A friendly two-burst ring: each burst a quick A5-C#6-E6 arpeggio played twice over a
    soft trill, then a pause. 4 s, loops seamlessly (it ends in silence)."""
    notes = [81, 85, 88, 85] * 3  # A5 C#6 E6 C#6 ...
    step = 0.085
    burst = [0.0] * int(1.3 * RATE)
    for k, note in enumerate(notes):
        start = int(k * step * RATE)
        note_samples = marimba_note(midi_hz(note), 0.35, 0.42)
        for i, v in enumerate(note_samples):
            if start + i < len(burst):
                burst[start + i] += v
    burst = normalise(fade(burst, 0.01), -3.0)
    return burst + silence(0.2) + burst + silence(1.2)


# ---------------------------------------------------------------- hold music

BPM = 96
BEAT = 60.0 / BPM


def add(buf, start_s, samples):
    """Adds `samples` into the circular buffer `buf` at `start_s` (wrapping, so the loop
    point is seamless)."""
    n = len(buf)
    start = int(round(start_s * RATE))
    for i, v in enumerate(samples):
        buf[(start + i) % n] += v


def pad_voice(freq, seconds, amp):
    """Warm pad: two slightly detuned voices with a soft second harmonic, slow swell."""
    n = int(seconds * RATE)
    attack, release = 0.35, 0.6
    f1, f2 = freq * 1.0012, freq / 1.0012
    out = []
    for i in range(n):
        t = i / RATE
        env = min(1.0, t / attack) * min(1.0, max(0.0, (seconds - t) / release))
        v = (math.sin(TAU * f1 * t) + math.sin(TAU * f2 * t)
             + 0.25 * math.sin(TAU * 2 * f1 * t) + 0.08 * math.sin(TAU * 3 * f2 * t))
        out.append(amp * env * v / 2.3)
    return out


def epiano(freq, seconds, amp):
    """Electric-piano-like note: simple FM whose brightness decays, exponential decay."""
    n = int(seconds * RATE)
    out = []
    for i in range(n):
        t = i / RATE
        index = 1.2 * math.exp(-3.0 * t) + 0.15
        env = math.exp(-1.6 * t) * min(1.0, t / 0.004)
        tail = min(1.0, max(0.0, (seconds - t) / 0.05))
        out.append(amp * env * tail * math.sin(TAU * freq * t + index * math.sin(TAU * freq * t)))
    return out


def bass(freq, seconds, amp):
    """Round plucked bass: fundamental and a little octave, decaying."""
    n = int(seconds * RATE)
    out = []
    for i in range(n):
        t = i / RATE
        env = math.exp(-2.2 * t) * min(1.0, t / 0.006) * min(1.0, max(0.0, (seconds - t) / 0.05))
        out.append(amp * env * (math.sin(TAU * freq * t) + 0.3 * math.sin(TAU * 2 * freq * t)))
    return out


def reverb(x, wet=0.22):
    """Small Schroeder reverb (4 combs, 2 all-passes), run over the loop twice so the tail
    wraps around and the loop stays seamless."""
    n = len(x)
    src = x + x
    combs = [(1557, 0.80), (1617, 0.79), (1491, 0.81), (1422, 0.80)]
    acc = [0.0] * len(src)
    for delay, g in combs:
        d = int(delay * RATE / 25_000)  # the classic delays are for 25 kHz
        buf = [0.0] * d
        idx = 0
        for i, v in enumerate(src):
            y = buf[idx]
            buf[idx] = v + g * y
            idx = (idx + 1) % d
            acc[i] += y * 0.25
    for delay, g in [(225, 0.5), (556, 0.5)]:
        d = int(delay * RATE / 25_000)
        buf = [0.0] * d
        idx = 0
        for i, v in enumerate(acc):
            b = buf[idx]
            y = -g * v + b
            buf[idx] = v + g * y
            idx = (idx + 1) % d
            acc[i] = y
    return [x[i] * (1.0 - wet) + acc[n + i] * wet for i in range(n)]


def hold_music():
    """20 s at 96 bpm: I-vi-IV-V in C (Cmaj7, Am7, Fmaj7, G6), two bars each, with a pad,
    a bass, soft eighth-note arpeggios and a pentatonic melody on an electric piano."""
    bars = 8
    total = bars * 4 * BEAT
    buf = [0.0] * int(round(total * RATE))
    chords = [  # (bass root, pad notes, arpeggio notes) as MIDI numbers
        (36, [55, 59, 60, 64], [60, 64, 67, 71]),  # Cmaj7
        (45, [57, 60, 64, 67], [57, 60, 64, 67]),  # Am7
        (41, [53, 57, 60, 64], [53, 57, 60, 64]),  # Fmaj7
        (43, [55, 59, 62, 64], [55, 59, 62, 64]),  # G6
    ]
    for c, (root, pad, arp) in enumerate(chords):
        start = c * 8 * BEAT
        for note in pad:
            add(buf, start, pad_voice(midi_hz(note), 8 * BEAT + 0.3, 0.035))
        for beat in (0, 2, 4, 6):
            add(buf, start + beat * BEAT, bass(midi_hz(root), 2 * BEAT, 0.13))
        order = [0, 1, 2, 3, 2, 1, 2, 3] * 2
        for k, idx in enumerate(order):
            add(buf, start + k * BEAT / 2, epiano(midi_hz(arp[idx]), 0.9, 0.035))
    melody = [  # (MIDI note or None for a rest, beats)
        (76, 1), (79, 1), (81, 1), (79, 1), (76, 1.5), (74, 0.5), (72, 2),
        (72, 1), (76, 1), (81, 1.5), (79, 0.5), (76, 3), (None, 1),
        (81, 1), (84, 1), (81, 1), (79, 1), (81, 1.5), (79, 0.5), (76, 2),
        (74, 1), (76, 1), (79, 1), (81, 1), (79, 2), (74, 1), (None, 1),
    ]
    t = 0.0
    for note, beats in melody:
        if note is not None:
            add(buf, t, epiano(midi_hz(note), beats * BEAT + 0.5, 0.12))
        t += beats * BEAT
    assert abs(t - total) < 1e-9, "melody must fill the loop exactly"
    return normalise(reverb(buf), -4.0)


# ---------------------------------------------------------------- prompts

PROMPTS = {
    "queue-prompt.wav": "Please hold, an agent will be with you shortly.",
    "survey-prompt.wav": "Please rate your call from one to five on your keypad.",
    "menu-prompt.wav": "For billing, press 1. For technical support, press 2.",
    "callback-prompt.wav": "To be called back instead of waiting, press star. "
    "You keep your place in the queue.",
}


def prompt(text, path):
    """Speaks `text` with espeak-ng (US English), resampled to 48 kHz mono 16-bit and
    normalised to -3 dBFS peak, with 0.2 s of silence before and after. sox runs without
    dither (-D) so that regenerating gives byte-identical files."""
    espeak = shutil.which("espeak-ng")
    if not espeak:
        print(f"  {os.path.basename(path):20s} skipped: espeak-ng is not installed", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", raw, text], check=True)
        sox = shutil.which("sox")
        if sox:
            res = os.path.join(tmp, "48k.wav")
            subprocess.run([sox, "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", res,
                            "rate", "-v", "norm", "-3"], check=True)
            samples, _ = read_wav_mono(res)
        else:
            samples, rate = read_wav_mono(raw)
            samples = normalise(resample_linear(samples, rate, RATE), -3.0)
    write_wav(path, silence(0.2) + samples + silence(0.2))
    return True


# ---------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "sounds"))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    print(f"writing to {out}")
    write_wav(os.path.join(out, "ringback.wav"), ringback())
    write_wav(os.path.join(out, "busy.wav"), busy())
    write_wav(os.path.join(out, "monitor-beep.wav"), monitor_beep())
    for key in DTMF:
        write_wav(os.path.join(out, f"dtmf-{key}.wav"), dtmf(key))
    write_wav(os.path.join(out, "ringtone.wav"), ringtone())
    write_wav(os.path.join(out, "hold-music.wav"), hold_music())
    for name, text in PROMPTS.items():
        prompt(text, os.path.join(out, name))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".wav"))
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
