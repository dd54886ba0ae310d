"""SenseVoiceSmall: non-autoregressive multilingual speech understanding, as a FunASR model plugin.

Paper: "FunAudioLLM: Voice Understanding and Generation Foundation Models" (https://arxiv.org/abs/2407.04051).
Pipeline: 80-mel fbank -> LFR (7 frames, stride 6) -> CMVN -> four prompt frames (language, event, emotion,
text-norm) prepended -> SAN-M encoder -> CTC over the sentencepiece vocabulary. The first four decoded tokens
are the rich tags, e.g. ``<|en|><|NEUTRAL|><|Speech|><|woitn|>hello``.

FunASR imports this file by path (``remote_code="./model.py"``): on its own (stdlib, numpy, torch, funasr) it builds
the network from config.yaml, refuses a model.pt that is not plain data (``read_checkpoint``) and computes the CTC
scores of prompt + features (``ctc_logprobs``); tests/test_model_build.py keeps it so. The rest is the ``sensevoice``
package's, which ships beside this file (FunASR puts its folder on sys.path; pip installs both), imported lazily
where needed, with an ImportError naming the package when it is missing (``missing_package``); tests/test_layers.py
lists them (LAZY_OPTIONAL): ``transcripts`` (inference: scores -> results), ``audio`` (extract_features: the audio
loader), ``decoding`` (from_kwargs: FunASR's hotword=), ``training.objective`` (forward: the training loss),
``backends`` (scorer: all but PyTorch fp32), ``export`` (export) and ``checkpoint`` (from_pretrained: strict loading).
Checkpoint keys and shapes follow the official release, so its ``model.pt`` loads unmodified.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from funasr.register import tables

# ----------------------------------------------------------------------------------------------- constants
SAMPLE_RATE = 16000  # Hz, what the frontend expects
FRAME_SHIFT_MS = 10  # fbank hop
LFR_STRIDE = 6  # low-frame-rate stacking stride (lfr_n)
ENC_FRAME_MS = FRAME_SHIFT_MS * LFR_STRIDE  # 60 ms per encoder frame
N_PROMPT = 4  # prompt frames prepended to the features: language, event, emotion, text-norm

LANGUAGES = ("auto", "zh", "en", "yue", "ja", "ko", "nospeech")
LANGUAGE_ALIASES = {"zn": "zh"}  # the official model card spells Chinese "zn"
TEXTNORMS = ("withitn", "woitn")
EMOTIONS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "OTHER", "EMO_UNKNOWN")
EVENTS = ("Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing",
          "Speech_Noise", "GBG", "Event_UNK")

# Rows of the prompt embedding table, in the official layout (16 rows; 5, 6, 8, 9, 10 are unused there).
PROMPT_ROWS = {"auto": 0, "event": 1, "emotion": 2, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12,
               "nospeech": 13, "withitn": 14, "woitn": 15}
N_PROMPT_ROWS = 16

TAG_RE = re.compile(r"<\|([^|]*)\|>")


def tag(name: str) -> str:
    """The tokenizer piece of a special token: tag("en") == "<|en|>"."""
    return f"<|{name}|>"


# ----------------------------------------------------------------------------------------------- dims
# Keys the official config.yaml carries that select the only implementation there is; they must keep these
# values, and they change nothing.
LEGACY_ENCODER_KEYS = {"input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
                       "selfattention_layer_type": "sanm", "normalize_before": True,
                       "positional_dropout_rate": None}  # None: any value (the official code ignores it)


@dataclass(frozen=True)
class ModelDimensions:
    """Architecture of one SenseVoiceSmall; built from config.yaml's encoder_conf + frontend + tokenizer."""

    n_input: int = 560  # LFR-stacked fbank dimension (80 mels x 7 frames)
    n_vocab: int = 25055  # CTC output classes = tokenizer pieces (blank is piece 0, <unk>)
    d_model: int = 512  # output_size
    n_head: int = 4  # attention_heads
    d_ff: int = 2048  # linear_units
    n_blocks: int = 50  # num_blocks: SAN-M blocks before after_norm (the first maps n_input -> d_model)
    n_tp_blocks: int = 20  # tp_blocks: SAN-M blocks after after_norm
    kernel_size: int = 11  # FSMN memory kernel (frames)
    sanm_shift: int = 0  # sanm_shfit: extra left context of the FSMN kernel
    dropout: float = 0.1  # dropout_rate
    attention_dropout: float = 0.1  # attention_dropout_rate

    @classmethod
    def from_encoder_conf(cls, conf: Mapping[str, Any], n_input: int, n_vocab: int) -> "ModelDimensions":
        names = {"output_size": "d_model", "attention_heads": "n_head", "linear_units": "d_ff",
                 "num_blocks": "n_blocks", "tp_blocks": "n_tp_blocks", "kernel_size": "kernel_size",
                 "sanm_shfit": "sanm_shift", "dropout_rate": "dropout",
                 "attention_dropout_rate": "attention_dropout"}
        values = {}
        for key, value in dict(conf).items():
            if key in names:
                values[names[key]] = value
            elif key in LEGACY_ENCODER_KEYS:
                expected = LEGACY_ENCODER_KEYS[key]
                if expected is not None and value != expected:
                    raise ValueError(f"encoder_conf.{key}={value!r}; only {expected!r} is implemented")
            else:
                known = sorted(names) + sorted(LEGACY_ENCODER_KEYS)
                raise ValueError(f"encoder_conf has unknown key {key!r}; known: {known}")
        dims = cls(n_input=int(n_input), n_vocab=int(n_vocab), **values)
        if dims.d_model % dims.n_head:
            raise ValueError(f"output_size={dims.d_model} is not divisible by attention_heads={dims.n_head}")
        if dims.n_vocab <= 0:
            raise ValueError(f"vocab_size={n_vocab}; build the model with its tokenizer "
                             "(config.yaml: tokenizer_conf.bpemodel)")
        return dims


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids of the rich tags, looked up by name in the tokenizer."""

    blank: int
    language: dict[str, int]  # "zh" -> id of <|zh|>
    textnorm: dict[str, int]  # "withitn" -> id of <|withitn|>
    emotion_unknown: int  # <|EMO_UNKNOWN|>
    names: dict[int, str]  # id -> tag name, for every <|...|> piece
    pieces: tuple[str, ...]  # id -> piece, the whole vocabulary

    @classmethod
    def from_pieces(cls, pieces: Sequence[str]) -> "SpecialTokens":
        index = {piece: i for i, piece in enumerate(pieces)}
        required = [tag(n) for n in (*LANGUAGES[1:], *TEXTNORMS, "EMO_UNKNOWN")]
        missing = [p for p in required if p not in index]
        if missing:
            raise ValueError(f"tokenizer lacks the SenseVoice special tokens {missing}")
        return cls(
            blank=0,
            language={n: index[tag(n)] for n in LANGUAGES[1:]},
            textnorm={n: index[tag(n)] for n in TEXTNORMS},
            emotion_unknown=index[tag("EMO_UNKNOWN")],
            names={i: m.group(1) for piece, i in index.items() if (m := TAG_RE.fullmatch(piece))},
            pieces=tuple(pieces),
        )


def tokenizer_pieces(tokenizer: Any) -> list[str]:
    """All pieces of a FunASR tokenizer (SentencepiecesTokenizer or a token-list tokenizer), id order."""
    sp = getattr(tokenizer, "sp", None)  # FunASR's SentencepiecesTokenizer
    if sp is not None:
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    if hasattr(tokenizer, "get_vocab"):
        return list(tokenizer.get_vocab())
    if getattr(tokenizer, "token_list", None) is not None:
        return list(tokenizer.token_list)
    raise TypeError(f"cannot list the vocabulary of tokenizer {type(tokenizer).__name__}")


# ----------------------------------------------------------------------------------------------- options
def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} must be True or False")
    return bool(value)


MAX_BEAM = 64  # prefixes kept per frame, at most
HOTWORD_BEAM = 4  # the beam of a search with hotwords and beam_size=1 (biasing needs alternatives to choose from)


def _check_count(name: str, value: Any, low: int, high: int | None, also: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):  # ``also``: what else the caller accepts (diarize: None)
        raise ValueError(f"{name}={value!r} must be an integer " + (f"in [{low}, {high}]" if high is not None
                                                                     else f">= {low}") + also)
    return int(value)


def _check_number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} must be a finite number " + (f"in [{low}, {high}]" if high is not None
                                                                          else f">= {low}"))
    return float(value)


def _check_choice(name: str, value: Any, default: str, choices: Sequence[str], aliases: Mapping[str, str]) -> str:
    value = default if value is None else value  # FunASR passes language=None for "not given"
    if not isinstance(value, str):
        raise TypeError(f"{name}={value!r} must be a string, one of {list(choices)}")
    value = aliases.get(value, value)
    if value not in choices:
        also = f" (or {', '.join(f'{a!r} for {v}' for a, v in aliases.items())})" if aliases else ""
        raise ValueError(f"{name}={value!r}; expected one of {list(choices)}{also}")
    return value


def _check_hotwords(value: Any) -> tuple[tuple[str, float | None], ...]:
    """Hotwords as ((phrase, weight or None), ...): accepts phrases and (phrase, weight) pairs."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise TypeError(f"hotwords={value!r} must be a tuple of phrases or (phrase, weight) pairs; "
                        "from_kwargs(hotword=...) reads a string or a file")
    out = []
    for entry in value:
        phrase, weight = (entry, None) if isinstance(entry, str) else tuple(entry) if isinstance(entry, (tuple, list)) \
            and len(entry) == 2 else (None, None)
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"hotword {entry!r} must be a non-empty phrase or a (phrase, weight) pair")
        weight = None if weight is None else _check_number(f"weight of {phrase!r}", weight, 0)
        out.append((" ".join(phrase.split()), weight))
    return tuple(out)


