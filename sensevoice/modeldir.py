"""Model directories: find the official release files, assemble a loadable directory, load one safely."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml

import model as sv

from sensevoice import REPO_ROOT
MODEL_PY = REPO_ROOT / "model.py"
OFFICIAL_ENV = "SENSEVOICE_OFFICIAL_DIR"


def official_dir() -> Path | None:
    """The official release files (tokenizer, config, am.mvn, example clips): $SENSEVOICE_OFFICIAL_DIR or
    ../shared/official beside the repository; None when absent."""
    candidate = Path(os.environ.get(OFFICIAL_ENV) or REPO_ROOT.parent / "shared" / "official")
    return candidate if (candidate / "SenseVoiceSmall" / "config.yaml").is_file() else None


def write_cmvn(path: Path, mean: np.ndarray, std: np.ndarray) -> Path:
    """Write CMVN stats in the Kaldi nnet text format FunASR's WavFrontend reads (shift = -mean, scale = 1/std)."""
    dim = len(mean)
    fmt = lambda v: " ".join(f"{x:.7g}" for x in v)  # noqa: E731
    path.write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(-mean)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(1.0 / np.maximum(std, 1e-5))} ]\n</Nnet>\n"
    )
    return path


def read_config(config_path: Path = REPO_ROOT / "config.yaml") -> dict[str, Any]:
    return yaml.safe_load(Path(config_path).read_text())


def write_config(config: Mapping[str, Any], config_path: Path) -> Path:
    """Write a config.yaml in the official key order (read back by ``read_config`` and by FunASR)."""
    Path(config_path).write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return Path(config_path)


def make_model_dir(dst: Path, bpemodel: Path, cmvn: Path, encoder_conf: Mapping[str, Any] | None = None,
                   seed: int | None = 0, state_dict: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Assemble a FunASR model directory: model.py, config.yaml, configuration.json, tokenizer, am.mvn and a
    model.pt (given weights, or random weights from ``seed``)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    config = read_config()
    if encoder_conf:
        config["encoder_conf"].update(encoder_conf)
    write_config(config, dst / "config.yaml")
    descriptor = json.loads((REPO_ROOT / "configuration.json").read_text())
    descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"] = Path(bpemodel).name
    (dst / "configuration.json").write_text(json.dumps(descriptor, indent=4) + "\n")
    for src in (MODEL_PY, Path(bpemodel), Path(cmvn)):
        if src.resolve() != (dst / src.name).resolve():
            shutil.copyfile(src, dst / src.name)
    if Path(cmvn).name != "am.mvn":
        shutil.copyfile(cmvn, dst / "am.mvn")
    if state_dict is None:
        state_dict = build_model(dst, seed=seed).state_dict()
    torch.save(dict(state_dict), dst / "model.pt")
    return dst


def build_model(model_dir: Path, seed: int | None = 0) -> sv.SenseVoiceSmall:
    """Construct the model a directory describes, with random weights (no model.pt needed)."""
    from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer
    from funasr.frontends.wav_frontend import WavFrontend

    model_dir = Path(model_dir)
    config = read_config(model_dir / "config.yaml")
    descriptor = json.loads((model_dir / "configuration.json").read_text())
    tokenizer = SentencepiecesTokenizer(bpemodel=str(model_dir / descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]))
    frontend = WavFrontend(**{**config["frontend_conf"], "cmvn_file": None})
    if seed is not None:
        torch.manual_seed(seed)
    # specaug/specaug_conf as FunASR's trainer passes them: SpecAugment is active in training mode only
    return sv.SenseVoiceSmall(encoder=config["encoder"], encoder_conf=config["encoder_conf"],
                              input_size=frontend.output_size(), vocab_size=tokenizer.get_vocab_size(),
                              specaug=config.get("specaug"), specaug_conf=config.get("specaug_conf"),
                              tokenizer=tokenizer, **config.get("model_conf", {}))


def load_automodel(model_dir: Path, device: str = "cpu", ncpu: int | None = None, **kwargs: Any):
    """FunASR AutoModel over ``model_dir`` with our model.py, refusing the silent fallbacks FunASR allows:
    a missing model.pt (random weights) and a failed remote-code import (built-in class)."""
    from funasr import AutoModel

    model_dir = Path(model_dir).resolve()
    if not (model_dir / "model.pt").is_file():
        raise FileNotFoundError(f"{model_dir}/model.pt is missing: refusing to run on random weights")
    remote = model_dir / "model.py" if (model_dir / "model.py").is_file() else MODEL_PY
    if (model_dir / "configuration.json").is_file():  # (without it FunASR insists on an init_param)
        # Skip FunASR's lenient load: it holds two extra copies of the weights at once (torch.load + deepcopy,
        # +1.9 GB peak RSS for the official size); the strict load below is the one that counts.
        kwargs.setdefault("init_param", None)
    automodel = AutoModel(model=str(model_dir), trust_remote_code=True, remote_code=str(remote), device=device,
                          disable_update=True, ncpu=ncpu or torch.get_num_threads(), **kwargs)
    if not isinstance(automodel.model, sv.SenseVoiceSmall):
        raise TypeError(f"FunASR built {type(automodel.model)} from {model_dir}, not this project's SenseVoiceSmall")
    sv.load_checkpoint(automodel.model, str(model_dir / "model.pt"))  # strict: every key and shape
    return automodel
