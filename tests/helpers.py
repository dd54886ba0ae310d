"""Helpers for tests that drive a model directory directly."""

from __future__ import annotations

from pathlib import Path

from sensevoice import modeldir
from sensevoice.training.train import load_for_training


def load_parts(model_dir: Path):
    """(model in eval mode, tokenizer, frontend with dither 0, config) for a directory, without AutoModel."""
    model, tokenizer, frontend = load_for_training(Path(model_dir))
    return model.eval(), tokenizer, frontend, modeldir.read_config(Path(model_dir) / "config.yaml")