def _check_option(spec: Any, value: Any) -> Any:
    """One DecodingOptions field's value, checked against its declaration and made canonical."""
    name, meta = spec.name, spec.metadata
    kind = getattr(spec.type, "__name__", spec.type)  # a string under ``from __future__ import annotations``
    if kind == "bool":
        return _check_flag(name, value)
    if kind == "int":
        return _check_count(name, value, *meta["range"])
    if kind == "float":
        return _check_number(name, value, *meta["range"])
    if kind == "str":
        return _check_choice(name, value, spec.default, meta["choices"], meta.get("aliases", {}))
    if kind == "tuple":  # phrases with optional weights (hotwords)
        return _check_hotwords(value)
    raise TypeError(f"DecodingOptions.{name}: fields of type {kind} have no check; use bool, int, float, str or tuple")


def option(default: Any, help: str, **spec: Any) -> Any:
    """A field of DecodingOptions: its default, one line of help, and how the front doors take it (``spec``'s
    keys: sensevoice/optionspec.py). Every door derives its flags and fields from these; the CLI reads them from
    this file's source, without importing torch, so ``spec`` holds literals or names of this file's constants."""
    return field(default=default, metadata={"help": help, **spec})


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode: the one options type of every front door (CLI, service, batch, AutoModel kwargs), validated
    on construction from each field's declaration; ``from_kwargs`` reads FunASR's spellings. A new option is one
    field here: every door gets it (tests/test_options.py adds one to a copy of this type)."""

    language: str = option("auto", "forced language prompt (auto: detected per segment)", choices=LANGUAGES,
                           aliases=LANGUAGE_ALIASES, metavar="LANG", per_request=True)
    textnorm: str = option("woitn", "inverse text normalisation: digits and punctuation", choices=TEXTNORMS,
                           as_flag=("withitn", "woitn"), names={"cli": "--itn", "form": "use_itn", "stream": "itn"},
                           per_request=True)
    ban_emo_unk: bool = option(False, "never output <|EMO_UNKNOWN|>: every speech segment gets one of the emotions")
    # sherpa-onnx's blank_penalty: an under-confident model drops short words; the tag frames are left alone.
    blank_penalty: float = option(0.0, "subtract X from the CTC blank's score before greedy decoding: X > 0 trades "
                                  "dropped short words for insertions (0: plain greedy CTC, as FunASR decodes)",
                                  range=(0, None), metavar="X")
    output_timestamp: bool = option(False, "add per-token and per-word [start_ms, end_ms] (and their probabilities)",
                                    doors=False)
    fs: int = option(SAMPLE_RATE, "sample rate of array/tensor inputs in Hz (files carry their own)",
                     range=(1, None), doors=False)
    # The options below search beyond the greedy path (sensevoice/decoding.py's search).
    beam_size: int = option(1, "CTC prefix beam search with N prefixes (1: greedy, as FunASR decodes; "
                            "hotwords search with at least 4, HOTWORD_BEAM)", range=(1, MAX_BEAM), metavar="N")
    # ((phrase, weight or None: hotword_weight), ...); from_kwargs also reads FunASR's ``hotword`` (a file or words).
    hotwords: tuple = option((), "bias decoding towards these phrases: a file with one phrase per line (a trailing "
                             "number is its weight) or space-separated words", metavar="FILE|WORDS")
    hotword_weight: float = option(2.0, "bonus in nats per matched piece of a hotword, taken back if the match fails",
                                   range=(0, None), metavar="X")
    restrict_language: bool = option(False, "output only the scripts of the language, forced or detected "
                                     "(zh/yue keep Latin)")
    tag_topk: int = option(0, "add the K most likely languages, emotions and events with probabilities (0: off)",
                           range=(0, len(EVENTS)), metavar="K")

    def __post_init__(self):
        for spec in fields(self):  # frozen: canonical values replace the accepted spellings
            object.__setattr__(self, spec.name, _check_option(spec, getattr(self, spec.name)))

    @property
    def use_itn(self) -> bool:
        return self.textnorm == "withitn"

    @property
    def searches(self) -> bool:
        """Whether decoding needs more than FunASR's greedy search (sensevoice/decoding.py's search)."""
        return self.beam_size > 1 or bool(self.hotwords) or self.restrict_language or self.tag_topk > 0

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "DecodingOptions":
        """From FunASR-style keyword arguments: every field by its name, ``use_itn`` (bool) or
        ``textnorm``/``text_norm``, and FunASR's ``hotword``; FunASR's other runtime kwargs pass through."""
        use_itn = kwargs.get("use_itn")
        textnorm = kwargs.get("textnorm", kwargs.get("text_norm"))
        if use_itn is not None:
            use_itn = _check_flag("use_itn", use_itn)
            if textnorm is not None and textnorm in TEXTNORMS and (textnorm == "withitn") != use_itn:
                raise ValueError(f"use_itn={use_itn!r} contradicts textnorm={textnorm!r}")
        if textnorm is None:
            textnorm = "withitn" if use_itn else "woitn"
        values = {spec.name: kwargs[spec.name] for spec in fields(cls) if spec.name in kwargs}
        if kwargs.get("hotword") is not None:  # FunASR's spelling (contextual Paraformer)
            if "hotwords" in kwargs:
                raise ValueError("pass hotword= (FunASR's spelling) or hotwords=, not both")
            try:  # hotwords decode there too; this reads FunASR's file or string form
                from sensevoice import decoding
            except ImportError as err:
                raise missing_package("hotword=", err) from err
            values["hotwords"] = decoding.read_hotwords(kwargs["hotword"])
        return cls(**{**values, "textnorm": textnorm})


# Inference backends and the precisions each runs (sensevoice/backends.py implements all but the default, which
# is this file's own PyTorch fp32 path, decoding exactly as FunASR's built-in class).
BACKEND_PRECISIONS = {"torch": ("fp32", "bf16", "fp16", "int8"), "onnxruntime": ("fp32", "int8")}


@dataclass(frozen=True)
class BackendOptions:
    """Which runtime computes the CTC scores: ``backend`` x ``precision`` (see BACKEND_PRECISIONS)."""

    backend: str = "torch"
    precision: str = "fp32"  # "int8": dynamic int8 weights (CPU); "bf16"/"fp16": half-precision torch weights

    def __post_init__(self):
        if self.backend not in BACKEND_PRECISIONS:
            raise ValueError(f"backend={self.backend!r}; expected one of {list(BACKEND_PRECISIONS)}")
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            raise ValueError(f"precision={self.precision!r} is not available with backend={self.backend!r}; "
                             f"expected one of {list(BACKEND_PRECISIONS[self.backend])}")

    @property
    def name(self) -> str:
        return self.backend if self.precision == "fp32" else f"{self.backend}-{self.precision}"

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "BackendOptions":
        """From AutoModel-style kwargs: ``backend``, ``precision``, and ``quantize`` ("int8" or True, as
        funasr-onnx's quantize=True) as another spelling of precision="int8"."""
        backend = kwargs.get("backend") or "torch"
        precision = kwargs.get("precision")
        quantize = kwargs.get("quantize")
        if quantize not in (None, False, True, "int8"):
            raise ValueError(f"quantize={quantize!r}; expected 'int8', True or False")
        if quantize in (True, "int8"):
            if precision not in (None, "int8"):
                raise ValueError(f"quantize={quantize!r} contradicts precision={precision!r}")
            precision = "int8"
        return cls(backend=backend, precision=precision or "fp32")


# ----------------------------------------------------------------------------------------------- layers
class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the activation dtype (stable under fp16/bf16)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).type_as(x)


