"""Backends: what computes the CTC scores of a padded feature batch. One interface, chosen by one option
(``model.BackendOptions``: backend x precision), behind the pipeline, the CLI, the service, the benchmark and
FunASR's AutoModel (``AutoModel(..., backend="onnxruntime", quantize="int8")``).

- ``torch`` fp32: model.py's own path, decoding exactly as FunASR's built-in class.
- ``torch`` bf16 / fp16: half-precision weights and activations (LayerNorm and log-softmax stay fp32); bf16 is
  fast on CPUs with AMX/AVX512-BF16, fp16 is for GPUs.
- ``torch`` int8: dynamic int8 quantisation of every ``nn.Linear`` (fbgemm; CPU only).
- ``onnxruntime`` fp32 / int8: the ``sensevoice export`` graph (fused attention; int8 MatMul weights). The ONNX
  file comes from the model directory when it has one, else it is exported once into a cache keyed by a hash of
  the weights ($SENSEVOICE_CACHE, default ~/.cache/sensevoice) and reused by every later process.

Every backend returns ``(scores (B, 4 + T, V), lens (B,))``: log-probs or raw logits, the same greedy path
either way; ``transcripts.decode_scores`` turns them into results.

Threads: every parallel region waits for its slowest thread, so on a busy machine each op can cost a scheduler
time slice. Start the process with ``OMP_WAIT_POLICY=PASSIVE`` for torch; our ONNX Runtime sessions do not spin.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from torch import Tensor, nn

import model as sv
from sensevoice import cache_root, export
from sensevoice.modeldir import ModelDir

log = logging.getLogger(__name__)

ONNX_FILES = {"fp32": export.FP32_NAME, "int8": export.INT8_NAME}  # FunASR's names: model.onnx, model_quant.onnx
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ORT_PACKAGE_HINT = "the onnxruntime package (pinned in setup.cfg: pip install -c constraints.txt onnxruntime)"


class Backend(Protocol):
    """Padded features -> CTC scores, for one prompt choice."""

    options: sv.BackendOptions

    def ctc_scores(self, feats: Tensor, lens: Tensor, language: str, textnorm: str) -> tuple[Tensor, Tensor]:
        """(B, T, n_input) CMVN'd LFR features, (B,) lengths -> (B, 4 + T, V) scores, (B,) lengths."""
        ...


# ----------------------------------------------------------------------------------------------- PyTorch
class TorchBackend:
    """A loaded model, converted in place to the precision asked for (fp32 changes nothing)."""

    def __init__(self, model: sv.SenseVoiceSmall, options: sv.BackendOptions = sv.BackendOptions()):
        if options.backend != "torch":
            raise ValueError(f"TorchBackend runs backend='torch', not {options.backend!r}")
        device = next(model.parameters()).device
        if options.precision == "int8" and device.type != "cpu":
            raise ValueError(f"precision='int8' (dynamic int8 nn.Linear) runs on CPU only; the model is on {device}")
        if options.precision == "fp16" and device.type == "cpu":
            warnings.warn("precision='fp16' on CPU: most CPUs have no fast fp16 GEMM; use 'bf16' (AMX/AVX512-BF16)",
                          stacklevel=2)
        model.eval()
        if options.precision in ("bf16", "fp16"):
            model.to(TORCH_DTYPES[options.precision])  # ctc_logprobs casts the features to the weights' dtype
        elif options.precision == "int8":
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
        self.model, self.options = model, options

    @torch.no_grad()
    def ctc_scores(self, feats: Tensor, lens: Tensor, language: str, textnorm: str) -> tuple[Tensor, Tensor]:
        return self.model.ctc_logprobs(feats, lens, language, textnorm)


