"""ONNX export with FunASR's official I/O, readable by sherpa-onnx and funasr-onnx: the library behind the
``sensevoice export`` command (sensevoice/export_command.py) and the ONNX Runtime backend's cache (backends.py).

Graph (FunASR's ``funasr/models/sense_voice/export_meta.py``, same names, dtypes and dynamic axes):

    speech          (B, T, 560) float32  CMVN'd LFR features, padded
    speech_lengths  (B,)        int32    valid frames per item
    language        (B,)        int32    prompt-embedding row (metadata ``lang_*``: auto 0, zh 3, en 4, ...)
    textnorm        (B,)        int32    prompt-embedding row (metadata ``with_itn`` 14 / ``without_itn`` 15)
 -> ctc_logits      (B, 4 + T, V) float32  raw CTC logits (no log-softmax); the first 4 frames are the tags
    encoder_out_lens (B,)       int32    speech_lengths + 4

The output directory holds ``model.onnx`` (and ``model_quant.onnx`` with ``--int8``: dynamic int8 MatMuls, the
names funasr-onnx looks for), ``tokens.txt`` ("piece id" per line, sherpa-onnx's format), and the model
directory's ``config.yaml`` (frontend dither set to 0), ``configuration.json``, tokenizer and ``am.mvn``.
The metadata carries what sherpa-onnx's SenseVoice reader requires (``model_type=sense_voice_ctc``,
``lfr_window_size``, ``neg_mean``, ``inv_stddev``, ``lang_*``, ``with_itn``, ...). For the official size:
model.onnx ~940 MB (one file, under protobuf's 2 GB), model_quant.onnx ~240 MB; about a minute on 2 cores.
Every export is checked against PyTorch before it is kept (``verify``).

Attention is one ONNX Runtime ``com.microsoft::MultiHeadAttention`` node per block (fed the valid lengths, so no
mask tensor), instead of the ~14 standard ops PyTorch's SDPA lowers to (reshapes, transposes, scaling, a
bool-mask ``Where``/``IsNaN`` pair, softmax, two MatMuls): 11 % less int8 model time on the 2-core CPU. It runs on
every ONNX Runtime build (sherpa-onnx and funasr-onnx included); ``--standard-ops`` keeps to plain ONNX for
other runtimes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

if TYPE_CHECKING:  # imported where used: ``sensevoice --help`` must not load torch
    import numpy as np
    from torch import Tensor, nn

    import model as sv
    from sensevoice.modeldir import ModelDir

log = logging.getLogger(__name__)

INPUT_NAMES = ("speech", "speech_lengths", "language", "textnorm")
OUTPUT_NAMES = ("ctc_logits", "encoder_out_lens")
DYNAMIC_AXES = {"speech": {0: "batch_size", 1: "feats_length"}, "speech_lengths": {0: "batch_size"},
                "language": {0: "batch_size"}, "textnorm": {0: "batch_size"},
                "ctc_logits": {0: "batch_size", 1: "logits_length"}, "encoder_out_lens": {0: "batch_size"}}
OPSET = 17  # first opset with LayerNormalization (one fused node per norm)
FP32_NAME = "model.onnx"
INT8_NAME = "model_quant.onnx"  # FunASR's name for the quantised export (funasr-onnx's quantize=True)
TOKENS_NAME = "tokens.txt"
VERIFY_TOLERANCE = 1e-3  # max |Δ logit| between ONNX Runtime and PyTorch (fp32) on the export check


def exportable(model: sv.SenseVoiceSmall) -> nn.Module:
    """The model with FunASR's export signature: features + prompt rows -> raw CTC logits and lengths."""
    from torch import nn

    class OnnxExportable(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, speech: Tensor, speech_lengths: Tensor, language: Tensor, textnorm: Tensor
                    ) -> tuple[Tensor, Tensor]:
            x, out_lens = self.model.encode(speech, speech_lengths, language.long(), textnorm.long())  # (B, 4+T, D)
            return self.model.ctc(x), out_lens  # (B, 4+T, V), (B,) int32

    return OnnxExportable().eval()


