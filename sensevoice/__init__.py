"""Tools around the SenseVoiceSmall FunASR plugin (model.py): model directories, audio reading, checkpoint loading,
CLI, data, training, VAD, benchmarks, service. They import model.py. model.py on its own builds the model, refuses
a model.pt that is not data and decodes arrays greedily in PyTorch fp32; it imports six of these modules lazily,
inside the function that needs them: ``audio`` (inputs that are paths, URLs or bytes), ``decoding`` (beam search,
hotwords and FunASR's hotword= file, restrict_language, tag_topk), ``timestamps`` (output_timestamp: word grouping
and times), ``backends`` (ONNX Runtime, int8, bf16, fp16), ``checkpoint`` (from_pretrained's strict load) and
``export`` (FunASR's ``AutoModel.export``).

Layers (tests/test_layers.py walks the imports: no cycles, nothing imports a higher layer): library (model.py,
heavy, optionspec, modeldir, audio, checkpoint, timestamps, hub, vad, diarize, funasr_speaker, richtext, result,
subtitles, decoding, export, datalist) < backends < pipeline < front doors (argtypes, door, cli, demo, batch, batchio,
raybatch, export_command, download, serve) < wings (bench, training)."""

__version__ = "0.1.0"

import os
from pathlib import Path

CACHE_ENV = "SENSEVOICE_CACHE"
REPO_ROOT = Path(__file__).resolve().parent.parent  # model.py, demo/, examples/ (a light import: no torch)


def cache_root() -> Path:
    """Where derived files are kept between processes (ONNX exports, normalised text pools)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sensevoice")
