"""Model directories: the one way to read one (``ModelDir``), to resolve a ``--model`` argument, to load its model
(strictly, through FunASR or without it), to copy it and to assemble a new one.

A directory holds what the official release holds: ``config.yaml``, ``configuration.json`` (its
``file_path_metas.tokenizer_conf.bpemodel`` names the sentencepiece model), the tokenizer, ``am.mvn`` (CMVN) and
``model.pt``; optionally ``model.py`` (FunASR's remote code) and ONNX exports (``model.onnx``,
``model_quant.onnx``). An ONNX export directory is a model directory without ``model.pt``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from sensevoice import REPO_ROOT

if TYPE_CHECKING:  # imported where used: resolving a --model argument must not load torch
    import numpy as np
    import torch

    import model as sv

MODEL_PY = REPO_ROOT / "model.py"
DEMO_DIR = REPO_ROOT / "demo"  # the embedded default model
OFFICIAL_ENV = "SENSEVOICE_OFFICIAL_DIR"
REQUIRED_FILES = ("config.yaml", "configuration.json", "am.mvn")


class ModelDirError(ValueError):
    """A path that is not a usable model directory; the message names the path and what is missing."""


def official_dir() -> Path | None:
    """The official release files (tokenizer, config, am.mvn, example clips): $SENSEVOICE_OFFICIAL_DIR or
    ../shared/official beside the repository; None when absent."""
    candidate = Path(os.environ.get(OFFICIAL_ENV) or REPO_ROOT.parent / "shared" / "official")
    return candidate if (candidate / "SenseVoiceSmall" / "config.yaml").is_file() else None


def write_cmvn(path: Path, mean: np.ndarray, std: np.ndarray) -> Path:
    """Write CMVN stats in the Kaldi nnet text format FunASR's WavFrontend reads (shift = -mean, scale = 1/std)."""
    import numpy as np

    dim = len(mean)
    fmt = lambda v: " ".join(f"{x:.7g}" for x in v)  # noqa: E731
    path.write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(-mean)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(1.0 / np.maximum(std, 1e-5))} ]\n</Nnet>\n"
    )
    return path


def read_config(config_path: Path = REPO_ROOT / "config.yaml") -> dict[str, Any]:
    """A config.yaml as a dict (by default the repository's own, the template of new directories)."""
    return yaml.safe_load(Path(config_path).read_text())


def write_config(config: Mapping[str, Any], config_path: Path) -> Path:
    """Write a config.yaml in the official key order (read back by ``read_config`` and by FunASR)."""
    Path(config_path).write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return Path(config_path)


