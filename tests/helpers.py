"""Helpers for tests that drive a model directory directly."""

from __future__ import annotations

from pathlib import Path

from funasr.frontends.wav_frontend import WavFrontend
from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer

from sensevoice import modeldir


def load_parts(model_dir: Path):
    """(model in eval mode, tokenizer, frontend with dither 0) for a directory, without AutoModel."""
    import json

    model_dir = Path(model_dir)
    config = modeldir.read_config(model_dir / "config.yaml")
    bpe = json.loads((model_dir / "configuration.json").read_text())["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    model = modeldir.build_model(model_dir, seed=None)
    import model as sv

    sv.load_checkpoint(model, str(model_dir / "model.pt"))
    tokenizer = SentencepiecesTokenizer(bpemodel=str(model_dir / bpe))
    frontend = WavFrontend(**{**config["frontend_conf"], "cmvn_file": str(model_dir / "am.mvn"), "dither": 0.0})
    return model.eval(), tokenizer, frontend, config
