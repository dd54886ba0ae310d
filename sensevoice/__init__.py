"""Tools around the SenseVoiceSmall FunASR plugin (model.py): model directories, CLI, data, training, VAD,
benchmarks, service. They import model.py; model.py never imports them."""

__version__ = "0.1.0"

import os
from pathlib import Path

CACHE_ENV = "SENSEVOICE_CACHE"
REPO_ROOT = Path(__file__).resolve().parent.parent  # model.py, demo/, examples/ (a light import: no torch)


def cache_root() -> Path:
    """Where derived files are kept between processes (ONNX exports, normalised text pools)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sensevoice")