class ModelDir:
    """One SenseVoiceSmall model directory, checked on construction; its parts are built on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise ModelDirError(f"{path}: not a directory (a model directory holds model.pt, config.yaml, "
                                "configuration.json, the tokenizer and am.mvn)")
        missing = [name for name in REQUIRED_FILES if not (self.path / name).is_file()]
        if missing:
            raise ModelDirError(f"{path}: not a model directory, it lacks {missing} (a model directory holds "
                                "model.pt, config.yaml, configuration.json, the tokenizer and am.mvn)")
        self.config: dict[str, Any] = read_config(self.path / "config.yaml")
        self.descriptor: dict[str, Any] = json.loads((self.path / "configuration.json").read_text())
        try:
            self.bpemodel = self.path / self.descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]
        except (KeyError, TypeError):
            raise ModelDirError(f"{path}/configuration.json lacks file_path_metas.tokenizer_conf.bpemodel "
                                "(the tokenizer's file name)") from None
        if not self.bpemodel.is_file():
            raise ModelDirError(f"{path}: the tokenizer {self.bpemodel.name} named by configuration.json is missing")
        self.cmvn = self.path / "am.mvn"
        self.weights = self.path / "model.pt"

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    @classmethod
    def resolve(cls, model: str | os.PathLike | None, option: str = "--model") -> "ModelDir":
        """The model a front door was given, or the embedded demo model when none; ModelDirError says why not."""
        if model is None:
            if not (DEMO_DIR / "model.pt").is_file():
                raise ModelDirError(f"no model given and no demo model ({DEMO_DIR}/model.pt): pass {option} DIR (a "
                                    "directory with model.pt, config.yaml, configuration.json, tokenizer and am.mvn)")
            model = DEMO_DIR
        try:
            return cls(model)
        except ModelDirError as err:
            raise ModelDirError(f"{option} {err}") from None

    @property
    def remote_code(self) -> Path:
        """The model.py FunASR imports for this directory: its own when it has one, else this repository's."""
        own = self.path / "model.py"
        return own if own.is_file() else MODEL_PY

    # ---- parts ------------------------------------------------------------------------------------------------
    @functools.cached_property
    def tokenizer(self):
        from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer

        return SentencepiecesTokenizer(bpemodel=str(self.bpemodel))

    @functools.cached_property
    def special(self) -> sv.SpecialTokens:
        import model as sv

        return sv.SpecialTokens.from_pieces(sv.tokenizer_pieces(self.tokenizer))

    def frontend(self, cmvn: bool = True):
        """FunASR's WavFrontend as config.yaml describes it, with dither 0 (inference is deterministic)."""
        from funasr.frontends.wav_frontend import WavFrontend

        return WavFrontend(**{**self.config["frontend_conf"], "cmvn_file": str(self.cmvn) if cmvn else None,
                              "dither": 0.0})

    def build(self, seed: int | None = 0) -> sv.SenseVoiceSmall:
        """The model config.yaml describes, with random weights (no model.pt needed)."""
        import torch

        import model as sv

        if seed is not None:
            torch.manual_seed(seed)
        config = self.config
        # specaug/specaug_conf as FunASR's trainer passes them: SpecAugment is active in training mode only
        return sv.SenseVoiceSmall(encoder=config["encoder"], encoder_conf=config["encoder_conf"],
                                  input_size=self.frontend(cmvn=False).output_size(),
                                  vocab_size=self.tokenizer.get_vocab_size(), specaug=config.get("specaug"),
                                  specaug_conf=config.get("specaug_conf"), tokenizer=self.tokenizer,
                                  **config.get("model_conf", {}))

    def require_weights(self) -> Path:
        if not self.weights.is_file():
            raise FileNotFoundError(f"{self.weights} is missing: refusing to run SenseVoiceSmall on random weights")
        return self.weights

    def load(self, device: str | torch.device = "cpu") -> sv.SenseVoiceSmall:
        """The model with model.pt loaded strictly (every key, every shape), in eval mode."""
        import model as sv

        model = self.build(seed=None)
        sv.load_checkpoint(model, str(self.require_weights()))
        return model.to(device).eval()

    def automodel(self, device: str = "cpu", ncpu: int | None = None, **kwargs: Any):
        """FunASR's AutoModel over this directory with our model.py, refusing the silent fallbacks FunASR allows:
        a missing model.pt (random weights) and a failed remote-code import (its built-in class)."""
        import torch
        from funasr import AutoModel

        import model as sv

        self.require_weights()
        # Skip FunASR's lenient load: it holds two extra copies of the weights at once (torch.load + deepcopy,
        # +1.9 GB peak RSS for the official size); the strict load below is the one that counts.
        kwargs.setdefault("init_param", None)
        automodel = AutoModel(model=str(self.path), trust_remote_code=True, remote_code=str(self.remote_code),
                              device=device, disable_update=True, ncpu=ncpu or torch.get_num_threads(), **kwargs)
        if not isinstance(automodel.model, sv.SenseVoiceSmall):
            raise TypeError(f"FunASR built {type(automodel.model)} from {self.path}, not this project's "
                            "SenseVoiceSmall (did the remote-code import of model.py fail?)")
        sv.load_checkpoint(automodel.model, str(self.weights))  # strict: every key and shape
        # What was loaded, so that AutoModel.export (which writes beside init_param) works; generate() resets its
        # kwargs to a snapshot taken at construction, so the snapshot is retaken.
        automodel.kwargs["init_param"] = str(self.weights)
        automodel._store_base_configs()
        return automodel

    # ---- writing ----------------------------------------------------------------------------------------------
    def copy_to(self, dst: str | os.PathLike, config: Mapping[str, Any] | None = None,
                weights: bool = False) -> "ModelDir":
        """The directory's files (config.yaml, or ``config`` in its place; configuration.json, tokenizer, am.mvn,
        model.py) into ``dst``, plus model.pt with ``weights``."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        write_config(config if config is not None else self.config, dst / "config.yaml")
        names = ["configuration.json", self.bpemodel.name, self.cmvn.name, *(["model.pt"] if weights else [])]
        for name in names:
            shutil.copyfile(self.path / name, dst / name)
        shutil.copyfile(self.remote_code, dst / "model.py")  # a real file, also where ours is a link
        return ModelDir(dst)

    @staticmethod
    def create(dst: str | os.PathLike, bpemodel: Path, cmvn: Path, encoder_conf: Mapping[str, Any] | None = None,
               seed: int | None = 0, state_dict: Mapping[str, torch.Tensor] | None = None) -> "ModelDir":
        """Assemble a new directory: model.py, the repository's config.yaml (``encoder_conf`` merged in),
        configuration.json naming ``bpemodel``, the tokenizer, am.mvn and a model.pt (``state_dict``, or random
        weights from ``seed``)."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        config = read_config()
        if encoder_conf:
            config["encoder_conf"].update(encoder_conf)
        write_config(config, dst / "config.yaml")
        descriptor = json.loads((REPO_ROOT / "configuration.json").read_text())
        descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"] = Path(bpemodel).name
        (dst / "configuration.json").write_text(json.dumps(descriptor, indent=4) + "\n")
        for src, name in ((MODEL_PY, "model.py"), (Path(bpemodel), Path(bpemodel).name), (Path(cmvn), "am.mvn")):
            if src.resolve() != (dst / name).resolve():
                shutil.copyfile(src, dst / name)
        made = ModelDir(dst)
        import torch

        torch.save(dict(state_dict if state_dict is not None else made.build(seed=seed).state_dict()), made.weights)
        return made
