"""Rich-text post-processing: SenseVoice's tagged output -> clean text, structured fields or emoji form."""

from __future__ import annotations

import re
from typing import Any

from funasr.utils.postprocess_utils import rich_transcription_postprocess

import model as sv

LEADING_TAGS_RE = re.compile(r"(?:\s*<\|[^|]*\|>)*")  # the utterance's own tags, before any text


def split_rich_text(text: str) -> dict[str, Any]:
    """Structured view of rich text: the leading tags sorted into language/emotion/event/itn + clean text.

    A missing tag is "" (not None): FunASR's VAD path merges segment results with ``+=``."""
    fields: dict[str, Any] = {"language": "", "emotion": "", "event": "", "itn": ""}
    events = []
    leading = LEADING_TAGS_RE.match(text).group(0)  # tags inside the transcript are not the utterance's labels
    for name in sv.TAG_RE.findall(leading):
        if name in sv.LANGUAGES or name in ("zh/en", "en/zh"):
            fields["language"] = fields["language"] or name
        elif name in sv.EMOTIONS:
            fields["emotion"] = fields["emotion"] or name
        elif name in sv.TEXTNORMS:
            fields["itn"] = fields["itn"] or name
        else:
            events.append(name)
    fields["event"] = events[0] if events else ""
    fields["clean_text"] = re.sub(r" {2,}", " ", sv.TAG_RE.sub("", text)).strip()
    return fields


def clean_text(text: str) -> str:
    """'<|en|><|HAPPY|><|Speech|><|woitn|>hello' -> 'hello'."""
    return split_rich_text(text)["clean_text"]


def emoji_text(text: str) -> str:
    """The emoji form FunASR users know ('hello😊', events as leading emoji), via FunASR's own helper."""
    return rich_transcription_postprocess(text)
