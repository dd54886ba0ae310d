"""Tools around the SenseVoiceSmall FunASR plugin (model.py): model directories, CLI, data, training, VAD,
benchmarks, service. They import model.py; model.py never imports them."""

__version__ = "0.1.0"

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # model.py, demo/, examples/ (a light import: no torch)
