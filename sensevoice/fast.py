"""Fast inference paths: a loaded SenseVoiceSmall made faster in place (dtype, int8, torch.compile, threads), and
an ONNX Runtime runner over a ``sensevoice export`` directory that decodes like ``SenseVoiceSmall.inference``.

What each path buys on a 2-core AVX-512/AMX CPU (``python -m sensevoice.bench`` measures them):
- ``threads``: every parallel region waits for its slowest thread, so on a busy machine each op can cost a
  scheduler time slice. Start the process with ``OMP_WAIT_POLICY=PASSIVE`` (read when torch loads; idle
  OpenMP threads then sleep instead of spinning): 2 threads on a loaded 2-core machine went from 2-6x slower
  than 1 thread to on par with it. ONNX Runtime's counterpart is ``OnnxSenseVoice(spin=False)``, the default.
- ``dtype="bf16"``: bf16 weights and activations (LayerNorm and log-softmax stay fp32); on CPUs with AMX/
  AVX512-BF16 oneDNN's bf16 GEMMs are several times faster than fp32. ``fp16`` is for GPUs.
- ``int8``: dynamic int8 quantisation of every ``nn.Linear`` (fbgemm, fp32 activations in and out).
- ``compile``: ``torch.compile`` per encoder block (one graph serves all 70 blocks); about a minute of compile
  time on 2 cores per new batch-size class (1, 2-15, 16+), for no gain measurable on a 2-core CPU (the time
  is in the GEMMs, which inductor leaves to the same BLAS).
- ONNX Runtime (``OnnxSenseVoice``): fp32, or the ``--int8`` export (int8 MatMuls on VNNI/AMX kernels).

Measured (bench/results/cpu-1t.md: 1 thread on a shared 2-core Xeon, 10 s clip end to end, vs FunASR's built-in
model): eager 1.1x, bf16 2.7x, int8 1.9x, ONNX Runtime 1.3x, ONNX Runtime int8 4.2x.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

import model as sv

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class FastOptions:
    """How to speed up a loaded model (``accelerate``); the default changes nothing."""

    dtype: str = "fp32"  # one of DTYPES: weights and activations ("bf16": CPU with AMX/AVX512-BF16, or GPU)
    int8: bool = False  # dynamic int8 nn.Linear (CPU only; needs dtype="fp32")
    compile: bool = False  # torch.compile each encoder block (dynamic shapes)
    threads: int | None = None  # torch intra-op threads; None leaves the process setting alone

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; expected one of {list(DTYPES)}")
        for name in ("int8", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}={getattr(self, name)!r} must be True or False")
        if self.int8 and self.dtype != "fp32":
            raise ValueError(f"int8=True quantises fp32 weights; dtype={self.dtype!r} cannot be combined with it")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads <= 0):
            raise ValueError(f"threads={self.threads!r} must be a positive integer or None")


def accelerate(model: sv.SenseVoiceSmall, options: FastOptions) -> sv.SenseVoiceSmall:
    """Apply ``options`` to a loaded model in place (the same object keeps serving ``inference``); returns it."""
    device = next(model.parameters()).device
    if options.int8 and device.type != "cpu":
        raise ValueError(f"int8=True runs on CPU only; the model is on {device}")
    if options.dtype == "fp16" and device.type == "cpu":
        warnings.warn("dtype='fp16' on CPU: most CPUs have no fast fp16 GEMM; use 'bf16' (AMX/AVX512-BF16)",
                      stacklevel=2)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    model.eval()
    if options.dtype != "fp32":
        model.to(DTYPES[options.dtype])  # inference() casts the features to the embedding's dtype
    if options.int8:
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    if options.compile:
        encoder = model.encoder
        for layer in (*encoder.encoders0, *encoder.encoders, *encoder.tp_encoders):
            layer.compile(dynamic=True)
    return model


# ----------------------------------------------------------------------------------------------- ONNX Runtime
class OnnxSenseVoice:
    """An exported directory (``sensevoice export``) on ONNX Runtime, decoding as ``SenseVoiceSmall.inference``:
    same frontend (FunASR's WavFrontend, dither 0), same greedy CTC, same rich-text fields."""

    def __init__(self, onnx_dir: str | Path, int8: bool = False, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), spin: bool = False):
        import onnxruntime as ort
        from funasr.frontends.wav_frontend import WavFrontend
        from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer

        from sensevoice import export, modeldir

        onnx_dir = Path(onnx_dir)
        path = onnx_dir / (export.INT8_NAME if int8 else export.FP32_NAME)
        if not path.is_file():
            hint = " (export with --int8)" if int8 else ""
            raise FileNotFoundError(f"{path} is missing: run `sensevoice export --model DIR --out {onnx_dir}`{hint}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        if spin:  # waiting threads spin while a run is in progress, and stop the moment it returns: no CPU
            options.add_session_config_entry("session.force_spinning_stop", "1")  # burnt between requests
        else:  # spinning wins a little on an idle machine and loses many times on a busy one
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        config = modeldir.read_config(onnx_dir / "config.yaml")
        bpe = json.loads((onnx_dir / "configuration.json").read_text())["file_path_metas"]["tokenizer_conf"]["bpemodel"]
        self.tokenizer = SentencepiecesTokenizer(bpemodel=str(onnx_dir / bpe))
        self.frontend = WavFrontend(**{**config["frontend_conf"], "cmvn_file": str(onnx_dir / "am.mvn"), "dither": 0.0})
        self.special = sv.SpecialTokens.from_pieces(sv.tokenizer_pieces(self.tokenizer))
        self.input_names = export.INPUT_NAMES
        self.output_names = list(export.OUTPUT_NAMES)

    def ctc_logits(self, feats: torch.Tensor, lens: torch.Tensor, language: str, textnorm: str
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, 560) features -> (B, 4 + T, V) raw CTC logits and (B,) lengths, for one prompt choice."""
        B = feats.shape[0]
        rows = [np.full(B, sv.PROMPT_ROWS[name], dtype=np.int32) for name in (language, textnorm)]
        inputs = (feats.float().numpy(), lens.numpy().astype(np.int32), *rows)
        logits, out_lens = self.session.run(self.output_names, dict(zip(self.input_names, inputs)))
        return logits, out_lens

    def inference(self, data_in: Any, key: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Audio item(s) (path, bytes, 16 kHz array or tensor) -> results with ``text`` and its rich fields."""
        options = sv.DecodingOptions.from_kwargs(kwargs)
        if options.output_timestamp:
            raise ValueError("output_timestamp=True is not supported by the ONNX runner; use the PyTorch model")
        items = list(data_in) if isinstance(data_in, (list, tuple)) else [data_in]
        keys = sv.SenseVoiceSmall._keys(key, len(items))
        feats, lens = sv.SenseVoiceSmall.extract_features(items, keys, self.frontend, options.fs)
        return self.decode_features(feats, lens, keys, options)

    def decode_features(self, feats: torch.Tensor, lens: torch.Tensor, keys: Sequence[str],
                        options: sv.DecodingOptions = sv.DecodingOptions()) -> list[dict[str, Any]]:
        logits, out_lens = self.ctc_logits(feats, lens, options.language, options.textnorm)
        scores = sv.apply_decoding_options(torch.from_numpy(logits), options, self.special)
        paths = sv.ctc_greedy(scores, torch.from_numpy(out_lens), self.special.blank)
        results = []
        for path, k in zip(paths, keys):
            text = self.tokenizer.decode([t for t, _, _ in path])
            results.append({"key": k, "text": text, **sv.split_rich_text(text)})
        return results


# ----------------------------------------------------------------------------------------------- checking
def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance between two sequences (tokens, characters); RapidFuzz's C++ when installed."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        pass
    else:
        return Levenshtein.distance(a, b)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def token_agreement(hyps: Sequence[Sequence[int]], refs: Sequence[Sequence[int]]) -> float:
    """1 - (token edit distance / reference tokens) over utterances: 1.0 means the same tokens everywhere."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    total = sum(len(r) for r in refs)
    errors = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    return 1.0 - errors / total if total else float(errors == 0)
