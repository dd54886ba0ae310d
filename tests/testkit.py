"""What the tests share besides fixtures: the repository root, the tiny model's encoder, the official clips'
languages, a tokenizer corpus and synthetic speech. Tests import this module; conftest.py holds the fixtures
(pytest loads it itself: it is not imported as a module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensevoice.bench.signals import speechlike  # noqa: F401  (the one generator, shared with the benchmarks)

ROOT = Path(__file__).resolve().parent.parent
TINY_ENCODER = {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2, "tp_blocks": 1,
                "dropout_rate": 0.0, "attention_dropout_rate": 0.0}
OFFICIAL_LANGS = ("zh", "en", "ja", "ko", "yue")


def sentences() -> list[str]:
    words = "the a cat dog sat on mat hello world one two three four five six seven eight nine ten".split()
    rng = np.random.default_rng(0)
    out = [" ".join(rng.choice(words, size=8)) for _ in range(400)]
    out += ["你好世界今天天气很好我们一起去公园", "こんにちはせかい", "안녕하세요 세계", "早晨你好嗎"] * 20
    return out
