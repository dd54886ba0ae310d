"""Long-audio transcription: VAD segments -> length-sorted dynamic batches -> one result on the file's timeline.

FunASR's ``AutoModel.generate`` with a ``vad_model`` does the same job, but it merges the segments' results by
adding up every field (``"language": "enenzh"``; a TypeError when a field is None), leaves ``token_timestamp``
relative to its segment, leaves out a file whose transcript is empty (so later results shift) and turns batching
off on ``device="cpu"``. Here each segment keeps its own fields, every timestamp is absolute, every input gets a
result, and ``batch_size_s`` batches on any device.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import model as sv
from sensevoice import modeldir, vad
from sensevoice.subtitles import TIMESTAMP_KEYS

MS_PER_SAMPLE = 1000 / sv.SAMPLE_RATE  # 0.0625 ms at 16 kHz
SAMPLES_PER_MS = sv.SAMPLE_RATE // 1000  # 16
NO_VAD_WARN_S = 60  # without VAD a file is one forward pass; attention memory grows with its length squared

Progress = Callable[[float, float], None]  # (seconds of the current file done, its total seconds)


@dataclass(frozen=True)
class TranscribeOptions:
    """How to decode; validated on construction (the decoding fields by ``model.DecodingOptions``)."""

    language: str = "auto"  # forced language prompt: one of model.LANGUAGES (or "zn")
    use_itn: bool = False  # inverse text normalisation and punctuation ("withitn")
    ban_emo_unk: bool = False  # never emit <|EMO_UNKNOWN|>
    blank_penalty: float = 0.0  # subtracted from the blank's score before greedy CTC (0: plain greedy)
    timestamps: bool = False  # add words/tokens with [start_ms, end_ms] on the file's timeline
    batch_size_s: float = 60.0  # dynamic batch budget: longest segment x batch size, in seconds of audio

    def __post_init__(self):
        sv.DecodingOptions.from_kwargs(self.decoding_kwargs())
        if isinstance(self.batch_size_s, bool) or not isinstance(self.batch_size_s, (int, float)) \
                or not math.isfinite(self.batch_size_s) or self.batch_size_s <= 0:
            raise ValueError(f"batch_size_s={self.batch_size_s!r} must be a positive number of seconds")

    def decoding_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``SenseVoiceSmall.inference`` reads."""
        return {"language": self.language, "use_itn": self.use_itn, "ban_emo_unk": self.ban_emo_unk,
                "blank_penalty": self.blank_penalty, "output_timestamp": self.timestamps}


def plan_batches(durations_ms: Sequence[int], batch_size_s: float) -> list[list[int]]:
    """Group segment indices into batches, shortest first: a batch grows while its padded size (longest segment
    x count) stays within ``batch_size_s``; a segment longer than the budget runs alone. FunASR's rule, minus
    its ``device == "cpu"`` exception."""
    budget_ms = batch_size_s * 1000
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(range(len(durations_ms)), key=lambda i: (durations_ms[i], i)):
        if current and max(longest, durations_ms[i]) * (len(current) + 1) > budget_ms:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, durations_ms[i])
    if current:
        batches.append(current)
    return batches


def shift_spans(spans: Sequence[Sequence[int]], start_ms: int, end_ms: int) -> list[list[int]]:
    """Segment-relative [start, end] ms -> absolute, clamped to the segment (the model's last frame centre may
    lie a few ms past the segment's last sample)."""
    return [[min(int(s) + start_ms, end_ms), min(int(e) + start_ms, end_ms)] for s, e in spans]


def segment_entry(item: dict[str, Any], start_ms: int, end_ms: int) -> dict[str, Any]:
    """One model result (segment-relative) -> a segment of the file result (absolute times)."""
    entry = {"start_ms": start_ms, "end_ms": end_ms,
             **{k: item.get(k) for k in ("text", "clean_text", "language", "emotion", "event", "itn")}}
    if "token_timestamp" in item:
        entry.update(words=list(item["words"]), timestamp=shift_spans(item["timestamp"], start_ms, end_ms),
                     tokens=list(item["tokens"]),
                     token_timestamp=shift_spans(item["token_timestamp"], start_ms, end_ms))
    return entry


