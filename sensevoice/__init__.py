"""Tools around the SenseVoiceSmall FunASR plugin (model.py): model directories, audio reading, checkpoint loading,
decoding into transcripts, CLI, data, training, VAD, benchmarks, service. They import model.py. model.py on its own
builds the network, refuses a model.pt that is not data and computes the CTC scores; it imports seven of these
modules lazily, inside the function that needs them, with an ImportError naming this package when it is missing:
``transcripts`` (inference: CTC scores -> results, with ``decoding``'s search and ``timestamps``), ``audio``
(extract_features: the audio loader), ``decoding`` (FunASR's hotword= file or words), ``training.objective``
(forward: the training loss), ``backends`` (ONNX Runtime, int8, bf16, fp16), ``checkpoint`` (from_pretrained's
strict load) and ``export`` (FunASR's ``AutoModel.export``).

Layers (tests/test_layers.py walks the imports: no cycles, nothing imports a higher layer): library (model.py,
heavy, optionspec, modeldir, audio, checkpoint, timestamps, transcripts, hub, vad, diarize, funasr_speaker, richtext,
result, subtitles, decoding, export, datalist) < backends < pipeline < front doors (argtypes, door, cli, demo, batch,
batchio, raybatch, export_command, download, serve) < wings (bench, training)."""

__version__ = "0.1.0"

import os
from pathlib import Path

CACHE_ENV = "SENSEVOICE_CACHE"
REPO_ROOT = Path(__file__).resolve().parent.parent  # model.py, demo/, examples/ (a light import: no torch)


def cache_root() -> Path:
    """Where derived files are kept between processes (ONNX exports, normalised text pools)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sensevoice")
