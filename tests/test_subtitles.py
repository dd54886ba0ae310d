"""Writers (sensevoice/subtitles.py): cues from VAD segments, split at word boundaries with token timestamps."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from sensevoice import subtitles as st
from sensevoice.result import TIMESTAMP_KEYS, Segment, Transcript

W = st.WORD_START


def segment(start, end, pieces=None, spans=None, text=None, **tags):
    fields = {"start_ms": start, "end_ms": end, "text": "", "clean_text": text if text is not None else
              st.pieces_text(pieces or []), "language": "en", "emotion": "HAPPY", "event": "Speech", "itn": "woitn",
              "avg_logprob": -0.1, "no_speech_prob": 0.0, **tags}
    if pieces is not None:
        fields.update(tokens=list(pieces), token_timestamp=[list(s) for s in spans], words=[], timestamp=[])
    return Segment(**fields)


def result_of(*segments):
    return Transcript.join("clip", 120_000, segments, timestamps=any(s.tokens is not None for s in segments))


def english(n_words: int, start: int, word_ms: int = 400, gap_ms: int = 100):
    """n words of two pieces each ("▁wordN" + "x"), back to back on the timeline."""
    pieces, spans, t = [], [], start
    for i in range(n_words):
        half = word_ms // 2
        pieces += [f"{W}word{i}", "x"]
        spans += [[t, t + half], [t + half, t + word_ms]]
        t += word_ms + gap_ms
    return pieces, spans


def parse_srt(text):
    blocks = [b for b in text.strip().split("\n\n") if b]
    cues = []
    for n, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(n)
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})", lines[1])
        assert m, lines[1]
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, m.groups())
        cues.append(((h1 * 3600 + m1 * 60 + s1) * 1000 + ms1, (h2 * 3600 + m2 * 60 + s2) * 1000 + ms2,
                     " ".join(lines[2:])))
    return cues


# ----------------------------------------------------------------------------------------------- clock
@pytest.mark.parametrize("ms, srt, vtt", [(0, "00:00:00,000", "00:00:00.000"), (12345, "00:00:12,345", "00:00:12.345"),
                                          (3_723_004, "01:02:03,004", "01:02:03.004")])
def test_clock(ms, srt, vtt):
    assert st.clock(ms) == srt and st.clock(ms, ".") == vtt


# ----------------------------------------------------------------------------------------------- cues
def test_short_segment_is_one_cue_with_its_tags():
    pieces, spans = english(3, 1000)
    cues = st.cues(result_of(segment(900, 2600, pieces, spans)))
    assert cues == [st.Cue(900, 2600, "word0x word1x word2x", "en", "HAPPY", "Speech")]


def test_long_segment_is_split_at_word_boundaries():
    pieces, spans = english(40, 5000)  # 40 words, 20 s
    seg = segment(4800, 25200, pieces, spans)
    cues = st.segment_cues(seg)
    assert len(cues) > 2
    assert " ".join(c.text for c in cues) == seg.clean_text, "no piece lost or repeated, words kept whole"
    assert cues[0].start_ms == 4800 and cues[-1].end_ms == 25200
    for a, b in zip(cues, cues[1:]):
        assert a.end_ms <= b.start_ms
    for c in cues:
        assert c.end_ms - c.start_ms <= st.MAX_CUE_MS and len(c.text) <= st.MAX_CUE_CHARS
        assert all(re.fullmatch(r"word\d+x", w) for w in c.text.split()), c.text
        assert (c.language, c.emotion, c.event) == ("en", "HAPPY", "Speech")


def test_many_characters_split_a_short_segment():
    pieces = [f"{W}{'abcdefghij'[i % 10] * 9}" for i in range(20)]  # 20 words of 9 letters in 4 s
    spans = [[i * 200, i * 200 + 200] for i in range(20)]
    cues = st.segment_cues(segment(0, 4000, pieces, spans))
    assert len(cues) == 3 and all(len(c.text) <= st.MAX_CUE_CHARS for c in cues)


def test_sentence_end_closes_a_cue_early():
    pieces = [f"{W}one", f"{W}two", f"{W}three", ".", f"{W}four", f"{W}five"]
    spans = [[0, 600], [600, 1200], [1200, 1800], [1800, 1860], [1900, 2500], [2500, 8500]]
    cues = st.segment_cues(segment(0, 8600, pieces, spans))
    assert [c.text for c in cues] == ["one two three.", "four five"]


def test_cjk_segments_split_between_characters():
    chars = list("今天天气很好我们一起去公园散步吧") * 4
    spans = [[i * 300, i * 300 + 300] for i in range(len(chars))]
    cues = st.segment_cues(segment(0, len(chars) * 300, chars, spans, language="zh"))
    assert len(cues) > 1 and "".join(c.text for c in cues) == "".join(chars)
    assert all(c.end_ms - c.start_ms <= st.MAX_CUE_MS for c in cues)


def test_segment_without_timestamps_or_text():
    long_text = "word " * 50
    assert st.segment_cues(segment(0, 20000, text=long_text.strip())) == [
        st.Cue(0, 20000, long_text.strip(), "en", "HAPPY", "Speech")]  # nothing to split with
    assert st.segment_cues(segment(0, 1000, [], [])) == []
    assert st.segment_cues(segment(0, 1000, text="")) == []


# ----------------------------------------------------------------------------------------------- formats
@pytest.fixture()
def two_segments():
    pieces, spans = english(30, 61_000)
    return result_of(segment(500, 2400, *english(3, 600)), segment(60_900, 76_000, pieces, spans),
                     segment(80_000, 81_000, [], []))


def test_srt_parses_back_to_the_cues(two_segments):
    parsed = parse_srt(st.to_srt(two_segments))
    assert parsed == [(c.start_ms, c.end_ms, c.text) for c in st.cues(two_segments)]
    assert len(parsed) > 2


def test_vtt(two_segments):
    text = st.to_vtt(two_segments)
    assert text.startswith("WEBVTT\n\n")
    times = re.findall(r"^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})$", text, re.M)
    assert times[0] == ("00:00:00.500", "00:00:02.400") and len(times) == len(st.cues(two_segments))


def test_cue_text_wraps_in_two_lines(two_segments):
    for block in st.to_srt(two_segments).strip().split("\n\n"):
        assert all(len(line) <= st.LINE_CHARS for line in block.split("\n")[2:])


def test_tsv_rows_are_cues_with_tags(two_segments):
    rows = list(csv.reader(io.StringIO(st.to_tsv(two_segments)), delimiter="\t"))
    assert rows[0] == ["start", "end", "language", "emotion", "event", "text"]
    assert [r[:2] for r in rows[1:]] == [[str(c.start_ms), str(c.end_ms)] for c in st.cues(two_segments)]
    assert rows[1][2:] == ["en", "HAPPY", "Speech", "word0x word1x word2x"]


def test_txt_is_one_line_per_segment_with_text(two_segments):
    assert st.to_txt(two_segments).splitlines() == [s.clean_text for s in two_segments.segments[:2]]


def test_json_carries_cue_metadata_and_optional_timestamps(two_segments):
    doc = json.loads(st.to_json(two_segments))
    assert doc["cues"][0] == {"start_ms": 500, "end_ms": 2400, "text": "word0x word1x word2x", "language": "en",
                              "emotion": "HAPPY", "event": "Speech"}
    assert "tokens" in doc and "tokens" in doc["segments"][0]
    bare = json.loads(st.to_json(two_segments, timestamps=False))
    assert bare["cues"] == doc["cues"], "cues keep their word-bounded times"
    assert not set(TIMESTAMP_KEYS) & (set(bare) | set(bare["segments"][0]))
    assert {k: v for k, v in doc.items() if k != "cues"} == two_segments.to_dict(), "json is the result's document"


def test_jsonl_is_one_line_per_input(two_segments):
    text = st.to_jsonl(two_segments)
    assert text.count("\n") == 1 and json.loads(text) == json.loads(st.to_json(two_segments))


def test_render_dispatches_and_refuses_unknown_formats(two_segments):
    for fmt in st.FORMATS:
        assert st.render(two_segments, fmt)
    with pytest.raises(ValueError, match="format='doc'"):
        st.render(two_segments, "doc")


def test_empty_result():
    empty = result_of()
    assert st.to_srt(empty) == "" and st.to_txt(empty) == "" and st.to_vtt(empty) == "WEBVTT\n"
    assert st.to_tsv(empty).count("\n") == 1
