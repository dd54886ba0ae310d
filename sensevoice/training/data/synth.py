"""Speech from espeak-ng: voices, emotion prosody styles, and conversion to 16 kHz mono float32.

espeak-ng facts this relies on (checked with ``espeak-ng -x`` on version 1.51):

* ``cmn`` (also ``-v zh``) does not read hanzi as Mandarin: it spells their pinyin with English number words
  ("ni three"). ``cmn-latn-pinyin`` reads hanzi (simplified and traditional) as Mandarin.
* ``yue`` reads hanzi (traditional and simplified) as Cantonese, including 咗/喺/嘅/哋.
* ``ja`` reads kana only; each kanji comes out as the English words "Chinese letter", so Japanese text is kana.
* ``ko`` reads hangul.

A voice is a language voice plus an espeak-ng *variant* (``en-us+f2``); variants are what the splits hold out.

Emotion styles (espeak-ng ``-p`` pitch 0-99, ``-s`` speed in words per minute, ``-a`` amplitude, SSML
``<prosody range>``, then post-processing and the clip level as active-speech RMS in dBFS):

======== ======== ======== ==== ======== ============================== ==========
emotion  pitch -p speed -s -a   range    post-processing                level dBFS
======== ======== ======== ==== ======== ============================== ==========
NEUTRAL  40-58    150-180  100  medium   none                           -24..-20
HAPPY    70-90    185-225  110  x-high   none                           -22..-18
SAD      8-25     105-135  70   x-low    4 kHz low-pass, 40 ms word gap -33..-29
ANGRY    30-48    190-230  180  high     tanh drive x3-5 (harsh, dense) -16..-12
======== ======== ======== ==== ======== ============================== ==========

So HAPPY is high, fast and swinging; SAD low, slow, flat, quiet and dull; ANGRY fast, loud and distorted at
a normal pitch; NEUTRAL in between. Measured on one en sentence with variant m3 (median F0 / level / length):
NEUTRAL 108 Hz / -24 dB / 2.5 s, HAPPY 159 Hz / -22 dB / 2.0 s, SAD 69 Hz / -33 dB / 4.3 s, ANGRY 106 Hz /
-16 dB / 2.0 s (tests/test_data.py checks these orderings).

Language speeds are scaled by ``SPEED_SCALE`` (espeak-ng's syllable rate differs per language).

Warp (optional, ``speak(..., warp=a)``): the rendering is resampled as if it had been recorded at ``a`` times
its rate, so pitch and every formant move by ``a`` and the duration by ``1 / a`` (Kaldi's speed perturbation).
Formants are what tell espeak-ng's variants apart, so a warped corpus covers voices between and beyond the 34
training variants; it is what lets a model generalise to the held-out ones.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from xml.sax.saxutils import escape

import numpy as np
from scipy import signal

from sensevoice.training.data.sounds import SAMPLE_RATE

ESPEAK = "espeak-ng"

# espeak-ng language voices per SenseVoice language (en: four accents).
LANGUAGE_VOICES = {
    "zh": ("cmn-latn-pinyin",),
    "yue": ("yue",),
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-029"),
    "ja": ("ja",),
    "ko": ("ko",),
}
SPEED_SCALE = {"zh": 0.9, "yue": 0.9, "en": 1.0, "ja": 1.0, "ko": 0.95}

# espeak-ng voice variants (voices/!v) in three disjoint pools. Left out: whisper* (no pitch, so no emotion
# cue), robot/effect voices (robosoft*, UniRobot, Demonic, croak, anikaRobot) and a child-like one (zac).
VOICE_POOLS = {
    "train": ("m1", "m2", "m3", "m4", "m5", "m8", "Andy", "Alex", "Gene", "Jacky", "Mario", "Michael", "adam",
              "benjamin", "boris", "david", "edward", "gustave", "iven", "john", "max", "norbert", "paul",
              "travis", "f1", "f2", "f5", "Annie", "Andrea", "anika", "aunty", "belinda", "linda", "shelby"),
    "val": ("m6", "Lee", "f3", "grandma"),
    "test": ("m7", "caleb", "f4", "steph"),
}

EMOTIONS = ("NEUTRAL", "HAPPY", "SAD", "ANGRY")


@dataclass(frozen=True)
class EmotionStyle:
    """Ranges one emotion's prosody is drawn from (see the module table)."""

    pitch: tuple[int, int]  # espeak-ng -p
    speed: tuple[int, int]  # espeak-ng -s, words per minute (before SPEED_SCALE)
    amplitude: int  # espeak-ng -a, 0-200 (the clip level is set afterwards, by level_db)
    pitch_range: str  # SSML <prosody range=...>
    word_gap: int  # espeak-ng -g, 10 ms units
    level_db: tuple[float, float]  # active-speech RMS of the clip, dBFS
    lowpass_hz: float | None  # None: no low-pass
    drive: tuple[float, float] | None  # tanh saturation gain range; None: none


