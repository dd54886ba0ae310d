"""Random espeak-ng voice variants: new voices for training beyond espeak-ng's 34 fixed training variants.

An espeak-ng *variant* is a small text file (``voices/!v/<name>``) that sets the pitch range, nine formants
(frequency, height and width as percentages of the language voice's), an optional equaliser (``tone``),
flutter, roughness, echo, voicing and consonant strength. The fixed variants (``synth.VOICE_POOLS``) are a few
dozen points in that space; the held-out ones (``steph``, ``caleb``, ...) are others. ``random_variant``
draws a new point from ranges that cover what the fixed variants use:

=========== =======================================================================================
field       drawn
=========== =======================================================================================
pitch       male (p 0.5): base 65-125 Hz, female: base 130-215 Hz; top = base + 25-95 Hz
formants    one vocal-tract factor (male 0.88-1.08, female 1.0-1.2) times 0.93-1.07 per formant for the
            frequency; height 55-145 %, width 70-170 % each; formants 6-8 damped to 0-50 % (p 0.15)
tone        (p 0.35) an equaliser of four points, 150-4000 Hz, gains 10-255
flutter     0-12; roughness 1-5 (p 0.3); echo 80-160 ms at 5-18 % (p 0.25); voicing 40-100 (p 0.2)
consonants  60-140
=========== =======================================================================================

espeak-ng finds variants only in its data directory, and it silently falls back to the plain language voice
when a variant is missing; ``make_overlay`` therefore builds a private data directory (links to the system
one, plus the new variant files) that ``espeak-ng --path`` reads, and ``variant_file`` refuses unknown names.
espeak-ng also lists at most 349 voices (language voices, variants and MBROLA voices together; beyond that a
language voice may go missing), so the overlay carries only the language voices of ``synth.LANGUAGE_VOICES``
and no MBROLA voices, and takes at most ``MAX_RANDOM_VARIANTS`` new variants.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from sensevoice.training.data.synth import ESPEAK, LANGUAGE_VOICES

VARIANT_DIR = Path("voices") / "!v"  # inside an espeak-ng-data directory
LANGUAGE_DIR = Path("lang")
N_FORMANTS = 9
MAX_RANDOM_VARIANTS = 200  # + 8 language voices + espeak-ng's ~100 variants stays under its 349-voice list


@functools.cache
def system_data_dir() -> Path:
    """espeak-ng's own data directory (``espeak-ng --version`` says where)."""
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"Data at:\s*(\S+)", out)
    if not found or not Path(found.group(1)).is_dir():
        raise RuntimeError(f"cannot find espeak-ng's data directory in {out!r}")
    return Path(found.group(1))


def language_files(names: Iterable[str]) -> dict[str, Path]:
    """{voice name (``-v`` argument): its file under ``lang/``}, from ``espeak-ng --voices``."""
    out = subprocess.run([ESPEAK, "--voices"], capture_output=True, text=True, check=True).stdout
    listed = {}
    for line in out.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other-languages
        fields = line.split()
        if len(fields) >= 5:
            listed.setdefault(fields[1], Path(fields[4]))
    missing = [name for name in names if name not in listed]
    if missing:
        raise RuntimeError(f"espeak-ng lists no voice {missing}")
    return {name: listed[name] for name in names}


def random_variant(rng: np.random.Generator, name: str) -> str:
    """The text of one random variant file (see the module table)."""
    female = bool(rng.random() < 0.5)
    base = rng.uniform(130, 215) if female else rng.uniform(65, 125)
    tract = rng.uniform(1.0, 1.2) if female else rng.uniform(0.88, 1.08)
    lines = ["language variant", f"name {name}", f"gender {'female' if female else 'male'}", "",
             f"pitch {round(base)} {round(base + rng.uniform(25, 95))}"]
    damp_high = bool(rng.random() < 0.15)
    for k in range(N_FORMANTS):
        freq = round(100 * tract * rng.uniform(0.93, 1.07))
        height = round(rng.uniform(0, 50) if damp_high and k >= 6 else rng.uniform(55, 145))
        lines.append(f"formant {k} {freq} {height} {round(rng.uniform(70, 170))}")
    if rng.random() < 0.35:
        freqs = np.sort(rng.uniform(150, 4000, size=4)).round().astype(int)
        gains = rng.integers(10, 256, size=4)
        lines.append("tone " + " ".join(f"{f} {g}" for f, g in zip(freqs, gains)))
    lines.append(f"flutter {int(rng.integers(0, 13))}")
    if rng.random() < 0.3:
        lines.append(f"roughness {int(rng.integers(1, 6))}")
    if rng.random() < 0.25:
        lines.append(f"echo {int(rng.integers(80, 161))} {int(rng.integers(5, 19))}")
    if rng.random() < 0.2:
        lines.append(f"voicing {int(rng.integers(40, 101))}")
    lines.append(f"consonants {int(rng.integers(60, 141))}")
    return "\n".join(lines) + "\n"


def random_variants(n: int, seed: int, stream: int, prefix: str = "rand") -> dict[str, str]:
    """``n`` named random variants, variant i drawn from ``default_rng([seed, stream, i])`` alone."""
    return {f"{prefix}{i:04d}": random_variant(np.random.default_rng([seed, stream, i]), f"{prefix}{i:04d}")
            for i in range(n)}


def make_overlay(root: Path, variants: Mapping[str, str]) -> Path:
    """``root/espeak-ng-data``: the system data linked entry by entry (language voices: only ours; no MBROLA
    voices), plus ``variants`` (name -> file text) in its variant folder. Returns ``root``, the value for
    ``espeak-ng --path``. Rebuilding it is idempotent."""
    if len(variants) > MAX_RANDOM_VARIANTS:
        raise ValueError(f"{len(variants)} random variants; espeak-ng lists at most {MAX_RANDOM_VARIANTS} more")
    system = system_data_dir()
    data = Path(root) / "espeak-ng-data"
    skip = {Path("voices"), VARIANT_DIR, LANGUAGE_DIR, Path("voices") / "mb"}

    def link(relative: Path) -> None:
        target = data / relative
        if not (target.is_symlink() or target.exists()):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(system / relative)

    (data / VARIANT_DIR).mkdir(parents=True, exist_ok=True)
    for parent in (Path("."), Path("voices"), VARIANT_DIR):
        for entry in (system / parent).iterdir():
            if parent / entry.name not in skip:
                link(parent / entry.name)
    for path in language_files([v for vs in LANGUAGE_VOICES.values() for v in vs]).values():
        link(LANGUAGE_DIR / path)
    for name, text in variants.items():
        if (system / VARIANT_DIR / name).exists():
            raise ValueError(f"random variant {name!r} would shadow espeak-ng's own variant of that name")
        (data / VARIANT_DIR / name).write_text(text)
    return Path(root)


def variant_file(variant: str, data_path: str | Path | None) -> Path:
    """The file espeak-ng reads for ``variant`` (from ``data_path``'s overlay, or the system data); an error if
    there is none, since espeak-ng would quietly speak with the plain language voice instead."""
    data = Path(data_path) / "espeak-ng-data" if data_path else system_data_dir()
    path = data / VARIANT_DIR / variant
    if not path.exists():
        where = f"the overlay {data_path}" if data_path else f"espeak-ng's data ({data})"
        raise FileNotFoundError(f"espeak-ng variant {variant!r} is not in {where}")
    return path
