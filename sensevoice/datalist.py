"""The official SenseVoice data list: one JSON object per line with the official keys (FunASR's fine-tuning
format, ``data/train_example.jsonl``). Training reads it (sensevoice/training), and so do the measuring tools
(sensevoice/bench) for their test splits; a library module, so neither wing imports the other for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JSONL_KEYS = ("key", "source", "target", "text_language", "emo_target", "event_target", "with_or_wo_itn")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Official fine-tuning jsonl; every line must carry the official keys."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in JSONL_KEYS if k not in row]
            if missing:
                raise ValueError(f"{path}:{n}: missing keys {missing}; official keys are {list(JSONL_KEYS)}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no utterances")
    return rows
