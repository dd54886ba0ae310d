"""The transcription result: one typed document that the pipeline returns and every writer renders (txt, json,
jsonl, srt, vtt, tsv, the service's verbose_json and api.py result, batch shards, WebSocket finals).

A field is declared once, here. A field that only some decodings have says so in its metadata (``with``: the
parts it needs, see PARTS) and is None otherwise; ``to_dict`` leaves None fields out, so the document of an
undiarized, untimed result keeps its short shape. ``to_dict`` is exactly what ``transcribe -f json`` writes (plus the
subtitle cues it adds); the batch job's Parquet schema, the verbose_json segments and the WebSocket finals are
derived from these fields. Light: no torch, no numpy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# The optional parts of a result and what asks for each.
TIMESTAMPS = "timestamps"  # output_timestamp: words, tokens, their [start_ms, end_ms] and probabilities
TAG_PROBS = "tag_probs"  # tag_topk > 0: the likeliest tags of each family with their probabilities
SPEAKERS = "speakers"  # diarization: who speaks when
PARTS = (TIMESTAMPS, TAG_PROBS, SPEAKERS)

Span = list[int]  # [start_ms, end_ms] on the input's timeline


def _with(*parts: str) -> Any:
    """An optional field, present when every one of ``parts`` was asked for."""
    return field(default=None, metadata={"with": parts})


@dataclass(frozen=True)
class Segment:
    """One speech segment (a VAD segment, or part of one where the speaker changes), absolute times in ms."""

    start_ms: int
    end_ms: int
    text: str  # rich text, with the model's tags: "<|en|><|NEUTRAL|><|Speech|><|woitn|>hello"
    clean_text: str  # the transcript without tags
    language: str  # the tags, "" where the model gave none
    emotion: str
    event: str
    itn: str
    avg_logprob: float  # mean log-probability of the decoded tokens (OpenAI's name)
    no_speech_prob: float  # probability that the segment holds no speech
    tag_probs: dict[str, dict[str, float]] | None = _with(TAG_PROBS)  # {family: {tag: p}}
    words: list[str] | None = _with(TIMESTAMPS)
    timestamp: list[Span] | None = _with(TIMESTAMPS)  # one per word (FunASR's name and shape)
    tokens: list[str] | None = _with(TIMESTAMPS)  # sentencepiece pieces
    token_timestamp: list[Span] | None = _with(TIMESTAMPS)
    word_probability: list[float] | None = _with(TIMESTAMPS)  # a word's: its pieces' lowest
    token_probability: list[float] | None = _with(TIMESTAMPS)
    speaker: str | None = _with(SPEAKERS)  # "S1", "S2", ...
    word_speaker: list[str] | None = _with(TIMESTAMPS, SPEAKERS)  # one per word

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return _document(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Segment":
        """The inverse of ``to_dict``; TypeError names a field the type does not have."""
        return cls(**doc)

    def without(self, part: str) -> "Segment":
        """The same segment without the fields of ``part`` (e.g. word times decoded only to place speakers)."""
        return dataclasses.replace(self, **{name: None for name in part_fields(Segment, part)})


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker's stretch of speech, [start_ms, end_ms) on the input's timeline."""

    start_ms: int
    end_ms: int
    speaker: str  # "S1", ...

    def to_dict(self) -> dict[str, Any]:
        return _document(self)


@dataclass(frozen=True)
class Transcript:
    """One input's result: its segments and what they add up to. The file's tags are its longest segment's ("" without
    speech); its word lists are its segments' lists, joined in order."""

    key: str
    duration_ms: int
    text: str  # the segments' rich texts joined with a space (as FunASR joins them)
    clean_text: str
    language: str
    emotion: str
    event: str
    itn: str
    segments: list[Segment]
    words: list[str] | None = _with(TIMESTAMPS)
    timestamp: list[Span] | None = _with(TIMESTAMPS)
    tokens: list[str] | None = _with(TIMESTAMPS)
    token_timestamp: list[Span] | None = _with(TIMESTAMPS)
    word_probability: list[float] | None = _with(TIMESTAMPS)
    token_probability: list[float] | None = _with(TIMESTAMPS)
    speakers: list[str] | None = _with(SPEAKERS)  # every speaker's label, S1 first
    turns: list[SpeakerTurn] | None = _with(SPEAKERS)
    word_speaker: list[str] | None = _with(TIMESTAMPS, SPEAKERS)

    @classmethod
    def join(cls, key: str, duration_ms: int, segments: Sequence[Segment], timestamps: bool,
             turns: Sequence[SpeakerTurn] | None = None) -> "Transcript":
        """An input's segments (time order; with timestamps when ``timestamps``) -> its transcript; ``turns``
        (diarized) add its speakers."""
        longest = max(segments, key=lambda s: s.duration_ms, default=None)
        joined: dict[str, Any] = {}
        for name in part_fields(Transcript, TIMESTAMPS) if timestamps else ():
            if name != "word_speaker" or turns is not None:
                joined[name] = [x for s in segments for x in getattr(s, name) or []]
        if turns is not None:
            joined["speakers"] = sorted({t.speaker for t in turns}, key=lambda label: int(label[1:]))
            joined["turns"] = list(turns)
        return cls(key, duration_ms, " ".join(s.text for s in segments),
                   " ".join(s.clean_text for s in segments if s.clean_text),
                   *(getattr(longest, tag) or "" if longest else "" for tag in ("language", "emotion", "event", "itn")),
                   list(segments), **joined)

    @property
    def diarized(self) -> bool:
        return self.speakers is not None

    def to_dict(self) -> dict[str, Any]:
        """The document ``transcribe -f json`` writes (without its cues)."""
        return _document(self)

    def without(self, part: str) -> "Transcript":
        """The same transcript without the fields of ``part``, in itself and in its segments."""
        return dataclasses.replace(self, segments=[s.without(part) for s in self.segments],
                                   **{name: None for name in part_fields(Transcript, part)})


def _document(obj: Any) -> dict[str, Any]:
    """A result object as JSON-ready dicts and lists, its None (not asked for) fields left out."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None and f.metadata.get("with"):
            continue
        if isinstance(value, list) and value and hasattr(value[0], "to_dict"):
            value = [v.to_dict() for v in value]
        out[f.name] = value
    return out


def part_fields(cls: type, part: str) -> tuple[str, ...]:
    """The fields of ``cls`` that ``part`` brings."""
    return tuple(f.name for f in dataclasses.fields(cls) if part in f.metadata.get("with", ()))


def field_names(cls: type, parts: Iterable[str] = ()) -> tuple[str, ...]:
    """The fields that a document of ``cls`` has when ``parts`` were asked for, in order."""
    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        raise ValueError(f"parts {sorted(unknown)}; expected some of {list(PARTS)}")
    return tuple(f.name for f in dataclasses.fields(cls) if set(f.metadata.get("with", ())) <= parts)


# What output_timestamp alone adds to a segment: words and tokens, their [start_ms, end_ms], their probabilities.
TIMESTAMP_KEYS = tuple(f.name for f in dataclasses.fields(Segment) if f.metadata.get("with") == (TIMESTAMPS,))
