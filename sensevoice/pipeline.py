"""The one transcription pipeline under every front door (CLI, service, benchmark, batch jobs):

    audio (path, URL, bytes, array) -> 16 kHz mono -> VAD segments -> features per segment     ``prepare``
    -> duration-bucketed batches over the segments of every item -> backend -> CTC search    ``decode``
    -> one result per item (``sensevoice.result.Transcript``), segments and timestamps on the item's own timeline

``prepare`` is thread-safe (the service runs it on request threads, off the model's thread); ``decode`` takes the
prepared items of any number of requests and shares model calls between them.

FunASR's ``AutoModel.generate`` with a ``vad_model`` does the same job, but it merges the segments' results by
adding up every field (``"language": "enenzh"``; a TypeError when a field is None), leaves ``token_timestamp``
relative to its segment, leaves out an input whose transcript is empty (so later results shift) and turns
batching off on ``device="cpu"``. Here each segment keeps its own fields, every timestamp is absolute, every input
gets a result, and ``batch_size_s`` batches on any device.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

import model as sv
from sensevoice import backends, transcripts
from sensevoice.audio import load_audio
from sensevoice.diarize import (DEFAULT_SPEAKER_ENCODER, DiarizationOptions, Diarizer, SpeakerEncoder, Turn,
                                label_segments)
from sensevoice.modeldir import ModelDir
from sensevoice.result import TIMESTAMPS, Segment, SpeakerTurn, Transcript
from sensevoice.vad import MAX_SEGMENT_MS, Vad

SAMPLES_PER_MS = sv.SAMPLE_RATE // 1000  # 16
NO_VAD_WARN_S = 60  # without VAD an input is one forward pass; attention memory grows with its length squared
MAX_PAD_RATIO = 1.3  # in one model call the longest segment is at most 1.3x the shortest: padding wastes < 23 %

Progress = Callable[[float, float], None]  # (seconds of audio decoded so far, seconds in this call)


def check_batch_size_s(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"batch_size_s={value!r} must be a positive number of seconds of audio")
    return float(value)


def plan_batches(durations_ms: Sequence[int], batch_size_s: float) -> list[list[int]]:
    """Segment indices grouped into model calls, shortest first. A call grows while its padded size (longest x
    count) stays within ``batch_size_s`` (FunASR's rule, on every device) and its longest segment is at most
    MAX_PAD_RATIO x its shortest (segments of unrelated lengths meet across inputs and requests, and padding a
    2 s clip to 30 s would waste most of a call). A segment longer than the budget runs alone."""
    budget_ms = batch_size_s * 1000
    batches: list[list[int]] = []
    for i in sorted(range(len(durations_ms)), key=lambda i: (durations_ms[i], i)):
        if batches:
            batch = batches[-1]
            shortest = durations_ms[batch[0]]
            if durations_ms[i] * (len(batch) + 1) <= budget_ms and durations_ms[i] <= MAX_PAD_RATIO * max(shortest, 1):
                batch.append(i)
                continue
        batches.append([i])
    return batches


@dataclass(frozen=True, eq=False)
class Prepared:
    """One input ready for the model: its speech segments on its own timeline and their features."""

    key: str
    duration_ms: int
    spans: tuple[tuple[int, int], ...]  # [start_ms, end_ms) of each segment
    feats: tuple[Tensor, ...]  # (T_i, n_input) fbank + LFR + CMVN features of each segment
    turns: tuple[Turn, ...] | None = None  # speaker turns, when diarization was asked for

    @property
    def duration_s(self) -> float:
        return self.duration_ms / 1000


def with_word_times(options: sv.DecodingOptions, diarized: bool) -> sv.DecodingOptions:
    """The options a diarized input is decoded with: word timestamps, by which its words are given speakers
    (``input_result`` drops them again unless they were asked for)."""
    return dataclasses.replace(options, output_timestamp=True) if diarized else options


def shift_spans(spans: Sequence[Sequence[int]], start_ms: int, end_ms: int) -> list[list[int]]:
    """Segment-relative [start, end] ms -> absolute, clamped to the segment (the model's last frame centre may
    lie a few ms past the segment's last sample)."""
    return [[min(int(s) + start_ms, end_ms), min(int(e) + start_ms, end_ms)] for s, e in spans]


def segment_entry(item: dict[str, Any], start_ms: int, end_ms: int) -> Segment:
    """One model result (``transcripts.decode_scores``: segment-relative) -> a segment of the input's result (absolute
    times). Every field the model gives is kept: one the Segment type lacks is a TypeError, never dropped."""
    fields = {name: value for name, value in item.items() if name != "key"}
    for name in ("timestamp", "token_timestamp"):
        if name in fields:
            fields[name] = shift_spans(fields[name], start_ms, end_ms)
    return Segment(start_ms=start_ms, end_ms=end_ms, **fields)


def input_result(key: str, duration_ms: int, segments: Sequence[Segment], timestamps: bool,
                 turns: Sequence[Turn] | None = None) -> Transcript:
    """Segments -> the input's Transcript (``Transcript.join``). With speaker ``turns``, each segment gets its
    speaker (split where the speaker changes) and the result its ``turns`` and ``speakers``; the word timestamps
    that placed the words are dropped again unless ``timestamps``."""
    speaker_turns = None
    if turns is not None:
        segments = [Segment.from_dict(s) for s in label_segments([s.to_dict() for s in segments], turns)]
        speaker_turns = [SpeakerTurn(t.start_ms, t.end_ms, t.label) for t in turns]
    if not timestamps:  # decoded with them for the speakers (or for another item's, in a shared batch)
        segments = [s.without(TIMESTAMPS) for s in segments]
    return Transcript.join(key, duration_ms, segments, timestamps, speaker_turns)


class Transcriber:
    """A model directory loaded once behind one backend, with or without the offline FSMN-VAD, that transcribes
    any number of inputs."""

    def __init__(self, model_dir: str | os.PathLike | ModelDir,
                 backend: sv.BackendOptions | backends.Backend | None = sv.BackendOptions(),
                 vad: bool = True, device: str = "cpu", threads: int | None = None, batch_size_s: float = 60.0,
                 vad_model: str | os.PathLike = "fsmn-vad", max_segment_ms: int = MAX_SEGMENT_MS,
                 speaker_encoder: str | SpeakerEncoder = DEFAULT_SPEAKER_ENCODER):
        self.batch_size_s = check_batch_size_s(batch_size_s)
        if threads is not None:
            torch.set_num_threads(threads)
        self.model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
        self.tokenizer, self.special = self.model_dir.tokenizer, self.model_dir.special
        self.frontend = self.model_dir.frontend()
        # A ready backend (e.g. an ONNX Runtime session with non-default settings) is used as it is; None loads no
        # network at all: a prepare-only transcriber (the CPU stage of a batch job, apart from the model's actors).
        self.backend = backends.for_dir(self.model_dir, backend, device, threads) \
            if isinstance(backend, sv.BackendOptions) else backend
        self.vad = Vad(vad_model, max_segment_ms, device, threads) if vad else None
        self.diarizer = Diarizer(speaker_encoder)  # the encoder loads on the first input that asks for speakers

    # ---- per input, any thread ---------------------------------------------------------------------------------
    def features(self, wave: np.ndarray, key: str) -> Tensor:
        """(T, n_input) features of one 16 kHz waveform, exactly as ``SenseVoiceSmall.inference`` computes them."""
        feats, _ = sv.SenseVoiceSmall.extract_features([wave], [key], self.frontend, sv.SAMPLE_RATE)
        return feats[0]

    def prepare(self, audio: Any, key: str, fs: int = sv.SAMPLE_RATE, use_vad: bool = True,
                diarization: DiarizationOptions | None = None) -> Prepared:
        """Decode one input, cut it at pauses (with VAD, unless ``use_vad=False``) and compute its segments'
        features (and, with ``diarization``, its speaker turns). Errors name ``key``: ``audio.AudioInputError``
        (not audio), FileNotFoundError; ValueError for more speakers asked for than its speech can hold."""
        return self.prepare_wave(load_audio(audio, key, fs).numpy(), key, use_vad, diarization)

    def prepare_wave(self, wave: np.ndarray, key: str, use_vad: bool = True,
                     diarization: DiarizationOptions | None = None) -> Prepared:
        """``prepare`` of an already decoded (N,) float32 16 kHz waveform."""
        duration_ms = int(len(wave) * 1000 / sv.SAMPLE_RATE)
        if self.vad is not None and use_vad:
            spans = self.vad.segments(wave)
        else:
            if duration_ms > NO_VAD_WARN_S * 1000:
                warnings.warn(f"{key}: {duration_ms / 1000:.0f} s of audio in one forward pass (no VAD); memory "
                              "grows with the square of the length, use VAD for long audio", stacklevel=2)
            spans = [(0, duration_ms)]
        # Views, not copies: the same slicing as FunASR's slice_padding_audio_samples.
        feats = tuple(self.features(wave[s * SAMPLES_PER_MS:e * SAMPLES_PER_MS], f"{key}@{s}ms") for s, e in spans)
        turns = None
        if diarization is not None:
            try:
                turns = tuple(self.diarizer(wave, spans, diarization))
            except ValueError as err:
                raise ValueError(f"{key}: {err}") from None
        return Prepared(key, duration_ms, tuple(spans), feats, turns)

    # ---- many inputs, the model's thread ----------------------------------------------------------------------
    def decode(self, items: Sequence[Prepared], options: sv.DecodingOptions = sv.DecodingOptions(),
               progress: Progress | None = None, batch_size_s: float | None = None) -> list[Transcript]:
        """One result per prepared item, in order; the segments of all items share the model calls, planned
        within ``batch_size_s`` (default: the transcriber's)."""
        if self.backend is None:
            raise RuntimeError("this Transcriber was built with backend=None: it prepares inputs, it cannot decode")
        budget_s = self.batch_size_s if batch_size_s is None else check_batch_size_s(batch_size_s)
        timestamps = options.output_timestamp
        options = with_word_times(options, any(item.turns is not None for item in items))
        pieces = [(i, n) for i, item in enumerate(items) for n in range(len(item.spans))]
        feats = [items[i].feats[n] for i, n in pieces]
        durations_ms = [len(f) * sv.ENC_FRAME_MS for f in feats]
        total_s, done_s = sum(durations_ms) / 1000, 0.0
        if progress:
            progress(done_s, total_s)
        outputs: list[dict[str, Any]] = [{}] * len(pieces)
        for batch in plan_batches(durations_ms, budget_s):
            padded = nn.utils.rnn.pad_sequence([feats[p] for p in batch], batch_first=True)  # (B, T, n_input)
            lens = torch.tensor([len(feats[p]) for p in batch])  # (B,)
            keys = [f"{items[pieces[p][0]].key}/{pieces[p][1]}" for p in batch]
            with torch.no_grad():
                scores, out_lens = self.backend.ctc_scores(padded, lens, options.language, options.textnorm)
            for p, result in zip(batch, transcripts.decode_scores(scores, out_lens, keys, options, self.special,
                                                                  self.tokenizer)):
                outputs[p] = result
            done_s += sum(durations_ms[p] for p in batch) / 1000
            if progress:
                progress(done_s, total_s)
        segments: list[list[Segment]] = [[] for _ in items]
        for (i, n), output in zip(pieces, outputs):
            segments[i].append(segment_entry(output, *items[i].spans[n]))
        return [input_result(item.key, item.duration_ms, segs, timestamps, item.turns)
                for item, segs in zip(items, segments)]

    # ---- both -------------------------------------------------------------------------------------------------
    def transcribe(self, audio: Any, key: str = "audio", options: sv.DecodingOptions = sv.DecodingOptions(),
                   progress: Progress | None = None, batch_size_s: float | None = None,
                   diarization: DiarizationOptions | None = None) -> Transcript:
        """One input -> its Transcript (with word times when ``options.output_timestamp``; with speakers when
        ``diarization``); raises on bad input."""
        prepared = self.prepare(audio, key, options.fs, diarization=diarization)
        return self.decode([prepared], options, progress, batch_size_s)[0]

    def transcribe_many(self, inputs: Sequence[Any], keys: Sequence[str],
                        options: sv.DecodingOptions = sv.DecodingOptions(),
                        diarization: DiarizationOptions | None = None) -> list[Transcript | dict[str, str]]:
        """Many inputs decoded together; an input that cannot be read gets ``{"key", "error"}`` in its place and
        the others are transcribed all the same."""
        if len(inputs) != len(keys):
            raise ValueError(f"{len(inputs)} inputs for {len(keys)} keys")
        prepared: list[Prepared | dict[str, Any]] = []
        for audio, key in zip(inputs, keys):
            try:
                prepared.append(self.prepare(audio, key, options.fs, diarization=diarization))
            except (OSError, ValueError) as err:  # AudioInputError is a ValueError
                prepared.append({"key": key, "error": str(err)})
        good = iter(self.decode([p for p in prepared if isinstance(p, Prepared)], options))
        return [next(good) if isinstance(p, Prepared) else p for p in prepared]
