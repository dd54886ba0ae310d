"""Writers for transcription results (``sensevoice.result.Transcript``): txt, json, jsonl, srt, vtt, tsv.

Subtitle cues come from the VAD segments; a segment longer than ``MAX_CUE_MS`` or ``MAX_CUE_CHARS`` is split at
word boundaries using the token timestamps. Every cue carries its segment's language, emotion and event, and its
speaker when the result was diarized (txt "S1: ", srt "[S1] ", vtt "<v S1>", a tsv column, json "speaker").
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from sensevoice.result import TIMESTAMPS, Segment, Transcript

MAX_CUE_MS = 7_000  # longest cue on screen
MAX_CUE_CHARS = 84  # two lines of 42 characters (a common broadcast limit)
MIN_CUE_MS = 1_500  # a cue this long may end early at a sentence end
SENTENCE_END = tuple(".!?。！？")
WORD_START = "\u2581"  # sentencepiece's word-boundary marker
LINE_CHARS = 42  # srt/vtt cue text wraps at this width


@dataclass(frozen=True)
class Cue:
    """One subtitle: absolute times in ms, clean text, and the tags of the segment it comes from."""

    start_ms: int
    end_ms: int
    text: str
    language: str | None = None
    emotion: str | None = None
    event: str | None = None
    speaker: str | None = None  # "S1", ... when diarized


def pieces_text(pieces: Sequence[str]) -> str:
    """Sentencepiece pieces -> text, as the tokenizer decodes them ("▁" is a space)."""
    return "".join(pieces).replace(WORD_START, " ").strip()


def _starts_word(pieces: Sequence[str], j: int) -> bool:
    """Whether a cue may begin at piece j: a "▁" piece, a non-ASCII piece (CJK has no spaces) or after one."""
    piece, previous = pieces[j], pieces[j - 1].lstrip(WORD_START) if j else ""
    return j == 0 or piece.startswith(WORD_START) or not piece.isascii() or not previous.isascii()


def split_pieces(pieces: Sequence[str], spans: Sequence[Sequence[int]], max_ms: int = MAX_CUE_MS,
                 max_chars: int = MAX_CUE_CHARS) -> list[tuple[int, int]]:
    """[first, last) piece ranges of the cues of one segment: greedy and word-bounded; a cue ends before a word
    that would make it overflow, or after a sentence end once it lasts ``MIN_CUE_MS``."""
    bounds = [j for j in range(len(pieces)) if _starts_word(pieces, j)] + [len(pieces)]
    ranges: list[tuple[int, int]] = []
    first = 0
    for j, k in zip(bounds[1:-1], bounds[2:]):  # the word pieces[j:k], not the first one
        overflow = spans[k - 1][1] - spans[first][0] > max_ms or len(pieces_text(pieces[first:k])) > max_chars
        sentence_done = pieces[j - 1].endswith(SENTENCE_END) and spans[j - 1][1] - spans[first][0] >= MIN_CUE_MS
        if overflow or sentence_done:
            ranges.append((first, j))
            first = j
    if pieces:
        ranges.append((first, len(pieces)))
    return ranges


def segment_cues(segment: Segment, max_ms: int = MAX_CUE_MS, max_chars: int = MAX_CUE_CHARS) -> list[Cue]:
    """The cues of one segment: the whole segment when it is short or has no timestamps, else word-bounded
    pieces of it (the first starts with the segment, the last ends with it)."""
    tags = {k: getattr(segment, k) for k in ("language", "emotion", "event", "speaker")}
    start, end, text = segment.start_ms, segment.end_ms, segment.clean_text
    if not text:
        return []
    pieces, spans = segment.tokens, segment.token_timestamp
    if not pieces or (end - start <= max_ms and len(text) <= max_chars):
        return [Cue(start, end, text, **tags)]
    ranges = split_pieces(pieces, spans, max_ms, max_chars)
    cues = []
    for n, (a, b) in enumerate(ranges):
        cue_start = start if n == 0 else spans[a][0]
        cue_end = end if n == len(ranges) - 1 else spans[b - 1][1]
        cues.append(Cue(cue_start, max(cue_end, cue_start), pieces_text(pieces[a:b]), **tags))
    return [c for c in cues if c.text]


def cues(result: Transcript, max_ms: int = MAX_CUE_MS, max_chars: int = MAX_CUE_CHARS) -> list[Cue]:
    """All cues of a file result, in time order."""
    return [c for segment in result.segments for c in segment_cues(segment, max_ms, max_chars)]


def clock(ms: int, decimal: str = ",") -> str:
    """12345 -> '00:00:12,345' (SRT) or, with decimal='.', '00:00:12.345' (WebVTT)."""
    seconds, ms = divmod(int(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal}{ms:03d}"


def wrap(text: str, width: int = LINE_CHARS) -> str:
    """Cue text as lines of at most ``width`` characters (broken at spaces where there are any)."""
    return "\n".join(textwrap.wrap(text, width)) or text


def to_srt(result: Transcript) -> str:
    blocks = [f"{i}\n{clock(c.start_ms)} --> {clock(c.end_ms)}\n{wrap(speaker_prefix(c, '[{}] ') + c.text)}\n"
              for i, c in enumerate(cues(result), 1)]
    return "\n".join(blocks)


def vtt_voice(speaker: str) -> str:
    """WebVTT's voice span start tag: the annotation may not hold "&", "<", ">" or a line break."""
    return f"<v {speaker}>" if not set(speaker) & set("&<>\n\r") else ""