def sinusoidal_positions(n_frames: int, depth: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(T, depth) sin|cos position code for positions 1..T, as the official encoder adds it."""
    positions = torch.arange(1, n_frames + 1, device=device, dtype=torch.float32)  # (T,)
    step = math.log(10000.0) / (depth / 2 - 1)
    inv_timescales = torch.exp(torch.arange(depth // 2, device=device, dtype=torch.float32) * -step)
    angles = positions[:, None] * inv_timescales[None, :]  # (T, depth/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(dtype)


def padding_mask(lens: Tensor, n_frames: int) -> Tensor:
    """(B, T) bool, True on valid frames."""
    return torch.arange(n_frames, device=lens.device)[None, :] < lens[:, None]


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class SANMAttention(nn.Module):
    """Self-attention with an FSMN memory block on the values (SAN-M, https://arxiv.org/abs/2006.01712)."""

    def __init__(self, d_in: int, d_model: int, n_head: int, kernel_size: int, sanm_shift: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.dropout_p = dropout
        self.linear_q_k_v = nn.Linear(d_in, 3 * d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        # Depthwise conv over time, padded so the output keeps T frames: by the conv itself when the padding is
        # symmetric (one op fewer per block in an ONNX graph), else by an explicit pad (sanm_shift != 0).
        left = (kernel_size - 1) // 2 + sanm_shift
        right = kernel_size - 1 - left
        self.fsmn_block = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=False,
                                    padding=left if left == right else 0)
        self.fsmn_padding = None if left == right else (left, right)
        self.dropout = nn.Dropout(dropout)

    def fsmn_memory(self, v: Tensor, valid: Tensor) -> Tensor:
        """(B, T, D) values -> (B, T, D) memory; padded frames are zeroed in and out."""
        keep = valid[:, :, None].to(v.dtype)  # (B, T, 1)
        v = v * keep
        v_t = v.transpose(1, 2)  # (B, D, T)
        if self.fsmn_padding is not None:
            v_t = F.pad(v_t, self.fsmn_padding)
        memory = self.fsmn_block(v_t).transpose(1, 2)  # (B, T, D)
        return self.dropout(memory + v) * keep

    def attend(self, q: Tensor, k: Tensor, v: Tensor, valid: Tensor) -> Tensor:
        """(B, T, D) queries, keys, values -> (B, T, D) multi-head attention; padded keys are never attended.
        (The ONNX export swaps in ONNX Runtime's fused MultiHeadAttention here: sensevoice/export.py.)"""
        B, T, _ = q.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
        p = self.dropout_p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :], dropout_p=p)  # (B, H, T, Dh)
        return y.transpose(1, 2).reshape(B, T, -1)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        q, k, v = self.linear_q_k_v(x).split(self.linear_out.in_features, dim=-1)  # 3 x (B, T, D)
        return self.linear_out(self.attend(q, k, v, valid)) + self.fsmn_memory(v, valid)


class EncoderLayer(nn.Module):
    """Pre-norm SAN-M block; the residual around attention is skipped when it changes width (first block)."""

    def __init__(self, d_in: int, dims: ModelDimensions):
        super().__init__()
        self.self_attn = SANMAttention(d_in, dims.d_model, dims.n_head, dims.kernel_size, dims.sanm_shift,
                                       dims.attention_dropout)
        self.feed_forward = FeedForward(dims.d_model, dims.d_ff, dims.dropout)
        self.norm1 = LayerNorm(d_in)
        self.norm2 = LayerNorm(dims.d_model)
        self.dropout = nn.Dropout(dims.dropout)
        self.residual = d_in == dims.d_model

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        attn = self.dropout(self.self_attn(self.norm1(x), valid))
        x = x + attn if self.residual else attn
        return x + self.dropout(self.feed_forward(self.norm2(x)))


# ----------------------------------------------------------------------------------------------- encoder
@tables.register("encoder_classes", "SenseVoiceEncoderSmall")
class SenseVoiceEncoderSmall(nn.Module):
    """SAN-M encoder: 1 + (n_blocks - 1) blocks, after_norm, n_tp_blocks blocks, tp_norm."""

    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.dims = dims
        self.encoders0 = nn.ModuleList([EncoderLayer(dims.n_input, dims)])
        self.encoders = nn.ModuleList([EncoderLayer(dims.d_model, dims) for _ in range(dims.n_blocks - 1)])
        self.after_norm = LayerNorm(dims.d_model)
        self.tp_encoders = nn.ModuleList([EncoderLayer(dims.d_model, dims) for _ in range(dims.n_tp_blocks)])
        self.tp_norm = LayerNorm(dims.d_model)

    def output_size(self) -> int:
        return self.dims.d_model

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, n_input), (B,) -> (B, T, d_model), (B,)."""
        B, T, D = x.shape
        valid = padding_mask(lens, T)  # (B, T)
        x = x * self.dims.d_model ** 0.5 + sinusoidal_positions(T, D, x.device, x.dtype)
        for layer in self.encoders0:
            x = layer(x, valid)
        for layer in self.encoders:
            x = layer(x, valid)
        x = self.after_norm(x)
        for layer in self.tp_encoders:
            x = layer(x, valid)
        return self.tp_norm(x), lens


class CTCHead(nn.Module):
    """Linear projection to the vocabulary (key ``ctc.ctc_lo`` as in FunASR's CTC module)."""

    def __init__(self, d_model: int, n_vocab: int):
        super().__init__()
        self.ctc_lo = nn.Linear(d_model, n_vocab)

    def forward(self, x: Tensor) -> Tensor:
        return self.ctc_lo(x)


# ----------------------------------------------------------------------------------------------- the package
def missing_package(needed_for: str, err: ImportError) -> ImportError:
    """The error of a lazy ``from sensevoice import ...`` that failed. FunASR loads this file alone, by path; the
    package ships beside it (FunASR puts this file's folder on sys.path, and pip installs both)."""
    return ImportError(f"{needed_for} needs the sensevoice package that ships beside model.py "
                       f"(pip install it from the repository): {err}")


# ----------------------------------------------------------------------------------------------- model
@tables.register("model_classes", "SenseVoiceSmall")
class SenseVoiceSmall(nn.Module):
    """SenseVoiceSmall for FunASR: prompt + SAN-M encoder + CTC; ``inference`` returns rich transcripts."""

    def __init__(self, encoder: str = "SenseVoiceEncoderSmall", encoder_conf: Mapping[str, Any] | None = None,
                 input_size: int = 560, vocab_size: int = -1, specaug: str | None = None,
                 specaug_conf: Mapping[str, Any] | None = None, ignore_id: int = -1, blank_id: int = 0,
                 length_normalized_loss: bool = False, lsm_weight: float = 0.0, **kwargs: Any):
        super().__init__()
        encoder_class = tables.encoder_classes.get(encoder)
        if encoder_class is not SenseVoiceEncoderSmall:
            raise ValueError(f"encoder={encoder!r} resolves to {encoder_class}; this model.py needs its own "
                             "SenseVoiceEncoderSmall")
        self.dims = ModelDimensions.from_encoder_conf(encoder_conf or {}, input_size, vocab_size)
        self.specaug = tables.specaug_classes[specaug](**(specaug_conf or {})) if specaug else None
        self.embed = nn.Embedding(N_PROMPT_ROWS, self.dims.n_input)  # prompt queries, in feature space
        self.encoder = SenseVoiceEncoderSmall(self.dims)
        self.ctc = CTCHead(self.dims.d_model, self.dims.n_vocab)
        self.blank_id = blank_id
        self.ignore_id = ignore_id
        self.length_normalized_loss = length_normalized_loss
        self.lsm_weight = lsm_weight
        self._backend = None  # another backend than torch fp32, built on first use (scorer)
        self._outputs_started: set[str] = set()  # output_dir files this model has written (then it appends)
        tokenizer = kwargs.get("tokenizer")
        self.special = SpecialTokens.from_pieces(tokenizer_pieces(tokenizer)) if tokenizer is not None else None
        if kwargs.get("init_param"):  # FunASR loads it next, leniently: refuse a file that is not plain data first
            read_checkpoint(str(kwargs["init_param"]))

    # ---- pure math ------------------------------------------------------------------------------------------
    def build_prompt(self, language_rows: Tensor, textnorm_rows: Tensor) -> Tensor:
        """(B,) language rows, (B,) text-norm rows -> (B, N_PROMPT, n_input) prompt frames."""
        B = language_rows.shape[0]
        event_emotion = torch.tensor([PROMPT_ROWS["event"], PROMPT_ROWS["emotion"]], device=language_rows.device)
        rows = torch.cat([language_rows[:, None], event_emotion.expand(B, 2), textnorm_rows[:, None]], dim=1)
        return self.embed(rows)  # (B, 4, n_input)

    def encode(self, feats: Tensor, lens: Tensor, language_rows: Tensor, textnorm_rows: Tensor
               ) -> tuple[Tensor, Tensor]:
        """(B, T, n_input) CMVN'd LFR features -> (B, 4 + T, d_model) encoder states and their lengths."""
        if self.specaug is not None and self.training:
            feats, lens = self.specaug(feats, lens)
        prompt = self.build_prompt(language_rows, textnorm_rows).to(feats.dtype)
        x = torch.cat([prompt, feats], dim=1)  # (B, 4 + T, n_input)
        return self.encoder(x, lens + N_PROMPT)

    def ctc_logprobs(self, feats: Tensor, lens: Tensor, language: str, textnorm: str) -> tuple[Tensor, Tensor]:
        """Inference forward: (B, 4 + T, V) CTC log-probs and (B,) lengths for one language/text-norm choice."""
        weight = self.embed.weight
        feats, lens = feats.to(device=weight.device, dtype=weight.dtype), lens.to(weight.device)
        B = feats.shape[0]
        language_rows = torch.full((B,), PROMPT_ROWS[language], dtype=torch.long, device=feats.device)
        textnorm_rows = torch.full((B,), PROMPT_ROWS[textnorm], dtype=torch.long, device=feats.device)
        x, out_lens = self.encode(feats, lens, language_rows, textnorm_rows)
        return self.ctc(x).float().log_softmax(dim=-1), out_lens

    # ---- training -------------------------------------------------------------------------------------------
    def forward(self, speech: Tensor, speech_lengths: Tensor, text: Tensor, text_lengths: Tensor, **kwargs: Any
                ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Training loss, as FunASR's trainer calls it: (loss, stats, weight), from sensevoice/training/objective.py.
        text: (B, L) = [language, emotion, event, itn] tag ids followed by the transcript ids, padded with ignore_id."""
        try:
            from sensevoice.training import objective  # lazily: model.py alone stops at the CTC scores
        except ImportError as err:
            raise missing_package("training", err) from err
        special = self._special(kwargs.get("tokenizer"))
        return objective.training_loss(self, speech, speech_lengths, text, text_lengths, special)

    def _special(self, tokenizer: Any) -> SpecialTokens:
        if tokenizer is not None and self.special is None:
            self.special = SpecialTokens.from_pieces(tokenizer_pieces(tokenizer))
        if self.special is None:
            raise ValueError("special token ids are unknown: pass tokenizer= (FunASR does this from config.yaml)")
        return self.special

    # ---- inference (the FunASR entry point) -------------------------------------------------------------------
    @torch.no_grad()
    def inference(self, data_in: Any, data_lengths: Any = None, key: Any = None, tokenizer: Any = None,
                  frontend: Any = None, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Transcribe a batch; returns FunASR's ``([{"key", "text", ...}], meta)``. data_in: one item or a list of
        paths / URLs / bytes / arrays or tensors at ``fs`` Hz (or, with ``data_type="fbank"``, a (B, T, n_input)
        feature tensor with ``data_lengths``)."""
        options = DecodingOptions.from_kwargs(kwargs)
        runtime = BackendOptions.from_kwargs(kwargs)
        if tokenizer is None:
            raise ValueError("inference needs tokenizer= (AutoModel and from_pretrained pass it)")
        special = self._special(tokenizer)
        try:  # lazily: model.py alone stops at the CTC scores (ctc_logprobs); results are the package's
            from sensevoice import transcripts
        except ImportError as err:
            raise missing_package("decoding CTC scores into transcripts", err) from err
        if kwargs.get("data_type") == "fbank":
            feats = data_in if data_in.dim() == 3 else data_in[None]
            lens = torch.as_tensor(data_lengths if data_lengths is not None else [feats.shape[1]]).reshape(-1)
            keys = transcripts.result_keys(key, feats.shape[0])
        else:
            items = list(data_in) if isinstance(data_in, (list, tuple)) else [data_in]
            keys = transcripts.result_keys(key, len(items))
            feats, lens = self.extract_features(items, keys, frontend, options.fs)
        scores, out_lens = self.scorer(runtime, kwargs)(feats, lens, options.language, options.textnorm)
        results = transcripts.decode_scores(scores, out_lens, keys, options, special, tokenizer)
        transcripts.correct_clean_text(results, kwargs)
        if kwargs.get("output_dir") is not None:
            transcripts.write_1best(kwargs["output_dir"], results, self._outputs_started)
        if kwargs.get("vad_model") is not None:  # these are VAD segments, which FunASR merges after this call
            results = [transcripts.mergeable_segment(result) for result in results]
        audio_s = float(lens.sum()) * ENC_FRAME_MS / 1000
        return results, {"batch_data_time": audio_s}

    def scorer(self, runtime: BackendOptions, kwargs: Mapping[str, Any]):
        """``(feats, lens, language, textnorm) -> (scores, lens)`` of the chosen backend: this module's PyTorch fp32
        path, or one of the package's, built once, on first use (FunASR passes ``model_path`` and ``ncpu``)."""
        if self._backend is None:
            if runtime == BackendOptions():
                return self.ctc_logprobs
            try:
                from sensevoice import backends
            except ImportError as err:
                raise missing_package(f"backend={runtime.backend!r} precision={runtime.precision!r}", err) from err
            self._backend = backends.for_model(self, runtime, kwargs.get("model_path"), kwargs.get("ncpu"))
        elif self._backend.options != runtime:
            raise ValueError(f"this model already runs as {self._backend.options.name}; build another for "
                             f"{runtime.name}")
        return self._backend.ctc_scores

    def __getstate__(self) -> dict[str, Any]:
        """Copies (AutoModel.export deep-copies the model) and pickles leave out an ONNX Runtime backend, whose
        session cannot be copied; it is rebuilt on first use. A torch backend converted the model itself: kept."""
        state = self.__dict__.copy()
        if self._backend is not None and self._backend.options.backend != "torch":
            state["_backend"] = None
        return state

    def export(self, **kwargs: Any) -> tuple:
        """FunASR's ``AutoModel.export(type="onnx", quantize=...)``, by sensevoice/export.py: no module to trace."""
        try:
            from sensevoice import export
        except ImportError as err:
            raise missing_package("export", err) from err
        export.for_automodel(self, kwargs, sys._getframe(1))
        return ()

    @staticmethod
    def extract_features(items: Sequence[Any], keys: Sequence[str], frontend: Any, fs: int) -> tuple[Tensor, Tensor]:
        """Audio items -> (B, T, n_input) padded features and (B,) lengths, each item on its own."""
        if frontend is None:
            raise ValueError("inference on audio needs frontend= (AutoModel and from_pretrained pass it)")
        try:  # the one audio loader (paths, URLs, bytes, arrays and tensors at fs Hz)
            from sensevoice import audio
        except ImportError as err:
            raise missing_package("reading audio", err) from err
        if getattr(frontend, "dither", 0.0):  # FunASR's WavFrontend adds dither noise; inference is deterministic
            frontend = copy.copy(frontend)
            frontend.dither = 0.0
        feats = []
        for item, key in zip(items, keys):
            wave = audio.load_audio(item, key, fs)  # (N,) float32 mono at 16 kHz
            f, _ = frontend(wave[None], torch.tensor([wave.numel()]))
            feats.append(f[0].float())
        lens = torch.tensor([f.shape[0] for f in feats])
        return nn.utils.rnn.pad_sequence(feats, batch_first=True), lens

    # ---- loading --------------------------------------------------------------------------------------------
    @staticmethod
    def from_pretrained(model: str | None = None, **kwargs: Any) -> tuple["SenseVoiceSmall", dict[str, Any]]:
        """Build from a model directory (as in the model card); refuses to run on missing/mismatched weights."""
        try:  # FunASR's loading is lenient (random weights for missing keys); the package's is strict
            from sensevoice import checkpoint
        except ImportError as err:
            raise missing_package("from_pretrained", err) from err
        return checkpoint.from_pretrained(SenseVoiceSmall, model, kwargs)


class CheckpointError(ValueError):
    """A checkpoint file that is not plain data of this model; the one-line message names the file."""


def read_checkpoint(path: str) -> tuple[dict[str, Tensor], bool]:
    """A checkpoint's state dict, unpickled as data only (``weights_only``: tensors, numbers, strings, containers),
    and whether it is memory-mapped. Accepts a bare state dict (the official release, ours) and trainer files that
    hold one under ``state_dict`` (FunASR's trainer) or ``model`` (sensevoice.training). A file that would run code
    when unpickled, or is not a checkpoint at all, is a CheckpointError and nothing in it runs."""
    mapped = zipfile.is_zipfile(path)  # legacy (non-zip) checkpoints cannot be memory-mapped
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except OSError:
        raise
    except Exception as err:  # whatever torch.load cannot read as data: empty, random bytes, pickled objects
        raise CheckpointError(f"{path}: {_checkpoint_problem(path, err)}; nothing in it was run (a model.pt holds "
                              "tensors only: torch.save(model.state_dict(), path))") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    elif isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict (parameter name -> tensor)")
    odd = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if odd:
        raise CheckpointError(f"{path}: not a state dict, {len(odd)} entries are not name -> tensor: {odd[:5]}")
    return {k.removeprefix("module."): v for k, v in state.items()}, mapped


def _checkpoint_problem(path: str, err: Exception) -> str:
    """Why torch.load refused a file, in one line."""
    if os.path.getsize(path) == 0:
        return "the file is empty (0 bytes)"
    if isinstance(err, pickle.UnpicklingError) and "weights_only" in str(err):
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith(("Trying to load", "Unsupported"))), lines[-1])
        return f"not a checkpoint of plain data, torch.load(weights_only=True) refused it ({detail})"
    return f"not a PyTorch checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no data'})"
