"""Response bodies: OpenAI's transcription formats (json, text, srt, vtt, verbose_json) and the ``{"result":
[...]}`` shape of SenseVoice's own api.py, from the file results of ``sensevoice.pipeline.Transcriber``."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from sensevoice import richtext, subtitles
from sensevoice.modeldir import ModelIdentity
from sensevoice.result import TIMESTAMPS, Segment, Transcript

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
               "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
TAG_FIELDS = ("language", "emotion", "event")
# A verbose_json segment is the Segment's document under OpenAI's names where OpenAI has the field (times in
# seconds, ``text`` without tags), and under its own names otherwise; OpenAI's ``tokens`` are token ids, so our
# pieces are ``token_pieces``.
OPENAI_SEGMENT_NAMES = {"start_ms": "start", "end_ms": "end", "clean_text": "text", "text": "rich_text",
                        "tokens": "token_pieces"}
SECONDS_FIELDS = ("start_ms", "end_ms")  # ms in the Segment, seconds in verbose_json


def needs_timestamps(response_format: str, granularities: Sequence[str]) -> bool:
    """Whether the model must produce word/token times: subtitle cues are split at words, and words are listed."""
    return response_format in ("srt", "vtt") or "word" in granularities


def dominant(segments: Sequence[Segment], name: str) -> str | None:
    """The value of a tag that covers most of the file's speech (None when no segment has one)."""
    weights: Counter[str] = Counter()
    for s in segments:
        if getattr(s, name):
            weights[getattr(s, name)] += s.duration_ms + 1
    return weights.most_common(1)[0][0] if weights else None


def file_tags(result: Transcript) -> dict[str, str | None]:
    return {name: dominant(result.segments, name) for name in TAG_FIELDS}


def openai_text(result: Transcript) -> str:
    """OpenAI's ``text``: the transcript without SenseVoice's tags."""
    return result.clean_text


def openai_segment(n: int, segment: Segment) -> dict[str, Any]:
    """One segment as verbose_json lists it: OpenAI's ``id`` and ``seek``, then every field of the Segment."""
    fields = {OPENAI_SEGMENT_NAMES.get(name, name): value / 1000 if name in SECONDS_FIELDS else value
              for name, value in segment.to_dict().items()}
    return {"id": n, "seek": 0, **fields}


def verbose_json(result: Transcript, granularities: Sequence[str], model: ModelIdentity) -> dict[str, Any]:
    """OpenAI's verbose_json (times in seconds) plus SenseVoice's fields: language, emotion, event, rich_text
    (and tag_probs with tag_topk), and the model that answered (``model``: its id; ``model_identity``: its kind,
    description, weights hash and source). Segments are always listed, each with every field of the result's
    segments (OPENAI_SEGMENT_NAMES), OpenAI's ``avg_logprob`` and ``no_speech_prob`` among them; words when
    ``granularities`` asks for them, each with its ``probability``."""
    body = {"task": "transcribe", "duration": result.duration_ms / 1000, "text": openai_text(result),
            **file_tags(result), "rich_text": result.text,
            "segments": [openai_segment(n, s) for n, s in enumerate(result.segments)], "model": model.id,
            "model_identity": model.as_dict()}
    if result.diarized:  # the speakers and their turns (seconds)
        body["speakers"] = result.speakers
        body["turns"] = [{"start": t.start_ms / 1000, "end": t.end_ms / 1000, "speaker": t.speaker}
                         for t in result.turns]
    if "word" in granularities:
        words = result.words or []
        probabilities = result.word_probability or [None] * len(words)
        body["words"] = [{"word": w, "start": s / 1000, "end": e / 1000, "probability": p}
                         for w, (s, e), p in zip(words, result.timestamp or [], probabilities)]
        for word, speaker in zip(body["words"], result.word_speaker or []):
            word["speaker"] = speaker
    return body


def openai_body(result: Transcript, response_format: str, granularities: Sequence[str],
                model: ModelIdentity, with_subtitles: bool = False) -> str | dict[str, Any]:
    """A file result in one of RESPONSE_FORMATS: a dict for the JSON formats, else text; verbose_json names
    ``model``, the model that answered, and ``with_subtitles`` adds ``subtitles``: {"srt": ..., "vtt": ...}, the
    result as srt and vtt render it (decoded with word times for its cues, which the rest of the body leaves out
    unless ``granularities`` asks for words)."""
    if response_format == "json":
        return {"text": openai_text(result)}
    if response_format == "verbose_json" and with_subtitles:
        shown = result if "word" in granularities else result.without(TIMESTAMPS)
        return {**verbose_json(shown, granularities, model),
                "subtitles": {"srt": subtitles.to_srt(result), "vtt": subtitles.to_vtt(result)}}
    if response_format == "verbose_json":
        return verbose_json(result, granularities, model)
    if response_format == "text":
        return openai_text(result) + "\n"
    if response_format == "srt":
        return subtitles.to_srt(result)
    if response_format == "vtt":
        return subtitles.to_vtt(result)
    raise ValueError(f"response_format={response_format!r}; expected one of {list(RESPONSE_FORMATS)}")


def asr_result(result: Transcript) -> dict[str, Any]:
    """One entry of api.py's ``result``: ``text`` in emoji form (FunASR's rich_transcription_postprocess),
    ``raw_text`` the rich text with its tags, ``clean_text`` without them; plus the file's tags."""
    raw = result.text
    return {"key": result.key, "text": richtext.emoji_text(raw), "raw_text": raw, "clean_text": result.clean_text,
            **file_tags(result)}
