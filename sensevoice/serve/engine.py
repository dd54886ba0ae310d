"""The seam between the HTTP service and the model: decoded uploads in, file results out.

The service drives a ``Transcriber``: ``prepare`` per upload on the request's thread, ``transcribe_batch`` from the
batcher's one worker thread. ``ModelTranscriber`` is the real one: a model directory loaded through FunASR (plus
the offline FSMN-VAD with ``use_vad``) whose ``transcribe_batch`` decodes the uploads of several requests in as
few padded model calls as the batch budget allows. Results have the shape ``sensevoice.transcribe`` gives the CLI
(``key``, ``duration_ms``, rich ``text``, ``clean_text``, ``segments``), so the subtitle writers of
``sensevoice.subtitles`` apply to both.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

import model as sv
from sensevoice import modeldir, transcribe, vad

SAMPLES_PER_MS = sv.SAMPLE_RATE // 1000  # 16
LONG_AUDIO_MS = vad.MAX_SEGMENT_MS  # with VAD, longer uploads are cut at pauses (30 s, the model card's setting)
MAX_PAD_RATIO = 1.3  # in one model call the longest piece is at most 1.3x the shortest: padding wastes < 23 %


def plan_calls(durations_ms: Sequence[int], budget_s: float) -> list[list[int]]:
    """Piece indices grouped into model calls, shortest first. A call grows while its padded size (longest x
    count) stays within ``budget_s`` and its longest piece is at most MAX_PAD_RATIO x its shortest: requests of
    unrelated lengths meet in the service, and padding a 2 s clip to 30 s would waste most of a call."""
    calls: list[list[int]] = []
    for i in sorted(range(len(durations_ms)), key=lambda i: (durations_ms[i], i)):
        if calls:
            call = calls[-1]
            shortest, n = durations_ms[call[0]], len(call)
            if durations_ms[i] * (n + 1) <= budget_s * 1000 and durations_ms[i] <= MAX_PAD_RATIO * max(shortest, 1):
                call.append(i)
                continue
        calls.append([i])
    return calls


@dataclass(frozen=True)
class RequestOptions:
    """Decoding options of one request; requests share a model call only when their options are equal."""

    language: str = "auto"  # forced language prompt: one of model.LANGUAGES (or "zn")
    use_itn: bool = False  # inverse text normalisation and punctuation ("withitn")
    timestamps: bool = False  # word and token [start_ms, end_ms] (srt/vtt cues, verbose_json words)

    def __post_init__(self):
        sv.DecodingOptions.from_kwargs(self.decoding_kwargs())  # ValueError/TypeError naming the bad value

    def decoding_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``SenseVoiceSmall.inference`` reads."""
        return {"language": self.language, "use_itn": self.use_itn, "output_timestamp": self.timestamps}


@dataclass(frozen=True, eq=False)
class Audio:
    """One decoded upload: the key its result carries, its samples and, once prepared, its model features."""

    key: str
    wave: np.ndarray  # (N,) float32 mono, 16 kHz
    feats: torch.Tensor | None = None  # (T, n_input) fbank + LFR + CMVN features, computed ahead by prepare()

    @property
    def duration_s(self) -> float:
        return len(self.wave) / sv.SAMPLE_RATE


def is_audio_container(data: bytes) -> bool:
    """Whether bytes start like an audio file (wav, flac, ogg, mp3, webm, mp4). The model would read anything
    else as header-less 16-bit PCM; an HTTP upload of a PNG must be refused instead of transcribed as noise."""
    return data.startswith(sv.CONTAINER_MAGIC) or data[4:8] == b"ftyp"


def decode_upload(data: bytes, key: str) -> Audio:
    """Uploaded file bytes -> 16 kHz mono samples; ``model.AudioInputError`` names the key and the problem."""
    if not data:
        raise sv.AudioInputError(f"{key}: the file is empty (0 bytes)")
    if not is_audio_container(data):
        raise sv.AudioInputError(f"{key}: not an audio file (starts with {data[:8]!r}); accepted: wav, flac, ogg, "
                                 "mp3 (any sample rate, mono or multichannel)")
    return Audio(key, sv.load_audio(data, key).numpy())


class Transcriber(Protocol):
    """What the service drives: ``prepare`` on the request's decoder thread (concurrently, so it must be
    thread-safe), ``transcribe_batch`` on the batcher's one worker thread (it need not be)."""

    def prepare(self, item: Audio) -> Audio:
        """Per-upload work that needs no batch (feature extraction), done before the upload is queued."""
        ...

    def transcribe_batch(self, items: Sequence[Audio], options: RequestOptions) -> list[dict[str, Any]]:
        """One file result per item, in item order."""
        ...