EMOTION_STYLES = {
    "NEUTRAL": EmotionStyle((40, 58), (150, 180), 100, "medium", 0, (-24, -20), None, None),
    "HAPPY": EmotionStyle((70, 90), (185, 225), 110, "x-high", 0, (-22, -18), None, None),
    "SAD": EmotionStyle((8, 25), (105, 135), 70, "x-low", 4, (-33, -29), 4000.0, None),
    "ANGRY": EmotionStyle((30, 48), (190, 230), 180, "high", 0, (-16, -12), None, (3.0, 5.0)),
}


@dataclass(frozen=True)
class Voice:
    """Everything espeak-ng is told for one utterance."""

    language_voice: str  # "en-us"
    variant: str  # "f2"
    pitch: int
    speed: int
    amplitude: int
    pitch_range: str
    word_gap: int
    data_path: str | None = None  # espeak-ng --path: a data directory holding the variant (voices.make_overlay)

    @property
    def name(self) -> str:
        return f"{self.language_voice}+{self.variant}"


def draw_voice(lang: str, variant: str, emotion: str, rng: np.random.Generator, data_path: str | None = None
               ) -> Voice:
    style = EMOTION_STYLES[emotion]
    voices = LANGUAGE_VOICES[lang]
    return Voice(
        language_voice=voices[rng.integers(len(voices))],
        variant=variant,
        pitch=int(rng.integers(style.pitch[0], style.pitch[1] + 1)),
        speed=int(round(rng.integers(style.speed[0], style.speed[1] + 1) * SPEED_SCALE[lang])),
        amplitude=style.amplitude,
        pitch_range=style.pitch_range,
        word_gap=style.word_gap,
        data_path=data_path,
    )


def espeak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    """Run espeak-ng; returns (int16 samples as float32 in [-1, 1], sample rate)."""
    ssml = f'<speak><prosody range="{voice.pitch_range}">{escape(text)}</prosody></speak>'
    path = [f"--path={voice.data_path}"] if voice.data_path else []
    cmd = [ESPEAK, *path, "-m", "--stdout", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed),
           "-a", str(voice.amplitude), "-g", str(voice.word_gap), ssml]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    return parse_wav(wav)


def speak_in_pieces(pieces: list[str], lang: str, variant: str, emotion: str, rng: np.random.Generator,
                    warp: float = 1.0, data_path: str | None = None, gap_s: tuple[float, float] = (0.15, 0.6)
                    ) -> tuple[np.ndarray, Voice]:
    """``pieces`` (words, or a few characters of a CJK sentence) each spoken alone by one voice, trimmed and
    joined by pauses drawn from ``gap_s``: speech with silences between words, so that a model learns where
    words start and end (word timestamps) and hears isolated words, not only fluent sentences."""
    voice = draw_voice(lang, variant, emotion, rng, data_path)
    parts = []
    for piece in pieces:
        x, rate = espeak(piece, voice)
        x = trim_silence(resample(x, rate, warp), keep_s=0.01)
        if x.size:
            parts += [x, np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE), np.float32)]
    if not parts:
        raise RuntimeError(f"espeak-ng rendered none of {pieces!r}")
    return apply_style(np.concatenate(parts[:-1]), emotion, rng), voice