def to_vtt(result: Transcript) -> str:
    blocks = [f"{clock(c.start_ms, '.')} --> {clock(c.end_ms, '.')}\n"
              f"{(vtt_voice(c.speaker) if c.speaker else '') + wrap(c.text)}\n" for c in cues(result)]
    return "\n".join(["WEBVTT\n", *blocks])


def speaker_prefix(cue: Cue, template: str) -> str:
    return template.format(cue.speaker) if cue.speaker else ""


def to_tsv(result: Transcript) -> str:
    """One row per cue: start and end in integer ms (as Whisper writes them), tags, (the speaker,) then the text."""
    diarized = result.diarized
    rows = ["start\tend\tlanguage\temotion\tevent\t" + ("speaker\t" if diarized else "") + "text"]
    for c in cues(result):
        tags = "\t".join(t or "" for t in (c.language, c.emotion, c.event, *((c.speaker,) if diarized else ())))
        rows.append(f"{c.start_ms}\t{c.end_ms}\t{tags}\t{' '.join(c.text.split())}")
    return "\n".join(rows) + "\n"


def to_txt(result: Transcript) -> str:
    """The clean text, one line per speech segment ("S1: " before it when diarized)."""
    lines = [(f"{s.speaker}: " if s.speaker else "") + s.clean_text for s in result.segments if s.clean_text]
    return "".join(line + "\n" for line in lines)


def cue_document(cue: Cue) -> dict[str, Any]:
    doc = asdict(cue)
    if cue.speaker is None:  # undiarized documents keep their shape
        del doc["speaker"]
    return doc


def document(result: Transcript, timestamps: bool = True) -> dict[str, Any]:
    """The result's document (``Transcript.to_dict``) plus its cues (with their language/emotion/event tags), as
    json/jsonl write it; without ``timestamps`` the word and token lists are left out (the cues keep their times)."""
    return {**(result if timestamps else result.without(TIMESTAMPS)).to_dict(),
            "cues": [cue_document(c) for c in cues(result)]}


def to_json(result: Transcript, timestamps: bool = True) -> str:
    return json.dumps(document(result, timestamps), ensure_ascii=False, indent=2) + "\n"


def to_jsonl(result: Transcript, timestamps: bool = True) -> str:
    """The json document on one line: several inputs make a valid JSON-lines stream."""
    return json.dumps(document(result, timestamps), ensure_ascii=False) + "\n"


FORMATS = ("txt", "json", "jsonl", "srt", "vtt", "tsv")


def render(result: Transcript, fmt: str, timestamps: bool = True) -> str:
    """A file result in one of FORMATS; ``timestamps`` only matters to json and jsonl (word/token lists)."""
    if fmt in ("json", "jsonl"):
        return (to_json if fmt == "json" else to_jsonl)(result, timestamps)
    writers = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}
    if fmt not in writers:
        raise ValueError(f"format={fmt!r}; expected one of {list(FORMATS)}")
    return writers[fmt](result)
