"""Tools around the SenseVoiceSmall FunASR plugin (model.py): model directories, CLI, data, training, VAD,
benchmarks, service. They import model.py. model.py imports three of them lazily, inside the function that needs
them, for optional features only: ``decoding`` (beam search, hotwords, restrict_language, tag_topk),
``backends`` (ONNX Runtime, int8, bf16, fp16) and ``export`` (FunASR's ``AutoModel.export``); its greedy PyTorch
fp32 path never imports the package.

Layers (tests/test_layers.py walks the imports: no cycles, nothing imports a higher layer): library (model.py,
heavy, optionspec, modeldir, hub, vad, diarize, funasr_speaker, richtext, result, subtitles, decoding, export,
datalist) <
backends < pipeline < front doors (argtypes, cli, demo, batch, batchio, raybatch, export_command, download, serve)
< wings (bench, training)."""

__version__ = "0.1.0"

import os
from pathlib import Path

CACHE_ENV = "SENSEVOICE_CACHE"
REPO_ROOT = Path(__file__).resolve().parent.parent  # model.py, demo/, examples/ (a light import: no torch)


def cache_root() -> Path:
    """Where derived files are kept between processes (ONNX exports, normalised text pools)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sensevoice")
