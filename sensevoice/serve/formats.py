"""Response bodies: OpenAI's transcription formats (json, text, srt, vtt, verbose_json) and the ``{"result":
[...]}`` shape of SenseVoice's own api.py, from the file results of ``sensevoice.pipeline.Transcriber``."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from sensevoice import richtext, subtitles
from sensevoice.modeldir import ModelIdentity

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
               "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
TAG_FIELDS = ("language", "emotion", "event")


def needs_timestamps(response_format: str, granularities: Sequence[str]) -> bool:
    """Whether the model must produce word/token times: subtitle cues are split at words, and words are listed."""
    return response_format in ("srt", "vtt") or "word" in granularities


def dominant(segments: Sequence[dict[str, Any]], name: str) -> str | None:
    """The value of a tag that covers most of the file's speech (None when no segment has one)."""
    weights: Counter[str] = Counter()
    for s in segments:
        if s.get(name):
            weights[s[name]] += s["end_ms"] - s["start_ms"] + 1
    return weights.most_common(1)[0][0] if weights else None


def file_tags(result: dict[str, Any]) -> dict[str, str | None]:
    return {name: dominant(result["segments"], name) for name in TAG_FIELDS}


def openai_text(result: dict[str, Any]) -> str:
    """OpenAI's ``text``: the transcript without SenseVoice's tags."""
    return result["clean_text"]


def verbose_json(result: dict[str, Any], granularities: Sequence[str], model: ModelIdentity) -> dict[str, Any]:
    """OpenAI's verbose_json (times in seconds) plus SenseVoice's fields: language, emotion, event, rich_text
    (and tag_probs with tag_topk), and the model that answered (``model``: its id; ``model_identity``: its kind,
    description, weights hash and source). Segments are always listed, with OpenAI's ``avg_logprob`` and
    ``no_speech_prob``; words when ``granularities`` asks for them, each with its ``probability``."""
    segments = [{"id": n, "seek": 0, "start": s["start_ms"] / 1000, "end": s["end_ms"] / 1000,
                 "text": s["clean_text"], "rich_text": s["text"], **{k: s.get(k) for k in TAG_FIELDS},
                 "avg_logprob": s.get("avg_logprob"), "no_speech_prob": s.get("no_speech_prob"),
                 **({"tag_probs": s["tag_probs"]} if "tag_probs" in s else {}),
                 **({"speaker": s["speaker"]} if "speaker" in s else {})}
                for n, s in enumerate(result["segments"])]
    body = {"task": "transcribe", "duration": result["duration_ms"] / 1000, "text": openai_text(result),
            **file_tags(result), "rich_text": result["text"], "segments": segments, "model": model.id,
            "model_identity": model.as_dict()}
    if "speakers" in result:  # diarized: the speakers and their turns (seconds)
        body["speakers"] = result["speakers"]
        body["turns"] = [{"start": t["start_ms"] / 1000, "end": t["end_ms"] / 1000, "speaker": t["speaker"]}
                         for t in result["turns"]]
    if "word" in granularities:
        probabilities = result.get("word_probability") or [None] * len(result.get("words", []))
        speakers = result.get("word_speaker")
        body["words"] = [{"word": w, "start": s / 1000, "end": e / 1000, "probability": p}
                         for w, (s, e), p in zip(result.get("words", []), result.get("timestamp", []), probabilities)]
        for word, speaker in zip(body["words"], speakers or []):
            word["speaker"] = speaker
    return body


def openai_body(result: dict[str, Any], response_format: str, granularities: Sequence[str],
                model: ModelIdentity) -> str | dict[str, Any]:
    """A file result in one of RESPONSE_FORMATS: a dict for the JSON formats, else text; verbose_json names
    ``model``, the model that answered."""
    if response_format == "json":
        return {"text": openai_text(result)}
    if response_format == "verbose_json":
        return verbose_json(result, granularities, model)
    if response_format == "text":
        return openai_text(result) + "\n"
    if response_format == "srt":
        return subtitles.to_srt(result)
    if response_format == "vtt":
        return subtitles.to_vtt(result)
    raise ValueError(f"response_format={response_format!r}; expected one of {list(RESPONSE_FORMATS)}")


def asr_result(result: dict[str, Any]) -> dict[str, Any]:
    """One entry of api.py's ``result``: ``text`` in emoji form (FunASR's rich_transcription_postprocess),
    ``raw_text`` the rich text with its tags, ``clean_text`` without them; plus the file's tags."""
    raw = result["text"]
    return {"key": result["key"], "text": richtext.emoji_text(raw), "raw_text": raw,
            "clean_text": result["clean_text"], **file_tags(result)}