def fused_attention_function():
    """A torch.autograd.Function that computes SANMAttention.attend and exports as ONNX Runtime's fused
    ``com.microsoft::MultiHeadAttention`` with a (B,) int32 valid-length mask (keys beyond it are never attended)."""
    import torch
    from torch.onnx import symbolic_helper

    class OrtMultiHeadAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q: Tensor, k: Tensor, v: Tensor, valid: Tensor, n_head: int, attend) -> Tensor:
            return attend(q, k, v, valid)  # the block's own (B, T, D) attention: tracing runs the real math

        @staticmethod
        def symbolic(g, q, k, v, valid, n_head: int, attend):
            int32 = 6  # onnx.TensorProto.INT32
            lengths = g.op("ReduceSum", g.op("Cast", valid, to_i=int32), g.op("Constant", value_t=torch.tensor([1])),
                           keepdims_i=0)  # (B,) valid frames: ONNX Runtime merges the 70 identical copies
            no_bias = symbolic_helper._optional_input_placeholder_tensor(g)
            y = g.op("com.microsoft::MultiHeadAttention", q, k, v, no_bias, lengths, num_heads_i=n_head)
            y.setType(q.type())  # (B, T, D) like the query: shape inference knows no contrib op
            return y

    return OrtMultiHeadAttention


@contextlib.contextmanager
def ort_fused_attention(model: nn.Module):
    """While tracing, every SANMAttention block attends through ``fused_attention_function`` (same math)."""
    import model as sv

    function = fused_attention_function()
    blocks = [m for m in model.modules() if isinstance(m, sv.SANMAttention)]
    for block in blocks:
        plain = block.attend
        block.attend = lambda q, k, v, valid, plain=plain, n=block.n_head: function.apply(q, k, v, valid, n, plain)
    try:
        yield model
    finally:
        for block in blocks:
            del block.attend  # the class's own method again


