"""The one result type (sensevoice/result.py): what the model gives is kept whole, documents keep their shape, and
the batch job's Parquet schema derived from the type holds a document unchanged."""

from __future__ import annotations

import itertools
import json

import pytest

import model as sv
from testkit import speechlike
from sensevoice import batchio, pipeline, transcripts
from sensevoice.result import (PARTS, SPEAKERS, TAG_PROBS, TIMESTAMPS, Segment, SpeakerTurn, Transcript,
                               field_names)


def segment(start, end, text, **extra):
    return Segment(start, end, f"<|en|><|NEUTRAL|><|Speech|><|withitn|>{text}", text, "en", "NEUTRAL", "Speech",
                   "withitn", -0.25, 0.01, **extra)


def full_transcript() -> Transcript:
    """Every part asked for: timestamps, tag probabilities, speakers."""
    words = {"words": ["hi", "there"], "timestamp": [[100, 300], [350, 700]], "tokens": ["\u2581hi", "\u2581there"],
             "token_timestamp": [[100, 300], [350, 700]], "word_probability": [0.9, 0.5],
             "token_probability": [0.9, 0.5], "word_speaker": ["S1", "S1"]}
    tags = {"language": {"en": 0.75, "zh": 0.25}, "emotion": {"NEUTRAL": 1.0}, "event": {"Speech": 1.0}}
    first = segment(0, 800, "hi there", tag_probs=tags, speaker="S1", **words)
    second = segment(900, 2500, "yes", tag_probs=tags, speaker="S2", words=["yes"], timestamp=[[1000, 1400]],
                     tokens=["\u2581yes"], token_timestamp=[[1000, 1400]], word_probability=[0.7],
                     token_probability=[0.7], word_speaker=["S2"])
    return Transcript.join("k", 3000, [first, second], True, [SpeakerTurn(0, 850, "S1"), SpeakerTurn(850, 2500, "S2")])


def test_every_field_the_model_gives_is_a_field_of_the_segment(tiny_dir):
    """transcripts.decode_scores with every part on: each of its fields lands in the Segment (none dropped)."""
    transcriber = pipeline.Transcriber(tiny_dir, vad=False, threads=1)
    options = sv.DecodingOptions(output_timestamp=True, tag_topk=2)
    item = transcriber.prepare_wave(speechlike(1.5, seed=2), "x")
    scores, lens = transcriber.backend.ctc_scores(item.feats[0][None], item.feats[0].new_tensor([len(item.feats[0])])
                                                  .long(), options.language, options.textnorm)
    [decoded] = transcripts.decode_scores(scores, lens, ["x"], options, transcriber.special, transcriber.tokenizer)
    seg = pipeline.segment_entry(decoded, 500, 2000)
    assert set(decoded) - {"key"} == set(seg.to_dict()) - {"start_ms", "end_ms"}
    assert set(seg.to_dict()) == set(field_names(Segment, [TIMESTAMPS, TAG_PROBS]))
    with pytest.raises(TypeError, match="confidence"):
        pipeline.segment_entry({**decoded, "confidence": 1.0}, 0, 1000)


def test_documents_leave_out_the_parts_not_asked_for():
    full = full_transcript()
    doc = full.to_dict()
    assert list(doc) == list(field_names(Transcript, PARTS))
    assert list(doc["segments"][0]) == list(field_names(Segment, PARTS))
    assert doc["speakers"] == ["S1", "S2"] and doc["turns"][1] == {"start_ms": 850, "end_ms": 2500, "speaker": "S2"}
    assert doc["words"] == ["hi", "there", "yes"] and doc["word_speaker"] == ["S1", "S1", "S2"]
    assert (doc["text"].count("<|en|>"), doc["clean_text"], doc["language"]) == (2, "hi there yes", "en")
    bare = full.without(TIMESTAMPS).without(TAG_PROBS).without(SPEAKERS).to_dict()
    assert list(bare) == list(field_names(Transcript)) and list(bare["segments"][0]) == list(field_names(Segment))
    assert Segment.from_dict(doc["segments"][1]) == full.segments[1]
    with pytest.raises(ValueError, match="parts"):
        field_names(Segment, ["words"])


def test_an_empty_input_has_empty_lists_and_no_tags():
    doc = Transcript.join("quiet", 1000, [], True, []).to_dict()
    assert doc["segments"] == doc["words"] == doc["speakers"] == doc["word_speaker"] == [] and doc["language"] == ""


@pytest.mark.parametrize("parts", [c for n in range(len(PARTS) + 1) for c in itertools.combinations(PARTS, n)])
def test_parquet_shards_hold_a_document_as_jsonl_does(tmp_path, parts):
    """The schema derived from the type (batchio.schema) takes a document with those parts and reads it back
    equal, tag probabilities (Arrow maps) included."""
    transcript = full_transcript()
    for part in set(PARTS) - set(parts):
        transcript = transcript.without(part)
    row = {"key": "k", "source": "k.wav", "duration_s": 3.0,
           **{k: v for k, v in transcript.to_dict().items() if k != "key"}, "model": "m", "options": "{}"}
    for fmt in batchio.OUTPUT_FORMATS:
        path = batchio.Store(tmp_path / fmt, fmt, parts).write("results", [row])
        assert batchio.read_shard(path) == [row]
    assert json.loads(json.dumps(row)) == row
