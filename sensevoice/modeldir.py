"""Model directories: the one way to read one (``ModelDir``), to resolve a ``--model`` argument, to load its model
(strictly, through FunASR or without it), to copy it and to assemble a new one.

A directory holds what the official release holds: ``config.yaml``, ``configuration.json`` (its
``file_path_metas.tokenizer_conf.bpemodel`` names the sentencepiece model), the tokenizer, ``am.mvn`` (CMVN) and
``model.pt``; optionally ``model.py`` (FunASR's remote code) and ONNX exports (``model.onnx``,
``model_quant.onnx``). An ONNX export directory is a model directory without ``model.pt``.

``ModelDir.identity`` says which model a directory holds (the embedded demo, the official release, or a custom
one, with a weights hash): every front door names the model that answers with that one ``ModelIdentity``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from sensevoice import REPO_ROOT, cache_root
from sensevoice import hub as hubs

if TYPE_CHECKING:  # imported where used: resolving a --model argument must not load torch
    import numpy as np
    import torch

    import model as sv

MODEL_PY = REPO_ROOT / "model.py"
DEMO_DIR = REPO_ROOT / "demo"  # the embedded default model
OFFICIAL_ENV = "SENSEVOICE_OFFICIAL_DIR"
REQUIRED_FILES = ("config.yaml", "configuration.json", "am.mvn")
WEIGHT_FILES = ("model.pt", "model.onnx", "model_quant.onnx")  # the first one present is hashed for the identity

OFFICIAL_HUB_NAME = hubs.OFFICIAL[hubs.DEFAULT_HUB]  # the official release on FunASR's default hub: what commands suggest
OFFICIAL_HUB_NAMES = tuple(hubs.OFFICIAL.values())  # ... and the same on every hub
# sha256 of chn_jpn_yue_eng_ko_spectok.bpe.model as released in iic/SenseVoiceSmall (its SHA256SUMS line in
# ../shared/official; tests/test_identity.py checks it against that file)
OFFICIAL_TOKENIZER_SHA256 = "aa87f86064c3730d799ddf7af3c04659151102cba548bce325cf06ba4da4e6a8"
# encoder_conf keys that decide the shapes of the weights (the official values: this repository's config.yaml)
ARCHITECTURE_KEYS = ("output_size", "attention_heads", "linear_units", "num_blocks", "tp_blocks", "kernel_size")
SHORT_HASH = 12  # hex digits of the weights' sha256 shown in a model's id
HASH_CACHE = "weights-sha256.json"  # in cache_root(): path -> size, mtime and sha256, so a restart hashes nothing


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


# ----------------------------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class ModelIdentity:
    """Which model answers: what every front door names (the service's /health, /v1/models and verbose_json, the
    WebSocket's finals, batch manifests and rows, the CLI's banner, the demo command)."""

    kind: str  # "demo" (the embedded demo model), "official" (the official architecture and tokenizer), "custom"
    id: str  # one token, no spaces: /v1/models's id and the "model" field of every door
    description: str  # one sentence for people: what the model is; for the demo, what it can and cannot hear
    weights_sha256: str | None  # sha256 of the weights file (as `sha256sum` prints it); None without weights
    source: hubs.HubSource | None = None  # the hub, name and revision, when a hub resolved the directory

    @property
    def is_demo(self) -> bool:
        return self.kind == "demo"

    def __str__(self) -> str:
        """The line a command prints about its model: the id, then what it is."""
        return f"{self.id} ({self.description})"

    def as_dict(self) -> dict[str, Any]:
        """The identity as JSON (the service's /health and /v1/models)."""
        return {"id": self.id, "kind": self.kind, "description": self.description,
                "weights_sha256": self.weights_sha256,
                "source": None if self.source is None else {"hub": self.source.hub, "name": self.source.name,
                                                            "revision": self.source.revision,
                                                            "commit": self.source.commit}}


DEMO_DESCRIPTION = ("the embedded demo model: a small SenseVoice trained on synthetic espeak-ng speech only; it "
                    "knows a few hundred words per language in robotic voices and gets real recordings wrong (for "
                    f"real speech use the official model: --model {OFFICIAL_HUB_NAME})")


def file_sha256(path: Path, cache_file: Path | None = None) -> str:
    """sha256 of a file, remembered in ``cache_file`` (default: cache_root()/HASH_CACHE) under its path, size and
    mtime: the official model.pt (936 MB) is hashed once per version of the file, not at every start."""
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache_file = cache_root() / HASH_CACHE if cache_file is None else cache_file
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: hash, and start a new one
        cache = {}
    known = cache.get(str(path))
    if isinstance(known, dict) and {k: known.get(k) for k in stamp} == stamp and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    cache = {name: entry for name, entry in cache.items() if os.path.exists(name)}  # forget deleted files
    cache[str(path)] = {**stamp, "sha256": digest.hexdigest()}
    try:  # a read-only or full cache only costs the next start a hash
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        staging = cache_file.with_name(f"{cache_file.name}.tmp{os.getpid()}")
        staging.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(staging, cache_file)
    except OSError:
        pass
    return digest.hexdigest()


def id_token(text: str) -> str:
    """``text`` as part of a model id: letters, digits and ``._-`` only (a folder name may hold anything)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


class ModelDir:
    """One SenseVoiceSmall model directory, checked on construction; its parts are built on demand.

    ``path`` is a folder, or a model name on a hub (``iic/SenseVoiceSmall`` on ModelScope, FunASR's default;
    ``FunAudioLLM/SenseVoiceSmall`` with ``hub="hf"``): taken from that hub library's cache with no network call,
    else downloaded into it (sensevoice/hub.py). A folder of that name, when there is one, wins, as in FunASR.
    ``source`` then says which hub, name and revision the files came from (None for a folder)."""

    def __init__(self, path: str | os.PathLike, hub: str = hubs.DEFAULT_HUB, revision: str | None = None):
        self.source: hubs.HubSource | None = None
        if not Path(path).exists() and hubs.is_hub_name(str(path)):
            try:
                path, self.source = hubs.snapshot(str(path), hub, revision)
            except hubs.HubError as err:
                raise ModelDirError(str(err)) from None
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
        from_hub = "" if self.source is None else f", from {self.source}"
        return f"ModelDir({str(self.path)!r}{from_hub})"

    @classmethod
    def resolve(cls, model: str | os.PathLike | None, option: str = "--model", hub: str = hubs.DEFAULT_HUB,
                revision: str | None = None) -> "ModelDir":
        """The model a front door was given (a folder or a hub name, see the class), or the embedded demo model when
        none; ModelDirError says why not."""
        if model is None:
            if not (DEMO_DIR / "model.pt").is_file():
                raise ModelDirError(f"no model given and no demo model ({DEMO_DIR}/model.pt): pass {option} DIR (a "
                                    "directory with model.pt, config.yaml, configuration.json, tokenizer and am.mvn) "
                                    f"or {option} {OFFICIAL_HUB_NAME} (the official release)")
            model = DEMO_DIR
        try:
            return cls(model, hub, revision)
        except ModelDirError as err:
            raise ModelDirError(f"{option} {err}") from None

    @property
    def remote_code(self) -> Path:
        """The model.py FunASR imports for this directory: its own when it has one, else this repository's."""
        own = self.path / "model.py"
        return own if own.is_file() else MODEL_PY

    # ---- identity ---------------------------------------------------------------------------------------------
    @property
    def weights_file(self) -> Path | None:
        """The file that holds the weights: model.pt, else an ONNX export (model.onnx, model_quant.onnx)."""
        return next((self.path / name for name in WEIGHT_FILES if (self.path / name).is_file()), None)

    @property
    def has_official_architecture(self) -> bool:
        """The official encoder and tokenizer: config.yaml's shapes equal the official config's (this repository's)
        and the tokenizer is the released file, byte for byte. The weights themselves cannot be told apart from a
        fine-tune of the same shape."""
        official = read_config()
        conf, wanted = self.config.get("encoder_conf") or {}, official["encoder_conf"]
        return (self.config.get("encoder") == official["encoder"]
                and all(conf.get(key) == wanted[key] for key in ARCHITECTURE_KEYS)
                and hashlib.sha256(self.bpemodel.read_bytes()).hexdigest() == OFFICIAL_TOKENIZER_SHA256)

    @functools.cached_property
    def identity(self) -> ModelIdentity:
        """Which model this directory holds (demo, official or custom), named the same way by every front door.
        The demo is recognised by its weights (the embedded demo/model.pt, wherever a copy lies); "official" by
        structure (``has_official_architecture``); a hub source names the model by its hub name and revision."""
        weights = self.weights_file
        sha = file_sha256(weights) if weights is not None else None
        short = sha[:SHORT_HASH] if sha else "no-weights"
        demo_weights = DEMO_DIR / "model.pt"
        if self.path == DEMO_DIR.resolve() or (sha and demo_weights.is_file() and file_sha256(demo_weights) == sha):
            return ModelIdentity("demo", f"sensevoice-demo@{short}", DEMO_DESCRIPTION, sha, self.source)
        if self.source is not None:  # named as the hub names it; a revision the hub did not say is the hash
            revision = self.source.commit or self.source.revision
            name = f"{self.source.name}@{revision or short}"
            where = f"{self.source.name} at revision {revision or '(the default branch)'} from {hubs.HUBS[self.source.hub]}"
        else:
            name, where = None, f"the folder {self.path.name}/"
        if self.has_official_architecture:
            kind, name = "official", name or f"sensevoice-small@{short}"
            what = ("the official SenseVoiceSmall release" if self.source and self.source.name in OFFICIAL_HUB_NAMES
                    else "SenseVoiceSmall with the official architecture and tokenizer")
        else:
            kind, name = "custom", name or f"custom:{id_token(self.path.name)}@{short}"
            conf = self.config.get("encoder_conf") or {}
            what = (f"a custom SenseVoice model (d {conf.get('output_size')}, {conf.get('num_blocks')} + "
                    f"{conf.get('tp_blocks')} blocks, tokenizer {self.bpemodel.name})")
        weights_text = f"weights sha256 {short}" if sha else "no weights file"
        return ModelIdentity(kind, name, f"{what}, {where}; {weights_text}", sha, self.source)

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

    def check_weights(self) -> Path:
        """model.pt read as data only and matched key by key, shape by shape, against the model config.yaml
        describes, built on the meta device (no memory, nothing copied): a front door finds a bad model.pt before
        its heavy work (Ray, a server, an export). FileNotFoundError / model.CheckpointError name the file."""
        import torch

        import model as sv
        from sensevoice import checkpoint

        path = self.require_weights()
        with torch.device("meta"):
            skeleton = self.build(seed=None)
        state, _ = sv.read_checkpoint(str(path))
        checkpoint.check_state_dict(state, skeleton.state_dict(), str(path))
        return path

    def load(self, device: str | torch.device = "cpu") -> sv.SenseVoiceSmall:
        """The model with model.pt loaded strictly (every key, every shape), in eval mode."""
        from sensevoice import checkpoint

        model = self.build(seed=None)
        checkpoint.load_checkpoint(model, str(self.require_weights()))
        return model.to(device).eval()

    def automodel(self, device: str = "cpu", ncpu: int | None = None, **kwargs: Any):
        """FunASR's AutoModel over this directory with our model.py, refusing the silent fallbacks FunASR allows:
        a missing model.pt (random weights) and a failed remote-code import (its built-in class)."""
        import torch
        from funasr import AutoModel

        import model as sv
        from sensevoice import checkpoint

        self.require_weights()
        # Skip FunASR's lenient load: it holds two extra copies of the weights at once (torch.load + deepcopy,
        # +1.9 GB peak RSS for the official size); the strict load below is the one that counts.
        kwargs.setdefault("init_param", None)
        automodel = AutoModel(model=str(self.path), trust_remote_code=True, remote_code=str(self.remote_code),
                              device=device, disable_update=True, ncpu=ncpu or torch.get_num_threads(), **kwargs)
        if not isinstance(automodel.model, sv.SenseVoiceSmall):
            raise TypeError(f"FunASR built {type(automodel.model)} from {self.path}, not this project's "
                            "SenseVoiceSmall (did the remote-code import of model.py fail?)")
        checkpoint.load_checkpoint(automodel.model, str(self.weights))  # strict: every key and shape
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
