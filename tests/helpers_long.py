"""Helpers for the long-audio tests (VAD, transcribe, CLI): synthetic long files and the demo model."""

from __future__ import annotations

import numpy as np
import pytest

from sensevoice.modeldir import DEMO_DIR  # noqa: F401  (the tests' one name for it, as the package's)
from testkit import speechlike

FS = 16000
# Speech-like bursts of varied length (s) with silences long enough for FSMN-VAD's dynamic end-of-speech rule
# (2 s before 10 s of speech); the 35 s burst is longer than MAX_SEGMENT_MS, so the VAD must cut it.
BURSTS_S = (0.8, 6.0, 2.0, 12.0, 1.2, 35.0, 4.0)
GAP_S = 2.5

needs_demo = pytest.mark.skipif(not (DEMO_DIR / "model.pt").is_file(),
                                reason=f"needs the trained demo model in {DEMO_DIR} (built by the training recipe); "
                                       "random weights cannot place words")


def long_speechlike(bursts_s=BURSTS_S, gap_s: float = GAP_S, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(wave, [(start_ms, end_ms) of each burst]): bursts separated by ``gap_s`` of faint noise."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0
    for i, seconds in enumerate(bursts_s):
        gap = int(gap_s * FS)
        parts += [np.zeros(gap, np.float32), speechlike(seconds, seed=seed + i)]
        spans.append(((t + gap) * 1000 // FS, (t + gap + len(parts[-1])) * 1000 // FS))
        t += gap + len(parts[-1])
    parts.append(np.zeros(int(gap_s * FS), np.float32))
    wave = np.concatenate(parts)
    return (wave + 0.002 * rng.standard_normal(wave.size)).astype(np.float32), spans


def assert_spans_ordered(spans, lo: int, hi: int, what: str) -> None:
    """Every [start, end] inside [lo, hi] with start <= end, and each span starting where the previous one ends
    or later (CTC spans never overlap)."""
    for i, (s, e) in enumerate(spans):
        assert lo <= s <= e <= hi, f"{what}[{i}] = {[s, e]} outside [{lo}, {hi}]"
        assert i == 0 or spans[i - 1][1] <= s, f"{what}[{i - 1}:{i + 1}] overlap: {spans[i - 1]}, {[s, e]}"
