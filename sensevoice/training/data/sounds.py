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


# ----------------------------------------------------------------------------------------------- more events
# Crying, coughing, sneezing and breathing (SenseVoice's <|Cry|>, <|Cough|>, <|Sneeze|>, <|Breath|>), and music
# in several styles. Like laughter, they are source-filter sketches: a glottal or noise source through a few
# formant resonators with an amplitude envelope; drawn from the rng, peak about 1.
def _fade(n: int, attack_s: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return np.clip(np.minimum(t / max(attack_s, 1e-4), (n / SAMPLE_RATE - t) / max(release_s, 1e-4)), 0, 1)


def _glottal(f0: np.ndarray, rng: np.random.Generator, jitter: float = 0.01, breathy: float = 0.2) -> np.ndarray:
    """A pulse train following the per-sample pitch track ``f0`` (Hz), with jitter and breath noise."""
    phase = 2 * np.pi * np.cumsum(f0 * (1 + jitter * rng.standard_normal(f0.size))) / SAMPLE_RATE
    return signal.sawtooth(phase) + breathy * rng.standard_normal(f0.size)


def _band_noise(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    b, a = signal.butter(2, [low, min(high, SAMPLE_RATE / 2 - 100)], "bandpass", fs=SAMPLE_RATE)
    return signal.lfilter(b, a, rng.standard_normal(n))


def _vowel(source: np.ndarray, formants: tuple[float, ...]) -> np.ndarray:
    return sum(_resonate(source, f, 80 + 0.08 * f) / (k + 1) for k, f in enumerate(formants))


def cry(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Crying: a baby's high wails (f0 350-550 Hz, rising then falling, vibrato) or an adult's lower sobs,
    each followed by a gasping in-breath."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    baby = bool(rng.random() < 0.6)
    base = rng.uniform(350, 550) if baby else rng.uniform(220, 340)
    formants = (rng.uniform(900, 1200), rng.uniform(1600, 2100), 3300) if baby else (750, 1250, 2600)
    t0 = rng.uniform(0, 0.1)
    while t0 < seconds - 0.3:
        length = rng.uniform(0.6, 1.5) if baby else rng.uniform(0.25, 0.6)
        m = int(length * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        contour = 1 + 0.25 * np.sin(np.pi * t / length) - 0.15 * t / length  # rise, then fall
        f0 = base * rng.uniform(0.9, 1.1) * contour * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
        wail = _vowel(_glottal(f0, rng, 0.02, 0.3), formants) * _fade(m, 0.05, 0.12)
        _add(out, wail, int(t0 * SAMPLE_RATE))
        gasp_s = rng.uniform(0.15, 0.35)
        gasp = _band_noise(int(gasp_s * SAMPLE_RATE), 1500, 5000, rng) * 0.3 * _fade(int(gasp_s * SAMPLE_RATE), 0.05, 0.05)
        _add(out, gasp, int((t0 + length + 0.03) * SAMPLE_RATE))
        t0 += length + gasp_s + rng.uniform(0.05, 0.2)
    return normalize_peak(out)


def cough(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Coughing: bouts of 1-4 coughs, each an explosive broadband burst then a rough, decaying voiced tail."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    f0 = rng.uniform(110, 260)
    formants = (rng.uniform(500, 800), rng.uniform(1100, 1600), 2500)
    t0 = rng.uniform(0, 0.2)
    while t0 < seconds - 0.25:
        for _ in range(int(rng.integers(1, 5))):
            burst_n, tail_n = int(rng.uniform(0.03, 0.06) * SAMPLE_RATE), int(rng.uniform(0.12, 0.3) * SAMPLE_RATE)
            t = np.arange(burst_n + tail_n) / SAMPLE_RATE
            noise_part = _band_noise(t.size, 300, 6000, rng) * np.exp(-t / 0.04)
            voiced = _vowel(_glottal(f0 * (1 - 0.3 * t), rng, 0.05, 0.8), formants) * np.exp(-t / 0.08)
            x = (noise_part + 0.5 * voiced) * _fade(t.size, 0.003, 0.03)
            _add(out, x * rng.uniform(0.6, 1.0), int(t0 * SAMPLE_RATE))
            t0 += t.size / SAMPLE_RATE + rng.uniform(0.08, 0.25)
        t0 += rng.uniform(0.4, 1.0)  # an in-breath between bouts
    return normalize_peak(out)


def sneeze(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Sneezing: a rising, breathy "ah-" in-breath, a short hold, then a loud hissy "choo" burst; repeated
    when there is room."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    f0 = rng.uniform(150, 330)
    t0 = rng.uniform(0, 0.1)
    while t0 < seconds - 0.6:
        ah_n = int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
        t = np.arange(ah_n) / SAMPLE_RATE
        ah = _vowel(_glottal(f0 * (1 + 0.5 * t / t[-1]), rng, 0.02, 1.0), (800, 1300, 2600)) * (t / t[-1]) ** 2
        _add(out, 0.35 * ah, int(t0 * SAMPLE_RATE))
        t0 += ah_n / SAMPLE_RATE + rng.uniform(0.04, 0.12)
        choo_n = int(rng.uniform(0.15, 0.3) * SAMPLE_RATE)
        t = np.arange(choo_n) / SAMPLE_RATE
        choo = (_band_noise(choo_n, 1800, 7000, rng) + 0.4 * _band_noise(choo_n, 300, 1500, rng)) * np.exp(-t / 0.07)
        _add(out, choo * _fade(choo_n, 0.004, 0.02), int(t0 * SAMPLE_RATE))
        t0 += choo_n / SAMPLE_RATE + rng.uniform(0.5, 1.2)
    return normalize_peak(out)


def breath(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Breathing: alternating in-breaths (higher, hissy) and out-breaths (lower, softer), 0.6-1.6 s each."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    t0, inhale = rng.uniform(0, 0.2), bool(rng.random() < 0.5)
    nose = bool(rng.random() < 0.5)  # through the nose: narrower and lower
    while t0 < seconds - 0.3:
        m = int(min(rng.uniform(0.6, 1.6), seconds - t0) * SAMPLE_RATE)
        low, high = (900, 4500) if inhale else (300, 2200)
        if nose:
            low, high = low * 0.6, high * 0.6
        x = _band_noise(m, low, high, rng) * np.hanning(m) ** 0.7 * (1.0 if inhale else 0.7)
        _add(out, x, int(t0 * SAMPLE_RATE))
        t0 += m / SAMPLE_RATE + rng.uniform(0.1, 0.5)
        inhale = not inhale
    return normalize_peak(out)


INSTRUMENTS = ("piano", "organ", "strings", "pluck", "synth")
SCALES = {"major pentatonic": PENTATONIC, "minor pentatonic": (0, 3, 5, 7, 10), "dorian": (0, 2, 3, 5, 7, 9, 10)}


def _instrument(name: str, freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One note of an instrument: piano (harmonic decay), organ (steady drawbars), strings (slow bow, vibrato),
    pluck (Karplus-Strong string), synth (low-passed square)."""
    m = int(seconds * SAMPLE_RATE)
    t = np.arange(m) / SAMPLE_RATE
    if name == "piano":
        return _note(freq, seconds, 0.5, 5, rng)
    if name == "organ":
        tone = sum(np.sin(2 * np.pi * k * freq * t) * g for k, g in ((1, 1), (2, 0.6), (3, 0.3), (4, 0.25), (8, 0.1)))
        return tone * _fade(m, 0.02, 0.05)
    if name == "strings":
        vib = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
        saw = signal.sawtooth(2 * np.pi * freq * np.cumsum(vib) / SAMPLE_RATE)
        b, a = signal.butter(2, min(4 * freq, 6000), "lowpass", fs=SAMPLE_RATE)
        return signal.lfilter(b, a, saw) * _fade(m, min(0.25, seconds / 3), min(0.3, seconds / 3))
    if name == "pluck":
        period = max(2, int(SAMPLE_RATE / freq))
        buf = rng.uniform(-1, 1, period)
        out = np.empty(m)
        for i in range(m):  # the string: a delay line averaged as it goes round
            out[i] = buf[i % period]
            buf[i % period] = 0.996 * 0.5 * (buf[i % period] + buf[(i + 1) % period])
        return out
    if name == "synth":
        sq = signal.square(2 * np.pi * freq * t)
        b, a = signal.butter(2, min(3 * freq, 5000), "lowpass", fs=SAMPLE_RATE)
        return signal.lfilter(b, a, sq) * 0.6 * _fade(m, 0.01, 0.08)
    raise ValueError(f"instrument={name!r}; expected one of {INSTRUMENTS}")


def music_styled(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Background music in a drawn style: chord instrument and melody instrument (``INSTRUMENTS``), tempo
    60-170 bpm, key, scale (``SCALES``), 3/4 or 4/4, chords as block chords or arpeggios, drums or none."""
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(60, 170)
    key = 45 + int(rng.integers(15))
    meter = (3, 4)[rng.integers(2)]
    chords_with, melody_with = INSTRUMENTS[rng.integers(len(INSTRUMENTS))], INSTRUMENTS[rng.integers(len(INSTRUMENTS))]
    scale = list(SCALES.values())[rng.integers(len(SCALES))]
    arpeggio = bool(rng.random() < 0.4)
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    cache: dict[tuple[str, int, int], np.ndarray] = {}

    def play(instrument: str, note: int, beats: int, gain: float, start: int) -> None:
        if (instrument, note, beats) not in cache:  # Karplus-Strong is a Python loop: render each note once
            cache[instrument, note, beats] = _instrument(instrument, midi_hz(note), beats * beat, rng)
        _add(out, gain * cache[instrument, note, beats], start)

    for b in range(int(seconds / beat) + 1):
        start = int(b * beat * SAMPLE_RATE)
        root, triad = progression[(b // meter) % len(progression)]
        if arpeggio:
            play(chords_with, key + 12 + root + triad[b % 3], 1, 0.3, start)
        elif b % meter == 0:
            for interval in triad:
                play(chords_with, key + 12 + root + interval, meter, 0.2, start)
        if b % meter == 0:
            play("piano" if chords_with == "strings" else chords_with, key - 12 + root, meter, 0.4, start)
        if melody_with != chords_with and rng.random() < 0.7:
            play(melody_with, key + 24 + scale[rng.integers(len(scale))], 1, 0.3, start)
    if rng.random() < 0.5:
        out += _drums(n, beat, rng)
    return normalize_peak(out)


def room_impulse(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: the direct path, 6-12 early reflections (3-40 ms, each weaker) and a
    diffuse tail decaying to -60 dB at ``rt60`` seconds, its highs damped faster than its lows."""
    length = int(max(rt60, 0.05) * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    h = np.zeros(length)
    h[0] = 1.0
    for delay, gain in zip(rng.uniform(0.003, 0.04, int(rng.integers(6, 13))), rng.uniform(0.2, 0.7, 12)):
        h[int(delay * SAMPLE_RATE)] += gain * rng.choice([-1, 1]) * np.exp(-6.9 * delay / rt60)
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60) * (t > 0.005)
    b, a = signal.butter(1, rng.uniform(2500, 6000), "lowpass", fs=SAMPLE_RATE)
    h += rng.uniform(0.3, 0.8) * signal.lfilter(b, a, tail) / (np.sqrt(np.sum(tail**2)) + 1e-12) * 4
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def babble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-shaped, syllable-modulated noise (a crowd far away), unit RMS."""
    x = noise(n, rng, "pink")
    b, a = signal.butter(2, [200, 3500], "bandpass", fs=SAMPLE_RATE)
    x = signal.lfilter(b, a, x)
    t = np.arange(n) / SAMPLE_RATE
    envelope = sum(1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 2 * np.pi)) for _ in range(4))
    x = x * envelope
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)