# ----------------------------------------------------------------------------------------------- ONNX Runtime
class OrtBackend:
    """An exported graph (``sensevoice export``: FunASR's I/O names) on ONNX Runtime."""

    def __init__(self, onnx_path: str | os.PathLike, options: sv.BackendOptions, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), spin: bool = False):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"backend='onnxruntime' needs {ORT_PACKAGE_HINT}: {err}") from err
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads or torch.get_num_threads()
        session_options.inter_op_num_threads = 1
        if spin:  # waiting threads spin while a run is in progress, and stop the moment it returns
            session_options.add_session_config_entry("session.force_spinning_stop", "1")
        else:  # spinning wins a little on an idle machine and loses many times on a busy one
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), session_options, providers=list(providers))
        self.input_names, self.output_names = export.INPUT_NAMES, list(export.OUTPUT_NAMES)
        self.options = options

    def ctc_scores(self, feats: Tensor, lens: Tensor, language: str, textnorm: str) -> tuple[Tensor, Tensor]:
        B = feats.shape[0]
        rows = [np.full(B, sv.PROMPT_ROWS[name], dtype=np.int32) for name in (language, textnorm)]
        inputs = (feats.float().cpu().numpy(), lens.cpu().numpy().astype(np.int32), *rows)
        logits, out_lens = self.session.run(self.output_names, dict(zip(self.input_names, inputs)))
        return torch.from_numpy(logits), torch.from_numpy(out_lens)


def ort_providers(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") \
        else ["CPUExecutionProvider"]


def weights_digest(model: nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes, dtypes, bytes): the key of the ONNX cache."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def onnx_file(model: sv.SenseVoiceSmall, source: ModelDir, precision: str, cache: Path | None = None) -> Path:
    """The ONNX graph for these weights: the model directory's own export when present, else the cache's (made
    once: about a minute on 2 cores for the official size). ``cache``: another cache folder than cache_root()."""
    name = ONNX_FILES[precision]
    if (source.path / name).is_file():
        return source.path / name
    folder = (cache or cache_root()) / "onnx" / weights_digest(model)
    if not (folder / name).is_file():
        log.warning("exporting %s to ONNX (%s) into %s, once for these weights…", source.path, precision, folder)
        staging = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        export.export_model(model, source, staging, int8=precision == "int8")
        if folder.exists():  # another process finished first, or an fp32-only export is being completed
            for item in staging.iterdir():
                os.replace(item, folder / item.name)
            staging.rmdir()
        else:
            os.replace(staging, folder)
        log.warning("exported %s", folder / name)
    return folder / name


# ----------------------------------------------------------------------------------------------- choosing
def for_model(model: sv.SenseVoiceSmall, options: sv.BackendOptions, model_dir: str | os.PathLike | None,
              threads: int | None = None, cache: Path | None = None) -> Backend:
    """The backend ``options`` asks for, over a loaded model (whose directory gives the ONNX file or the export's
    frontend and tokenizer). PyTorch converts ``model`` in place."""
    if options.backend == "torch":
        return TorchBackend(model, options)
    if model_dir is None:
        raise ValueError(f"backend={options.backend!r} needs the model directory (FunASR passes model_path)")
    device = str(next(model.parameters()).device)
    path = onnx_file(model.eval(), ModelDir(model_dir), options.precision, cache)
    return OrtBackend(path, options, threads=threads, providers=ort_providers(device))


def for_dir(source: ModelDir, options: sv.BackendOptions, device: str = "cpu", threads: int | None = None
            ) -> Backend:
    """The backend ``options`` asks for, over a model directory. ONNX Runtime over the directory's own export
    (model.onnx / model_quant.onnx) needs no PyTorch weights, so an export directory without model.pt serves."""
    own = own_onnx(source, options)
    if own is not None:
        return OrtBackend(own, options, threads, ort_providers(device))
    return for_model(source.load(device), options, source.path, threads)


def own_onnx(source: ModelDir, options: sv.BackendOptions) -> Path | None:
    """The directory's own ONNX export that ``options`` runs, if it has one (then model.pt is not read)."""
    own = source.path / ONNX_FILES.get(options.precision, "")
    return own if options.backend == "onnxruntime" and own.is_file() else None


def check_dir(source: ModelDir, options: sv.BackendOptions) -> None:
    """What ``for_dir`` would load, checked without loading it: model.pt read as data and matched against the
    config (FileNotFoundError / model.CheckpointError name the file), unless an own ONNX export serves."""
    if own_onnx(source, options) is None:
        source.check_weights()
