"""SenseVoiceSmall: non-autoregressive multilingual speech understanding, as a FunASR model plugin.

Paper: "FunAudioLLM: Voice Understanding and Generation Foundation Models" (https://arxiv.org/abs/2407.04051).
Pipeline: 80-mel fbank -> LFR (7 frames, stride 6) -> CMVN -> four prompt frames (language, event, emotion,
text-norm) prepended -> SAN-M encoder -> CTC over the sentencepiece vocabulary. The first four decoded tokens
are the rich tags, e.g. ``<|en|><|NEUTRAL|><|Speech|><|woitn|>hello``.

FunASR imports this file by path (``remote_code="./model.py"``), so it depends on stdlib, numpy, torch and
funasr only, and on its own builds the model, refuses a model.pt that is not plain data, and decodes arrays and
tensors greedily in PyTorch fp32 (tests/test_model_build.py keeps it so). What else it does is the ``sensevoice``
package's, which ships beside it (FunASR puts this file's folder on sys.path); each is imported lazily, inside the
function that needs it:
``read_audio`` imports ``sensevoice.audio`` for an input that is a path, URL or bytes (arrays need nothing);
``decode_scores`` imports ``sensevoice.decoding`` for beam search, hotwords, restrict_language and tag_topk, and
``DecodingOptions.from_kwargs`` for FunASR's ``hotword=`` (a file or a string); ``describe_path`` imports
``sensevoice.timestamps`` for ``output_timestamp=True`` (word grouping, word probabilities);
``SenseVoiceSmall.scorer`` imports ``sensevoice.backends`` for a backend other than PyTorch fp32;
``SenseVoiceSmall.export`` imports ``sensevoice.export`` for FunASR's ``AutoModel.export``; and
``SenseVoiceSmall.from_pretrained`` imports ``sensevoice.checkpoint`` for its strict, memory-mapped loading.
tests/test_layers.py lists them (LAZY_OPTIONAL).
Checkpoint keys and shapes follow the official release, so its ``model.pt`` loads unmodified.
"""

from __future__ import annotations

import copy
import logging
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

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- constants
SAMPLE_RATE = 16000  # Hz, what the frontend expects
FRAME_SHIFT_MS = 10  # fbank hop
LFR_STRIDE = 6  # low-frame-rate stacking stride (lfr_n)
ENC_FRAME_MS = FRAME_SHIFT_MS * LFR_STRIDE  # 60 ms per encoder frame
MIN_SAMPLES = 400  # one 25 ms analysis window; shorter audio is zero-padded to it
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
LEADING_TAGS_RE = re.compile(r"(?:\s*<\|[^|]*\|>)*")


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

    def prompt_row(self, token_id: int) -> int:
        """Prompt-embedding row for a language or text-norm target token (training)."""
        for name, i in (*self.language.items(), *self.textnorm.items()):
            if i == token_id:
                return PROMPT_ROWS[name]
        raise ValueError(f"token id {token_id} is not a language or text-norm tag")


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


