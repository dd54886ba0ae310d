"""Synthetic speech-like audio, for measuring (when no real speech is at hand) and for the tests: deterministic
voiced bursts (a gliding 120 Hz fundamental with 7 harmonics) with pauses and a little noise."""

from __future__ import annotations

import numpy as np

from sensevoice.optionspec import model_constant

SAMPLE_RATE = model_constant("SAMPLE_RATE")  # model.py's, read without importing torch


def speechlike(seconds: float, seed: int = 0, fs: int = SAMPLE_RATE, pause_hz: float = 2.5,
               voiced_above: float = -0.2) -> np.ndarray:
    """(N,) float32 in [-1, 1]: voiced where sin(2 pi pause_hz t + seed) > voiced_above, noise throughout."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = (np.sin(2 * np.pi * pause_hz * t + seed) > voiced_above).astype(float)
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