def parse_wav(wav: bytes) -> tuple[np.ndarray, int]:
    """Parse espeak-ng's streamed WAV: its RIFF and data sizes are placeholders, so read to the end of the data."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng did not write a WAV file (got {wav[:16]!r})")
    rate = int.from_bytes(wav[24:28], "little")
    start = wav.find(b"data", 12) + 8
    samples = np.frombuffer(wav[start : start + (len(wav) - start) // 2 * 2], dtype="<i2")
    return samples.astype(np.float32) / 32768.0, rate


MAX_WARP_DENOMINATOR = 128  # a warped ratio is rounded to p/q with q <= this: short polyphase filters


def resample(x: np.ndarray, rate: int, warp: float = 1.0) -> np.ndarray:
    """To SAMPLE_RATE with a polyphase filter (22050 -> 16000 is 320/441). ``warp`` != 1 reads the input as if
    its rate were ``rate * warp`` (pitch and formants times ``warp``, duration divided by it); the ratio is then
    rounded to a fraction with a denominator of at most ``MAX_WARP_DENOMINATOR`` (an error below 0.01 %)."""
    if warp <= 0:
        raise ValueError(f"warp={warp}; expected > 0")
    if rate == SAMPLE_RATE and warp == 1.0:
        return x.astype(np.float32)
    ratio = Fraction(SAMPLE_RATE, rate)
    if warp != 1.0:
        ratio = (ratio / Fraction(warp)).limit_denominator(MAX_WARP_DENOMINATOR)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -45.0, keep_s: float = 0.02) -> np.ndarray:
    """Cut leading/trailing silence (below ``threshold_db`` of the peak), keeping ``keep_s`` of margin."""
    level = np.abs(x)
    above = np.flatnonzero(level > np.max(level) * 10 ** (threshold_db / 20)) if x.size else []
    if len(above) == 0:
        return x
    keep = int(keep_s * SAMPLE_RATE)
    return x[max(0, above[0] - keep) : above[-1] + keep]


def active_rms_db(x: np.ndarray, frame: int = 320) -> float:
    """RMS in dBFS over the 20 ms frames within 30 dB of the loudest one (ignores pauses and silence)."""
    n = x.size // frame
    if n == 0:
        return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))
    energy = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    active = energy[energy > energy.max() * 1e-3]
    return float(10 * np.log10(np.mean(active) + 1e-20))


def set_level(x: np.ndarray, level_db: float) -> np.ndarray:
    return (x * 10 ** ((level_db - active_rms_db(x)) / 20)).astype(np.float32)


def apply_style(x: np.ndarray, emotion: str, rng: np.random.Generator) -> np.ndarray:
    """The emotion's post-processing (low-pass, saturation) and level."""
    style = EMOTION_STYLES[emotion]
    if style.lowpass_hz is not None:
        b, a = signal.butter(4, style.lowpass_hz, "lowpass", fs=SAMPLE_RATE)
        x = signal.lfilter(b, a, x)
    if style.drive is not None:
        drive = rng.uniform(*style.drive)
        x = np.tanh(drive * x / (np.max(np.abs(x)) + 1e-9)) / np.tanh(drive)
    return set_level(np.asarray(x, dtype=np.float32), rng.uniform(*style.level_db))


def speak(text: str, lang: str, variant: str, emotion: str, rng: np.random.Generator, warp: float = 1.0,
          data_path: str | None = None) -> tuple[np.ndarray, Voice]:
    """One utterance in ``emotion``: 16 kHz float32, warped (see the module notes), silence trimmed, styled and
    levelled. ``data_path``: an espeak-ng data directory with extra variants (``voices.make_overlay``)."""
    if emotion not in EMOTION_STYLES:
        raise ValueError(f"emotion={emotion!r}; expected one of {sorted(EMOTION_STYLES)}")
    if lang not in LANGUAGE_VOICES:
        raise ValueError(f"lang={lang!r}; expected one of {sorted(LANGUAGE_VOICES)}")
    voice = draw_voice(lang, variant, emotion, rng, data_path)
    x, rate = espeak(text, voice)
    x = trim_silence(resample(x, rate, warp))
    return apply_style(x, emotion, rng), voice