def _check_count(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} must be an integer " + (f"in [{low}, {high}]" if high is not None
                                                                     else f">= {low}"))
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
    """A field of DecodingOptions: its default, one line of help, and how the front doors take it. Every door
    derives its flags and fields from these (sensevoice/optionspec.py; the CLI reads them from this file's source,
    without importing torch, so ``spec`` holds literals or names of this file's constants). ``spec`` keys:

    range=(low, high)          numbers: the accepted interval (high None: no upper bound)
    choices=, aliases=         strings: the accepted values, and other spellings of them ({alias: value})
    as_flag=(on, off)          a string the doors take as a yes/no flag (textnorm: ``--itn``, ``use_itn``)
    names={door: name}         a door's own spelling ("cli": "--itn", "form": HTTP form, "stream": WebSocket);
                               default: the field name (``--field-name`` on the command line)
    metavar=                   the command line's placeholder for the value
    per_request=True           the service takes it with each request only (no server-wide flag)
    doors=False                each door sets it from its input or output format: no flag or field of its own
    """
    return field(default=default, metadata={"help": help, **spec})


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode: the one options type of every front door (CLI, service, batch, AutoModel kwargs), validated
    on construction from each field's declaration. ``from_kwargs`` reads FunASR's spellings (``use_itn``,
    ``text_norm``, ``hotword``); other runtime kwargs of FunASR pass through untouched. A new option is one
    field here: every door gets it (tests/test_options.py adds one to a copy of this type)."""

    language: str = option("auto", "forced language prompt (auto: detected per segment)", choices=LANGUAGES,
                           aliases=LANGUAGE_ALIASES, metavar="LANG", per_request=True)
    textnorm: str = option("woitn", "inverse text normalisation: digits and punctuation", choices=TEXTNORMS,
                           as_flag=("withitn", "woitn"), names={"cli": "--itn", "form": "use_itn", "stream": "itn"},
                           per_request=True)
    ban_emo_unk: bool = option(False, "never output <|EMO_UNKNOWN|>: every speech segment gets one of the emotions")
    # Subtracted from the blank's score on every speech frame before the greedy search (sherpa-onnx's
    # blank_penalty): an under-confident model drops short words, and a penalty trades those deletions for
    # insertions. 0 is plain greedy CTC, token for token what FunASR's own SenseVoiceSmall decodes.
    blank_penalty: float = option(0.0, "subtract X from the CTC blank's score before greedy decoding: X > 0 trades "
                                  "dropped short words for insertions (0: plain greedy CTC, as FunASR decodes)",
                                  range=(0, None), metavar="X")
    output_timestamp: bool = option(False, "add per-token and per-word [start_ms, end_ms] (and their probabilities)",
                                    doors=False)
    fs: int = option(SAMPLE_RATE, "sample rate of array/tensor inputs in Hz (files carry their own)",
                     range=(1, None), doors=False)
    # The options below decode with sensevoice/decoding.py (imported only when one of them is set).
    beam_size: int = option(1, "CTC prefix beam search with N prefixes (1: greedy, as FunASR decodes; "
                            "hotwords search with at least 4, HOTWORD_BEAM)", range=(1, MAX_BEAM), metavar="N")
    # Contextual biasing: ((phrase, weight or None for hotword_weight), ...); from_kwargs also reads FunASR's
    # ``hotword`` (space-separated words, or a file with one phrase per line, optionally followed by a weight).
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
        """Whether decoding needs sensevoice/decoding.py (anything beyond FunASR's greedy search)."""
        return self.beam_size > 1 or bool(self.hotwords) or self.restrict_language or self.tag_topk > 0

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "DecodingOptions":
        """From FunASR-style keyword arguments: every field by its name, ``use_itn`` (bool) or
        ``textnorm``/``text_norm``, and FunASR's ``hotword``."""
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
            from sensevoice import decoding  # hotwords decode there too; this reads FunASR's file or string form

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


# ----------------------------------------------------------------------------------------------- decoding
def apply_decoding_options(scores: Tensor, options: DecodingOptions, special: SpecialTokens) -> Tensor:
    """(B, 4 + T, V) CTC log-probs or raw logits (greedy search picks the same from either), changed in place
    by the options that reshape them: the emotion ban, and the blank penalty on speech frames (the four tag
    frames are left alone)."""
    if options.ban_emo_unk:
        scores[:, :, special.emotion_unknown] = -math.inf
    if options.blank_penalty:
        scores[:, N_PROMPT:, special.blank] -= options.blank_penalty
    return scores


def ctc_greedy(logp: Tensor, lens: Tensor, blank: int) -> list[list[tuple[int, int, int]]]:
    """Best path per item: [(token, first_frame, end_frame)], repeats merged and blanks dropped."""
    best = logp.argmax(dim=-1).cpu()  # (B, T)
    paths = []
    for row, n in zip(best, lens.tolist()):
        row = row[:n]
        tokens, counts = torch.unique_consecutive(row, return_counts=True)
        ends = counts.cumsum(0)
        paths.append([(t, e - c, e) for t, c, e in zip(tokens.tolist(), counts.tolist(), ends.tolist())
                      if t != blank])
    return paths


def split_rich_text(text: str) -> dict[str, Any]:
    """Structured view of rich text: the leading tags sorted into language/emotion/event/itn + clean text.

    A missing tag is "" (not None): FunASR's VAD path merges segment results with ``+=``."""
    fields: dict[str, Any] = {"language": "", "emotion": "", "event": "", "itn": ""}
    events = []
    leading = LEADING_TAGS_RE.match(text).group(0)  # tags inside the transcript are not the utterance's labels
    for name in TAG_RE.findall(leading):
        if name in LANGUAGES or name in ("zh/en", "en/zh"):
            fields["language"] = fields["language"] or name
        elif name in EMOTIONS:
            fields["emotion"] = fields["emotion"] or name
        elif name in TEXTNORMS:
            fields["itn"] = fields["itn"] or name
        else:
            events.append(name)
    fields["event"] = events[0] if events else ""
    fields["clean_text"] = re.sub(r" {2,}", " ", TAG_RE.sub("", text)).strip()
    return fields


def path_confidence(scores: Tensor, lse: Tensor, blank_logp: np.ndarray, path: list[tuple[int, int, int]], n: int
                    ) -> tuple[list[float], float]:
    """Confidence of one decoded path over frames [0, n): each token's posterior (the highest frame posterior of its
    piece over the frames it spans) and ``avg_logprob``, the mean log-posterior of the path's label (its piece or
    the blank) over the text frames. scores: (4 + T, V) as the search saw them (only the blank's column may have
    been changed), lse: (4 + T,) their log-normaliser, blank_logp: (4 + T,) the blank's unchanged log-posterior."""
    frames = [f for _, s, e in path for f in range(s, e)]
    labels = [t for t, s, e in path for _ in range(s, e)]
    logp = (scores[frames, labels] - lse[frames]).cpu().numpy() if frames else np.zeros(0)  # (frames,)
    bounds = np.cumsum([0] + [e - s for _, s, e in path])
    token_logp = [float(logp[a:b].max()) for a, b in zip(bounds[:-1], bounds[1:])]
    text = [(f, x) for f, x in zip(frames, logp.tolist()) if N_PROMPT <= f < n]
    blank_sum = float(blank_logp[N_PROMPT:n].sum()) - float(sum(blank_logp[f] for f, _ in text))
    avg = (blank_sum + sum(x for _, x in text)) / max(n - N_PROMPT, 1)
    return [math.exp(x) for x in token_logp], avg


def no_speech_prob(scores: Tensor, special: SpecialTokens) -> float:
    """P(<|nospeech|>) on the language frame, the softmax restricted to the language tags."""
    ids = list(special.language.values())
    return float(scores[0, ids].float().softmax(-1)[ids.index(special.language["nospeech"])])


def describe_path(path: list[tuple[int, int, int]], key: str, n_speech_frames: int, special: SpecialTokens,
                  tokenizer: Any, output_timestamp: bool, probs: Sequence[float] | None = None) -> dict[str, Any]:
    """One decoded path -> FunASR result: rich ``text`` plus structured fields (and timestamps, with the
    tokens' and words' probabilities when ``probs`` gives each path token's: a word's is its pieces' minimum)."""
    text = tokenizer.decode([t for t, _, _ in path])
    result = {"key": key, "text": text, **split_rich_text(text)}
    if output_timestamp:
        from sensevoice import timestamps  # word grouping and times, only when asked for

        result.update(timestamps.timestamp_fields(path, n_speech_frames, special, probs))
    return result


def decode_scores(scores: Tensor, lens: Tensor, keys: Sequence[str], options: DecodingOptions,
                  special: SpecialTokens, tokenizer: Any) -> list[dict[str, Any]]:
    """(B, 4 + T, V) CTC log-probs or raw logits of any backend, (B,) lengths -> one result per item, with its
    confidence (``avg_logprob``, ``no_speech_prob``; per token and word with timestamps). The scores are changed in
    place by the decoding options. Greedy unless the options ask for more (sensevoice/decoding.py)."""
    lse = scores.logsumexp(dim=-1)  # (B, 4 + T): confidences are posteriors, from log-probs or logits alike
    blank_logp = (scores[:, :, special.blank] - lse).float().cpu().numpy()  # (B, 4 + T), before a blank penalty
    tag_probs: list[dict[str, Any]] = [{} for _ in keys]
    if options.searches:
        from sensevoice import decoding  # beam search, hotwords, script restriction, tag probabilities

        paths, tag_probs = decoding.search(scores, lens, options, special, tokenizer)
    else:
        paths = ctc_greedy(apply_decoding_options(scores, options, special), lens, special.blank)
    results = []
    for b, (path, key, n) in enumerate(zip(paths, keys, lens.tolist())):
        probs, avg = path_confidence(scores[b], lse[b], blank_logp[b], path, n)
        result = describe_path(path, key, n - N_PROMPT, special, tokenizer, options.output_timestamp, probs)
        result.update(avg_logprob=round(avg, 4), no_speech_prob=round(no_speech_prob(scores[b], special), 4),
                      **tag_probs[b])
        results.append(result)
    return results


# Per-utterance fields that FunASR's VAD path (AutoModel.inference_with_vad) would corrupt: it merges the results of
# a file's segments key by key, joining keys with "text" in their name with a space, shifting the [start, end] spans
# of keys that start with "timestamp" by the segment's start, and adding up everything else with ``+=`` (strings
# concatenated, numbers summed). As one-entry lists they merge into one entry per segment.
PER_SEGMENT_FIELDS = ("language", "emotion", "event", "itn", "avg_logprob", "no_speech_prob", "tag_probs")


def mergeable_segment(result: Mapping[str, Any]) -> dict[str, Any]:
    """One VAD segment's result in the shape FunASR's merge keeps right: PER_SEGMENT_FIELDS as one-entry lists, and
    ``token_timestamp`` as ``timestamp_token`` (a name FunASR shifts onto the file's timeline, as ``timestamp``)."""
    out = {name: [value] if name in PER_SEGMENT_FIELDS else value for name, value in result.items()}
    if "token_timestamp" in out:
        out["timestamp_token"] = out.pop("token_timestamp")
    return out


def correct_clean_text(results: Sequence[dict[str, Any]], kwargs: Mapping[str, Any]) -> None:
    """FunASR's ``postprocess_hotwords`` corrects ``text`` after inference; the same correction of ``clean_text``."""
    if kwargs.get("postprocess_hotwords") is None and not kwargs.get("postprocess_hotword_file"):
        return
    from funasr.utils.postprocess_hotwords import apply_postprocess_hotwords_to_results

    corrected = apply_postprocess_hotwords_to_results([{"text": r["clean_text"]} for r in results], kwargs)
    for result, fixed in zip(results, corrected):
        result["clean_text"] = fixed["text"]


# ----------------------------------------------------------------------------------------------- audio input
class AudioInputError(ValueError):
    """One input item could not be turned into 16 kHz mono audio; the message names the item."""


def waveform(samples: np.ndarray | Tensor, fs: int, name: str) -> Tensor:
    """Samples at ``fs`` Hz, (N,) or (C, N) / (N, C) float or int16/int32 -> (N,) float32 mono at 16 kHz, at
    least MIN_SAMPLES long. Arrays and tensors come here directly; sensevoice/audio.py decodes files, URLs and
    bytes into samples first (the one loader: every door calls it, ``inference`` for anything but arrays)."""
    x = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else samples
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float32) / 2147483648.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise AudioInputError(f"{name}: array dtype {x.dtype} is not audio; use float32 in [-1, 1] or int16")
    if x.ndim == 2:  # (C, N) or (N, C): channels are the short axis
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1)
    elif x.ndim != 1:
        raise AudioInputError(f"{name}: audio array has shape {x.shape}; expected (samples,) or (channels, samples)")
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise AudioInputError(f"{name}: audio is empty (0 samples)")
    if not np.isfinite(x).all():
        raise AudioInputError(f"{name}: audio contains NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(x))
    if fs != SAMPLE_RATE:
        import torchaudio.functional  # only needed for resampling

        wave = torchaudio.functional.resample(wave, fs, SAMPLE_RATE)
    if wave.numel() < MIN_SAMPLES:
        wave = F.pad(wave, (0, MIN_SAMPLES - wave.numel()))
    return wave


def read_audio(item: Any, name: str) -> Tensor:
    """A path, URL or bytes -> (N,) float32 mono at 16 kHz, by the package's loader (sensevoice/audio.py), imported
    here because FunASR puts this file's folder, where the package ships, on sys.path; arrays need no package."""
    try:
        from sensevoice import audio
    except ImportError as err:
        raise ImportError(f"{name}: reading audio files, URLs and bytes needs the sensevoice package that ships "
                          f"beside model.py (a 16 kHz array or tensor does not): {err}") from err
    return audio.load_audio(item, name)


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
        """Training loss: CTC on the text frames + label-smoothed CE on the four tag frames.

        text: (B, L) = [language, emotion, event, itn] tag ids followed by the transcript ids, padded with
        ignore_id. Returns (loss, stats, weight) as FunASR's trainer expects.
        """
        special = self._special(kwargs.get("tokenizer"))
        speech_lengths = speech_lengths.reshape(speech_lengths.shape[0], -1)[:, 0]
        text_lengths = text_lengths.reshape(text_lengths.shape[0], -1)[:, 0]
        language_rows = torch.tensor([special.prompt_row(int(t)) for t in text[:, 0]], device=speech.device)
        if self.training:  # language prompt dropout: 20 % of utterances learn to identify the language
            language_rows = language_rows.masked_fill(torch.rand(len(language_rows), device=speech.device) < 0.2,
                                                      PROMPT_ROWS["auto"])
        textnorm_rows = torch.tensor([special.prompt_row(int(t)) for t in text[:, 3]], device=speech.device)
        x, out_lens = self.encode(speech, speech_lengths, language_rows, textnorm_rows)
        logits = self.ctc(x).float()  # (B, 4 + T, V)

        targets = text[:, N_PROMPT:]
        target_lens = text_lengths - N_PROMPT
        logp = logits[:, N_PROMPT:].log_softmax(dim=-1).transpose(0, 1)  # (T, B, V)
        loss_ctc = F.ctc_loss(logp, targets.clamp(min=0), out_lens - N_PROMPT, target_lens, blank=special.blank,
                              reduction="sum", zero_infinity=True) / x.shape[0]
        tag_logits = logits[:, :N_PROMPT]  # (B, 4, V)
        loss_rich = F.cross_entropy(tag_logits.reshape(-1, tag_logits.shape[-1]), text[:, :N_PROMPT].reshape(-1),
                                    ignore_index=self.ignore_id, label_smoothing=self.lsm_weight, reduction="sum")
        loss_rich = loss_rich / (N_PROMPT * x.shape[0] if self.length_normalized_loss else x.shape[0])
        acc_rich = (tag_logits.argmax(-1) == text[:, :N_PROMPT]).float().mean()
        loss = loss_ctc + loss_rich
        weight = (text_lengths + 1).sum() if self.length_normalized_loss else torch.tensor(x.shape[0])
        stats = {"loss": loss.detach(), "loss_ctc": loss_ctc.detach(), "loss_rich": loss_rich.detach(),
                 "acc_rich": acc_rich.detach(), "batch_size": torch.tensor(float(x.shape[0]))}
        return loss, stats, weight.to(loss.device)

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
        """Transcribe a batch; returns FunASR's ``([{"key", "text", ...}], meta)``.

        data_in: one item or a list of paths / URLs / bytes / 16 kHz arrays or tensors (or, with
        ``data_type="fbank"``, a (B, T, n_input) feature tensor with ``data_lengths``).
        """
        options = DecodingOptions.from_kwargs(kwargs)
        runtime = BackendOptions.from_kwargs(kwargs)
        if tokenizer is None:
            raise ValueError("inference needs tokenizer= (AutoModel and from_pretrained pass it)")
        special = self._special(tokenizer)
        if kwargs.get("data_type") == "fbank":
            feats = data_in if data_in.dim() == 3 else data_in[None]
            lens = torch.as_tensor(data_lengths if data_lengths is not None else [feats.shape[1]]).reshape(-1)
            keys = self._keys(key, feats.shape[0])
        else:
            items = list(data_in) if isinstance(data_in, (list, tuple)) else [data_in]
            keys = self._keys(key, len(items))
            feats, lens = self.extract_features(items, keys, frontend, options.fs)
        scores, out_lens = self.scorer(runtime, kwargs)(feats, lens, options.language, options.textnorm)
        results = decode_scores(scores, out_lens, keys, options, special, tokenizer)
        correct_clean_text(results, kwargs)
        if kwargs.get("output_dir") is not None:
            self._write_1best(kwargs["output_dir"], results)
        if kwargs.get("vad_model") is not None:  # these are VAD segments, which FunASR merges after this call
            results = [mergeable_segment(result) for result in results]
        audio_s = float(lens.sum()) * ENC_FRAME_MS / 1000
        return results, {"batch_data_time": audio_s}

    def _write_1best(self, output_dir: str, results: Sequence[Mapping[str, Any]]) -> None:
        """``output_dir``, as FunASR's built-in class writes it: a "key text" line per result in
        ``output_dir/1best_recog/text``, started afresh by this model's first write there, then appended to."""
        path = os.path.join(output_dir, "1best_recog", "text")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a" if path in self._outputs_started else "w", encoding="utf-8") as out:
            out.writelines(f"{result['key']} {result['text']}\n" for result in results)
        self._outputs_started.add(path)

    def scorer(self, runtime: BackendOptions, kwargs: Mapping[str, Any]):
        """``(feats, lens, language, textnorm) -> (scores, lens)`` of the chosen backend. The default is this
        module's PyTorch fp32 path; the others (ONNX Runtime, int8, bf16) live in the ``sensevoice`` package
        beside this file and are built once, on first use (FunASR passes ``model_path`` and ``ncpu``)."""
        if self._backend is None:
            if runtime == BackendOptions():
                return self.ctc_logprobs
            try:
                from sensevoice import backends
            except ImportError as err:
                raise ImportError(f"backend={runtime.backend!r} precision={runtime.precision!r} needs the sensevoice "
                                  f"package that ships beside model.py (pip install it from the repository): {err}")
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
        """FunASR's ``AutoModel.export(type="onnx", quantize=...)``: writes ``model.onnx`` (``model_quant.onnx``
        with quantize) with the ``sensevoice`` package beside this file, and leaves FunASR no module to trace."""
        try:
            from sensevoice import export
        except ImportError as err:
            raise ImportError(f"export needs the sensevoice package that ships beside model.py: {err}") from err
        export.for_automodel(self, kwargs, sys._getframe(1))
        return ()

    @staticmethod
    def _keys(key: Any, n: int) -> list[str]:
        if key is None:
            return [f"utt{i}" for i in range(n)]
        keys = [key] if isinstance(key, str) else list(key)
        if keys and all(isinstance(k, (list, tuple)) for k in keys):
            # generate(key=[...]): FunASR hands each batch the whole list once per item, not the batch's own keys
            listed = list(keys[0])
            if len(listed) != n:
                raise ValueError(f"key={listed!r} names {len(listed)} inputs, but FunASR passes the model {n} at a "
                                 f"time without their positions: pass batch_size={len(listed)} (or more) with it")
            keys = listed
        if len(keys) == 1 and n > 1:  # FunASR passes one key for the segments of one file
            keys = [f"{keys[0]}_{i}" for i in range(n)]
        if len(keys) != n:
            raise ValueError(f"got {len(keys)} keys for {n} inputs")
        return [str(k) for k in keys]

    @staticmethod
    def extract_features(items: Sequence[Any], keys: Sequence[str], frontend: Any, fs: int) -> tuple[Tensor, Tensor]:
        """Audio items -> (B, T, n_input) padded features and (B,) lengths, each item on its own."""
        if frontend is None:
            raise ValueError("inference on audio needs frontend= (AutoModel and from_pretrained pass it)")
        if getattr(frontend, "dither", 0.0):
            # Inference is deterministic: FunASR's WavFrontend adds dither noise by default.
            frontend = copy.copy(frontend)
            frontend.dither = 0.0
        feats = []
        for item, key in zip(items, keys):
            wave = waveform(item, fs, key) if isinstance(item, (np.ndarray, Tensor)) else read_audio(item, key)
            f, _ = frontend(wave[None], torch.tensor([wave.numel()]))
            feats.append(f[0].float())
        lens = torch.tensor([f.shape[0] for f in feats])
        return nn.utils.rnn.pad_sequence(feats, batch_first=True), lens

    # ---- loading --------------------------------------------------------------------------------------------
    @staticmethod
    def from_pretrained(model: str | None = None, **kwargs: Any) -> tuple["SenseVoiceSmall", dict[str, Any]]:
        """Build from a model directory (as in the model card); refuses to run on missing/mismatched weights."""
        from funasr import AutoModel

        if model is None or not os.path.isdir(model):
            raise FileNotFoundError(f"model={model!r} is not a model directory")
        weights = os.path.join(model, "model.pt")
        if kwargs.get("init_param") is None and not os.path.isfile(weights):
            raise FileNotFoundError(f"{weights} is missing: refusing to run SenseVoiceSmall on random weights")
        kwargs.setdefault("disable_update", True)
        kwargs.setdefault("device", "cpu")
        # FunASR's default of 4 threads oversubscribes small machines, which slows batches down many times.
        kwargs.setdefault("ncpu", min(4, os.cpu_count() or 1))
        built, kwargs = AutoModel.build_model(model=model, trust_remote_code=True, **kwargs)
        if not isinstance(built, SenseVoiceSmall):
            raise TypeError(f"FunASR built {type(built)} instead of {__name__}.SenseVoiceSmall")
        try:  # strict, memory-mapped loading (the package's, as every door of ours loads); FunASR's was lenient
            from sensevoice import checkpoint
        except ImportError as err:
            raise ImportError(f"from_pretrained needs the sensevoice package that ships beside model.py: {err}"
                              ) from err
        checkpoint.load_checkpoint(built, kwargs.get("init_param") or weights)
        return built, kwargs


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
