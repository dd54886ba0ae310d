"""Non-speech sounds synthesised with numpy/scipy: background music, applause, laughter, noise and a room.

All functions return float32 mono audio at ``SAMPLE_RATE`` with peak about 1 (callers set the level) and draw
every random choice from the ``rng`` they are given, so a clip is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000  # Hz

MAJOR_TRIAD, MINOR_TRIAD = (0, 4, 7), (0, 3, 7)
# Chord roots (semitones above the key) and qualities of a few common progressions: I-IV-V-I, I-vi-IV-V, ...
PROGRESSIONS = (
    ((0, MAJOR_TRIAD), (5, MAJOR_TRIAD), (7, MAJOR_TRIAD), (0, MAJOR_TRIAD)),
    ((0, MAJOR_TRIAD), (9, MINOR_TRIAD), (5, MAJOR_TRIAD), (7, MAJOR_TRIAD)),
    ((9, MINOR_TRIAD), (5, MAJOR_TRIAD), (0, MAJOR_TRIAD), (7, MAJOR_TRIAD)),
    ((0, MINOR_TRIAD), (8, MAJOR_TRIAD), (3, MAJOR_TRIAD), (10, MAJOR_TRIAD)),
)
PENTATONIC = (0, 2, 4, 7, 9)  # melody notes, semitones above the key: never clash with the chords


def normalize_peak(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / top)).astype(np.float32) if top > 0 else x.astype(np.float32)


def midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _note(freq: float, seconds: float, decay_s: float, harmonics: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked/piano-like tone: a few harmonics with a fast attack and an exponential decay."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, harmonics + 1))
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / decay_s)
    return tone * envelope


def _add(out: np.ndarray, x: np.ndarray, start: int) -> None:
    end = min(out.size, start + x.size)
    if end > start:
        out[start:end] += x[: end - start]


def music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Background music: a chord progression (bass + triad per bar), a pentatonic melody and, sometimes, drums."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(75, 140)  # seconds per beat
    key = 48 + int(rng.integers(12))  # C3..B3
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    n_beats = int(seconds / beat) + 1
    for b in range(n_beats):
        start = int(b * beat * SAMPLE_RATE)
        root, triad = progression[(b // 4) % len(progression)]
        if b % 2 == 0:  # chord every second beat, bass on the bar
            for interval in triad:
                _add(out, 0.25 * _note(midi_hz(key + 12 + root + interval), 2 * beat, 0.6, 4, rng), start)
        if b % 4 == 0:
            _add(out, 0.5 * _note(midi_hz(key - 12 + root), 4 * beat, 1.0, 3, rng), start)
        for half in range(2):  # melody in eighth notes, with rests
            if rng.random() < 0.6:
                note = key + 24 + PENTATONIC[rng.integers(len(PENTATONIC))]
                _add(out, 0.35 * _note(midi_hz(note), beat, 0.25, 2, rng), start + int(half * beat / 2 * SAMPLE_RATE))
    if rng.random() < 0.5:
        out += _drums(n, beat, rng)
    return normalize_peak(out)


def _drums(n: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    """Kick on beats 1 and 3 (a falling sine), hi-hat on the off-beats (a high-passed noise tick)."""
    out = np.zeros(n)
    t = np.arange(int(0.15 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.03)) * 0.03)) * np.exp(-t / 0.05)
    hat_b, hat_a = signal.butter(2, 6000, "highpass", fs=SAMPLE_RATE)
    hat_n = int(0.03 * SAMPLE_RATE)
    hat = signal.lfilter(hat_b, hat_a, rng.standard_normal(hat_n)) * np.exp(-t[:hat_n] / 0.008)
    for b in range(int(n / SAMPLE_RATE / beat) + 1):
        start = int(b * beat * SAMPLE_RATE)
        if b % 2 == 0:
            _add(out, 0.6 * kick, start)
        _add(out, 0.2 * hat, start + int(beat / 2 * SAMPLE_RATE))
    return out


def applause(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Applause: many claps (short band-passed noise bursts) at random times, with a fade in and out."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    # A small bank of clap shapes; each clapper's hands have their own resonance.
    claps = []
    for _ in range(12):
        length = int(rng.uniform(0.01, 0.03) * SAMPLE_RATE)
        centre = rng.uniform(700, 3000)
        b, a = signal.butter(2, [centre * 0.6, centre * 1.6], "bandpass", fs=SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        claps.append(signal.lfilter(b, a, rng.standard_normal(length)) * np.exp(-t / rng.uniform(0.003, 0.008)))
    rate = rng.uniform(40, 150)  # claps per second: a few people .. a hall
    n_claps = rng.poisson(rate * seconds)
    for start, which, gain in zip(rng.integers(0, n, n_claps), rng.integers(0, len(claps), n_claps),
                                  rng.uniform(0.3, 1.0, n_claps)):
        _add(out, gain * claps[which], int(start))
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.minimum(t / 0.15, 1.0) * np.minimum((seconds - t) / min(0.6, seconds / 3), 1.0)
    return normalize_peak(out * np.clip(envelope, 0, 1))


def _resonate(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonator: one formant of a vowel."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * freq / SAMPLE_RATE
    return signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def laughter(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Laughter: bouts of "ha" syllables (breath noise, then a voiced /a/ with a falling pitch) at ~5 per second."""
    n = int(seconds * SAMPLE_RATE)
    source = np.zeros(n)
    f0_start = rng.uniform(180, 420)  # Hz: lower (male) .. higher (female, child) laughs
    period = rng.uniform(0.17, 0.26)  # seconds per syllable
    t0 = rng.uniform(0.0, 0.15)
    k = 0
    while t0 + period < seconds:
        voiced = rng.uniform(0.06, 0.11)
        f0 = f0_start * (1 - 0.04 * (k % 8)) * rng.uniform(0.95, 1.05)  # pitch falls along a bout
        gain = (1 - 0.08 * (k % 8)) * rng.uniform(0.7, 1.0)
        start = int(t0 * SAMPLE_RATE)
        breath = int(0.03 * SAMPLE_RATE)
        _add(source, 0.3 * gain * rng.standard_normal(breath) * np.hanning(breath), start)
        t = np.arange(int(voiced * SAMPLE_RATE)) / SAMPLE_RATE
        pulses = signal.sawtooth(2 * np.pi * f0 * (1 - 0.5 * t) * t) + 0.3 * rng.standard_normal(t.size)
        _add(source, gain * pulses * np.hanning(t.size), start + breath)
        t0 += period * rng.uniform(0.9, 1.1) + (rng.uniform(0.3, 0.7) if k % 8 == 7 else 0.0)  # breath between bouts
        k += 1
    f1, f2 = rng.uniform(700, 900), rng.uniform(1100, 1400)  # formants of /a/
    voiced_out = _resonate(source, f1, 90) + 0.6 * _resonate(source, f2, 120)
    return normalize_peak(voiced_out)


def noise(n: int, rng: np.random.Generator, color: str = "pink") -> np.ndarray:
    """White, pink (1/f, Paul Kellet's filter) or brown noise, unit RMS."""
    white = rng.standard_normal(n)
    if color == "white":
        x = white
    elif color == "pink":
        x = signal.lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                           [1, -2.494956002, 2.017265875, -0.522189400], white)
    elif color == "brown":
        x = signal.lfilter([1.0], [1, -0.995], white)
    else:
        raise ValueError(f"color={color!r}; expected 'white', 'pink' or 'brown'")
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """A small room: convolve with exponentially decaying noise (reverberation time ``rt60`` seconds) and mix
    ``wet`` of it with the dry signal; the output has the input's length."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0  # first reflections arrive after ~2 ms
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    wet_signal = signal.fftconvolve(x, tail)[: x.size]
    return ((1 - wet) * x + wet * wet_signal).astype(np.float32)