def file_result(key: str, duration_ms: int, segments: list[dict[str, Any]], timestamps: bool) -> dict[str, Any]:
    """Segments -> the file's result: texts joined with a space (as FunASR joins them), timestamps concatenated."""
    result = {"key": key, "duration_ms": duration_ms,
              "text": " ".join(s["text"] for s in segments),
              "clean_text": " ".join(s["clean_text"] for s in segments if s["clean_text"]),
              "segments": segments}
    if timestamps:
        for name in TIMESTAMP_KEYS:
            result[name] = [x for s in segments for x in s.get(name, [])]
    return result


class Transcriber:
    """A model directory loaded once (with or without the offline FSMN-VAD) that transcribes many inputs."""

    def __init__(self, model_dir: str | os.PathLike, use_vad: bool = True, device: str = "cpu",
                 ncpu: int | None = None, vad_model: str | os.PathLike = "fsmn-vad",
                 max_segment_ms: int = vad.MAX_SEGMENT_MS):
        common = {"device": device, "ncpu": ncpu, "disable_pbar": True}
        if use_vad:
            self.automodel = vad.load_automodel_with_vad(model_dir, vad_model, max_segment_ms, **common)
        else:
            self.automodel = modeldir.load_automodel(Path(model_dir), **common)
        self.model: sv.SenseVoiceSmall = self.automodel.model
        self.use_vad = use_vad

    def transcribe(self, audio: Any, key: str = "audio", options: TranscribeOptions = TranscribeOptions(),
                   progress: Progress | None = None) -> dict[str, Any]:
        """One input (path, URL, bytes, 16 kHz array or tensor) -> ``{"key", "duration_ms", "text",
        "clean_text", "segments": [...]}`` (+ ``words``/``timestamp``/``tokens``/``token_timestamp``)."""
        wave = sv.load_audio(audio, key).numpy()  # (N,) float32, 16 kHz
        duration_ms = int(len(wave) * MS_PER_SAMPLE)
        if self.use_vad:
            spans = vad.detect_segments(self.automodel, wave)
        else:
            if duration_ms > NO_VAD_WARN_S * 1000:
                warnings.warn(f"{key}: {duration_ms / 1000:.0f} s of audio in one forward pass (no VAD); memory "
                              "grows with the square of the length, use VAD for long audio", stacklevel=2)
            spans = [(0, duration_ms)]
        items = self.transcribe_spans(wave, spans, key, options, progress)
        segments = [segment_entry(item, start, end) for item, (start, end) in zip(items, spans)]
        return file_result(key, duration_ms, segments, options.timestamps)

    def transcribe_spans(self, wave: np.ndarray, spans: Sequence[tuple[int, int]], key: str,
                         options: TranscribeOptions, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Model results (segment-relative) for each [start_ms, end_ms) span of ``wave``, in span order."""
        durations = [end - start for start, end in spans]
        total_s, done_s = sum(durations) / 1000, 0.0
        if progress:
            progress(done_s, total_s)
        kwargs = self.automodel.kwargs
        items: list[dict[str, Any] | None] = [None] * len(spans)
        for batch in plan_batches(durations, options.batch_size_s):
            # Views, not copies: the same slicing as FunASR's slice_padding_audio_samples.
            waves = [wave[spans[i][0] * SAMPLES_PER_MS:spans[i][1] * SAMPLES_PER_MS] for i in batch]
            results, _ = self.model.inference(waves, key=[f"{key}/{i}" for i in batch], tokenizer=kwargs["tokenizer"],
                                              frontend=kwargs["frontend"], **options.decoding_kwargs())
            for i, result in zip(batch, results):
                items[i] = result
            done_s += sum(durations[i] for i in batch) / 1000
            if progress:
                progress(done_s, total_s)
        return items  # type: ignore[return-value]