class ModelTranscriber:
    """A model directory loaded once (optionally with FSMN-VAD) that decodes batches of uploads.

    Features are computed per upload by ``prepare``, off the worker thread, so that the worker's time goes to the
    model; the batch is then decoded from padded features, which is what ``SenseVoiceSmall.inference`` does with
    audio inputs, so the answers are the same. Long uploads (with VAD) are segmented on the worker thread, which
    alone touches the VAD model, and their segments' features are computed there.
    """

    def __init__(self, model_dir: str | os.PathLike, use_vad: bool = False, device: str = "cpu",
                 ncpu: int | None = None, max_batch_s: float = 60.0, ban_emo_unk: bool = False,
                 blank_penalty: float = 0.0):
        # Server-wide decoding options (``sensevoice serve --ban-emo-unk --blank-penalty``), checked before the
        # model loads: the APIs the service speaks have no request fields for them.
        self.server_decoding = {"ban_emo_unk": ban_emo_unk, "blank_penalty": blank_penalty}
        sv.DecodingOptions.from_kwargs(self.server_decoding)  # ValueError/TypeError naming the bad value
        common = {"device": device, "ncpu": ncpu, "disable_pbar": True}
        if use_vad:
            self.automodel = vad.load_automodel_with_vad(model_dir, **common)
        else:
            self.automodel = modeldir.load_automodel(Path(model_dir), **common)
        self.model: sv.SenseVoiceSmall = self.automodel.model.eval()
        self.tokenizer, self.frontend = self.automodel.kwargs["tokenizer"], self.automodel.kwargs["frontend"]
        self.use_vad = use_vad
        self.max_batch_s = max_batch_s  # padded seconds of audio per model call (longest item x count)

    def is_long(self, item: Audio) -> bool:
        """Whether VAD cuts this upload into segments."""
        return self.use_vad and len(item.wave) > LONG_AUDIO_MS * SAMPLES_PER_MS

    def features(self, wave: np.ndarray, key: str) -> torch.Tensor:
        """(T, n_input) features of one waveform, exactly as ``SenseVoiceSmall.inference`` computes them."""
        feats, _ = self.model.extract_features([wave], [key], self.frontend, sv.SAMPLE_RATE)
        return feats[0]

    def prepare(self, item: Audio) -> Audio:
        return item if self.is_long(item) else dataclasses.replace(item, feats=self.features(item.wave, item.key))

    def transcribe_batch(self, items: Sequence[Audio], options: RequestOptions) -> list[dict[str, Any]]:
        # Pieces: every upload whole, or its VAD segments; all pieces of all uploads share the model calls.
        pieces: list[tuple[int, int, int, torch.Tensor]] = []  # (item index, start_ms, end_ms, features)
        for i, item in enumerate(items):
            if self.is_long(item):
                for start, end in vad.detect_segments(self.automodel, item.wave):
                    wave = item.wave[start * SAMPLES_PER_MS:end * SAMPLES_PER_MS]
                    pieces.append((i, start, end, self.features(wave, f"{item.key}@{start}ms")))
            else:
                feats = item.feats if item.feats is not None else self.features(item.wave, item.key)
                pieces.append((i, 0, round(item.duration_s * 1000), feats))
        outputs = self.decode_features([p[3] for p in pieces], [f"{items[p[0]].key}/{n}" for n, p in enumerate(pieces)],
                                       options)
        segments: list[list[dict[str, Any]]] = [[] for _ in items]
        for (i, start, end, _), output in zip(pieces, outputs):
            segments[i].append(transcribe.segment_entry(output, start, end))
        return [transcribe.file_result(item.key, round(item.duration_s * 1000), segs, options.timestamps)
                for item, segs in zip(items, segments)]

    def decode_features(self, feats: Sequence[torch.Tensor], keys: Sequence[str], options: RequestOptions
                        ) -> list[dict[str, Any]]:
        """Model results for the feature sequences, in order, decoded in the calls ``plan_calls`` groups."""
        outputs: list[dict[str, Any]] = [{}] * len(feats)
        durations_ms = [len(f) * sv.ENC_FRAME_MS for f in feats]
        for batch in plan_calls(durations_ms, self.max_batch_s):
            padded = nn.utils.rnn.pad_sequence([feats[i] for i in batch], batch_first=True)  # (B, T, n_input)
            lens = torch.tensor([len(feats[i]) for i in batch])  # (B,)
            results, _ = self.model.inference(padded, data_lengths=lens, data_type="fbank",
                                              key=[keys[i] for i in batch], tokenizer=self.tokenizer,
                                              **options.decoding_kwargs(), **self.server_decoding)
            for i, result in zip(batch, results):
                outputs[i] = result
        return outputs
