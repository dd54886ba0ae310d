"""Token and word timestamps of a decoded path (``output_timestamp=True``): encoder frames to milliseconds, pieces
grouped into words, and each word's probability. ``transcripts.describe_path`` uses this module when timestamps
are asked for; the diarizer groups words the same way (``group_words``)."""

from __future__ import annotations

from typing import Any, Sequence

import model as sv


def frames_to_ms(start: int, end: int, n_speech_frames: int) -> list[int]:
    """Encoder frames (speech part, prompt excluded) -> [start_ms, end_ms] at frame centres."""
    half = sv.ENC_FRAME_MS // 2
    last = max(n_speech_frames * sv.ENC_FRAME_MS - half, 0)
    return [max(start * sv.ENC_FRAME_MS - half, 0), min(max(end * sv.ENC_FRAME_MS - half, 0), last)]


def group_words(pieces: list[str], spans: list[list[int]]) -> tuple[list[str], list[list[int]]]:
    """Merge sentencepiece pieces into words: "▁" starts a word (also a bare "▁" piece, before the piece it
    precedes: "▁on ▁ the ▁ 26 th" -> on, the, 26th); CJK characters and punctuation stand alone."""
    words: list[str] = []
    word_spans: list[list[int]] = []
    pending_start = False  # a bare "▁" piece was seen: the next piece starts a word
    for piece, span in zip(pieces, spans):
        starts_word = pending_start or piece.startswith("\u2581") or not words \
            or not (piece.isascii() and words[-1].isascii())
        piece = piece.lstrip("\u2581")
        pending_start = not piece and (pending_start or starts_word)
        if not piece:
            continue
        if starts_word or not piece.isalnum():
            words.append(piece)
            word_spans.append(list(span))
        else:
            words[-1] += piece
            word_spans[-1][1] = span[1]
    return words, word_spans


def word_piece_ranges(pieces: Sequence[str]) -> list[list[int]]:
    """[first, last] piece index of each word, grouped as group_words groups them."""
    return group_words(list(pieces), [[i, i] for i in range(len(pieces))])[1]


def timestamp_fields(path: list[tuple[int, int, int]], n_speech_frames: int, special: sv.SpecialTokens,
                     probs: Sequence[float] | None) -> dict[str, Any]:
    """A path's ``words``, ``timestamp`` (one [start_ms, end_ms] per word, FunASR's shape), ``tokens`` and
    ``token_timestamp``; with ``probs`` (each path token's), ``token_probability`` and ``word_probability`` (a
    word's is its pieces' minimum)."""
    # Tag tokens sit on the prompt frames; everything after them is speech on the audio timeline.
    keep = [i for i, (t, s, e) in enumerate(path) if t not in special.names and e > sv.N_PROMPT]
    speech = [(path[i][0], path[i][1] - sv.N_PROMPT, path[i][2] - sv.N_PROMPT) for i in keep]
    pieces = [special.pieces[t] for t, _, _ in speech]
    spans = [frames_to_ms(max(s, 0), e, n_speech_frames) for _, s, e in speech]
    ranges = word_piece_ranges(pieces)  # grouped once: words, their times and their probabilities
    words = ["".join(piece.lstrip("\u2581") for piece in pieces[a:b + 1]) for a, b in ranges]
    word_spans = [[spans[a][0], spans[b][1]] for a, b in ranges]
    fields: dict[str, Any] = {"words": words, "timestamp": word_spans, "tokens": pieces, "token_timestamp": spans}
    if probs is not None:
        token_probs = [round(probs[i], 4) for i in keep]
        fields.update(token_probability=token_probs, word_probability=[min(token_probs[a:b + 1]) for a, b in ranges])
    return fields