def dummy_inputs(n_input: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A padded batch of two (the export trace and the post-export check)."""
    import torch

    import model as sv

    g = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 30, n_input, generator=g)
    return (speech, torch.tensor([30, 17], dtype=torch.int32),
            torch.tensor([sv.PROMPT_ROWS["auto"], sv.PROMPT_ROWS["en"]], dtype=torch.int32),
            torch.tensor([sv.PROMPT_ROWS["woitn"], sv.PROMPT_ROWS["withitn"]], dtype=torch.int32))


def read_cmvn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """am.mvn (Kaldi nnet text) -> (neg_mean, inv_stddev): its <AddShift> and <Rescale> vectors."""
    from funasr.frontends.wav_frontend import load_cmvn

    shift, scale = load_cmvn(str(path)).numpy()
    return shift, scale


def sherpa_metadata(model: sv.SenseVoiceSmall, frontend_conf: dict, cmvn: Path) -> dict[str, str]:
    """The metadata sherpa-onnx's SenseVoice model reads (all values as strings)."""
    import model as sv

    neg_mean, inv_stddev = read_cmvn(cmvn)
    if len(neg_mean) != model.dims.n_input:
        raise ValueError(f"{cmvn} holds {len(neg_mean)}-dim stats; the model reads {model.dims.n_input}-dim features")
    meta = {
        "model_type": "sense_voice_ctc",
        "comment": "SenseVoiceSmall exported by sensevoice.export (FunASR's I/O names)",
        "vocab_size": model.dims.n_vocab,
        "blank_id": model.blank_id,
        "lfr_window_size": frontend_conf["lfr_m"],
        "lfr_window_shift": frontend_conf["lfr_n"],
        "normalize_samples": 0,  # features are computed on samples scaled to int16 range, as FunASR does
        "neg_mean": ",".join(f"{v:.8g}" for v in neg_mean),
        "inv_stddev": ",".join(f"{v:.8g}" for v in inv_stddev),
        "with_itn": sv.PROMPT_ROWS["withitn"],
        "without_itn": sv.PROMPT_ROWS["woitn"],
        **{f"lang_{name}": sv.PROMPT_ROWS[name] for name in sv.LANGUAGES},
    }
    return {k: str(v) for k, v in meta.items()}


def write_tokens(pieces: Iterable[str], path: Path) -> Path:
    """tokens.txt: "piece id" per line (sherpa-onnx's symbol table)."""
    lines = []
    for i, piece in enumerate(pieces):
        if not piece or any(c.isspace() for c in piece):
            raise ValueError(f"token {i} ({piece!r}) is empty or holds whitespace; tokens.txt cannot carry it")
        lines.append(f"{piece} {i}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def to_onnx(model: sv.SenseVoiceSmall, metadata: dict[str, str], path: Path, opset: int = OPSET,
            standard_ops: bool = False) -> Path:
    """Trace ``model`` to ``path`` with FunASR's I/O and the given metadata (one write); attention as ONNX
    Runtime's fused operator unless ``standard_ops``."""
    import onnx
    import torch

    buffer = io.BytesIO()
    # The TorchScript exporter (dynamo=False): the torch.export-based one needs onnxscript, which we do not ship.
    attention = contextlib.nullcontext() if standard_ops else ort_fused_attention(model)
    with torch.no_grad(), warnings.catch_warnings(), attention:
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # Slice with step: harmless
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the constant event/emotion rows
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")  # chosen: see above
        torch.onnx.export(exportable(model), dummy_inputs(model.dims.n_input), buffer, dynamo=False,
                          opset_version=opset, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=DYNAMIC_AXES)
    proto = onnx.load_from_string(buffer.getvalue())
    del buffer
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return path


def set_metadata(proto, metadata: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)


def quantize_int8(src: Path, dst: Path, metadata: dict[str, str]) -> Path:
    """Dynamic int8 quantisation of every MatMul weight, per output channel (as FunASR's own export), signed
    int8 (ONNX Runtime's VNNI/AMX u8s8 kernels; unsigned weights ran 2.6x slower here)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quant_log = logging.getLogger("root")  # onnxruntime.quantization logs one INFO line per tensor there
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
    finally:
        quant_log.setLevel(level)
    proto = onnx.load(str(dst))
    if {p.key: p.value for p in proto.metadata_props} != metadata:
        set_metadata(proto, metadata)
        onnx.save(proto, str(dst))
    return dst


def verify(model: sv.SenseVoiceSmall, path: Path, tolerance: float = VERIFY_TOLERANCE) -> float:
    """Run the export and PyTorch on a padded batch of two; raise if the valid logits differ by > tolerance."""
    import numpy as np
    import onnxruntime as ort
    import torch

    inputs = dummy_inputs(model.dims.n_input)
    with torch.no_grad():
        ref, ref_lens = exportable(model)(*inputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    logits, lens = session.run(list(OUTPUT_NAMES), dict(zip(INPUT_NAMES, (t.numpy() for t in inputs))))
    if lens.dtype != np.int32 or lens.tolist() != ref_lens.tolist():
        raise RuntimeError(f"{path}: encoder_out_lens {lens.tolist()} ({lens.dtype}) != {ref_lens.tolist()} (int32)")
    err = max(float(np.abs(logits[i, :n] - ref[i, :n].numpy()).max()) for i, n in enumerate(lens.tolist()))
    if err > tolerance:
        raise RuntimeError(f"{path}: ONNX Runtime and PyTorch logits differ by {err:.2e} > {tolerance:.0e}")
    return err


def export(model_dir: Path | ModelDir, out_dir: Path, int8: bool = False, opset: int = OPSET,
           standard_ops: bool = False) -> dict[str, Path]:
    """Export a model directory to ``out_dir``; returns {"fp32": ..., "int8": ..., "tokens": ...} paths."""
    from sensevoice.modeldir import ModelDir

    source = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    out_dir = destination(source, out_dir)
    return export_model(source.load(), source, out_dir, int8=int8, opset=opset, standard_ops=standard_ops)


def destination(source, out_dir: Path) -> Path:
    """``out_dir`` of an export of the ModelDir ``source``: a directory of its own (ValueError when it is the model
    directory: checked before the weights are read)."""
    if source.path == Path(out_dir).resolve():
        raise ValueError(f"--out {out_dir} is the model directory; export into a directory of its own")
    return Path(out_dir)


@contextlib.contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A temporary folder to write an export into, made in ``out_dir``'s nearest existing folder (the same file
    system); when the block ends without error its files move into ``out_dir`` (created then), replacing an earlier
    export's. A failed export (an opset torch cannot write, a graph that disagrees with PyTorch) leaves ``out_dir``
    as it was: nothing written, not even created."""
    existing = next(p for p in (out_dir, *out_dir.parents) if p.is_dir())
    with tempfile.TemporaryDirectory(dir=existing, prefix=".sensevoice-export-") as staging:
        yield Path(staging)
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in Path(staging).iterdir():
            shutil.move(item, out_dir / item.name)  # a rename, on the one file system


def export_model(model: sv.SenseVoiceSmall, source, out_dir: Path, int8: bool = False, opset: int = OPSET,
                 standard_ops: bool = False) -> dict[str, Path]:
    """Export a loaded fp32 model (its frontend, tokenizer and CMVN from the ModelDir ``source``) to ``out_dir``:
    a model directory of its own (config with dither 0, tokenizer, am.mvn, model.py, tokens.txt, ONNX files), or,
    into the model directory itself, the ONNX files and tokens.txt only. Staged (``staged``): a failed export
    leaves ``out_dir`` as it was."""
    out_dir = Path(out_dir)
    with staged(out_dir) as staging:
        if out_dir.resolve() != source.path:
            config = {**source.config, "frontend_conf": {**source.config["frontend_conf"], "dither": 0.0}}
            source.copy_to(staging, config=config)
        paths = write_graphs(model, source, staging, int8=int8, opset=opset, standard_ops=standard_ops)
    if not int8:
        (out_dir / INT8_NAME).unlink(missing_ok=True)  # never leave an int8 model of other weights beside
    return {kind: out_dir / path.name for kind, path in paths.items()}


def write_graphs(model: sv.SenseVoiceSmall, source, out_dir: Path, int8: bool = False, opset: int = OPSET,
                 standard_ops: bool = False) -> dict[str, Path]:
    """The ONNX files and tokens.txt of a loaded fp32 model (its tokenizer and CMVN from the ModelDir ``source``)
    into ``out_dir``."""
    metadata = sherpa_metadata(model, source.config["frontend_conf"], source.cmvn)
    paths = {"tokens": write_tokens(source.special.pieces, out_dir / TOKENS_NAME),
             "fp32": to_onnx(model, metadata, out_dir / FP32_NAME, opset, standard_ops)}
    err = verify(model, paths["fp32"])
    log.info("exported %s (max |Δ logit| vs PyTorch %.1e)", paths["fp32"], err)
    if int8:
        paths["int8"] = quantize_int8(paths["fp32"], out_dir / INT8_NAME, metadata)
        log.info("quantised %s", paths["int8"])
    return paths


# ----------------------------------------------------------------------------------------------- AutoModel.export
FUNASR_DEFAULT_OPSET = 14  # funasr.utils.export_utils.export's default opset_version: too old for our graph


def funasr_export_request(caller: FrameType | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``type``, ``quantize`` and ``opset_version`` of an ``AutoModel.export(...)`` call. FunASR's
    ``export_utils.export(model, data_in, quantize, opset_version, type, **kwargs)`` takes them as its own
    parameters and calls ``model.export(**kwargs)`` without them, so they are read from its frame (``caller``);
    a direct ``model.export(...)`` passes them as keyword arguments."""
    if caller is not None and caller.f_code.co_name == "export" \
            and caller.f_globals.get("__name__") == "funasr.utils.export_utils":
        kwargs = caller.f_locals
    return {"type": kwargs.get("type", "onnx"), "quantize": kwargs.get("quantize", False),
            "opset_version": kwargs.get("opset_version", FUNASR_DEFAULT_OPSET)}


def for_automodel(model: sv.SenseVoiceSmall, kwargs: Mapping[str, Any], caller: FrameType | None) -> Path:
    """What ``SenseVoiceSmall.export`` does for FunASR's ``AutoModel.export(type="onnx", quantize=...)``: our
    graph (fused attention, FunASR's I/O names, sherpa-onnx metadata, checked against PyTorch) written where FunASR
    returns it will be, ``output_dir`` or else the model directory (``init_param``'s folder). Exported into the
    model directory, only ``model.onnx`` (``model_quant.onnx`` with ``quantize``) and ``tokens.txt`` are written;
    into another folder, a whole model directory as ``sensevoice export`` writes it (funasr-onnx loads either)."""
    from sensevoice.modeldir import ModelDir

    request = funasr_export_request(caller, kwargs)
    if request["type"] != "onnx":
        raise ValueError(f"type={request['type']!r}: SenseVoiceSmall exports type='onnx' only")
    if request["quantize"] not in (False, True, None, "int8"):
        raise ValueError(f"quantize={request['quantize']!r}; expected True, False or 'int8'")
    opset = request["opset_version"]
    if opset == FUNASR_DEFAULT_OPSET:
        opset = OPSET
    elif not isinstance(opset, int) or opset < OPSET:
        raise ValueError(f"opset_version={opset!r}; the graph needs opset {OPSET} or later (LayerNormalization)")
    if model._backend is not None and model._backend.options.backend == "torch":
        raise ValueError(f"this model was converted to {model._backend.options.name} in place; export an AutoModel "
                         "built without precision=/quantize= (the export quantises on its own with quantize=True)")
    if "output_dir" in kwargs:
        out_dir = kwargs["output_dir"]
    elif kwargs.get("init_param"):
        out_dir = os.path.dirname(kwargs["init_param"])
    else:
        raise ValueError("AutoModel.export needs output_dir= (this AutoModel has no init_param folder)")
    if not kwargs.get("model_path"):
        raise ValueError("AutoModel.export needs the model directory (FunASR passes model_path)")
    source, out_dir = ModelDir(kwargs["model_path"]), Path(out_dir).resolve()
    model = model.float().cpu().eval()  # FunASR hands over its own copy of the model, on the export device
    int8 = request["quantize"] in (True, "int8")
    export_model(model, source, out_dir, int8=int8, opset=opset)
    return out_dir

