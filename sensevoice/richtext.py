"""Rich-text post-processing: SenseVoice's tagged output -> clean text, structured fields or emoji form."""

from __future__ import annotations

from typing import Any

from funasr.utils.postprocess_utils import rich_transcription_postprocess

import model as sv


def clean_text(text: str) -> str:
    """'<|en|><|HAPPY|><|Speech|><|woitn|>hello' -> 'hello'."""
    return sv.split_rich_text(text)["clean_text"]


def fields(text: str) -> dict[str, Any]:
    """Language, emotion, event, itn and clean text of one rich transcript."""
    return sv.split_rich_text(text)


def emoji_text(text: str) -> str:
    """The emoji form FunASR users know ('hello😊', events as leading emoji), via FunASR's own helper."""
    return rich_transcription_postprocess(text)
