"""sensevoice/decoding.py and the confidence fields: options, beam search vs greedy, hotword biasing (and the
take-back of a failed partial match), script restriction, tag probabilities, and every door that shows them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile
import torch
from fastapi.testclient import TestClient

import model as sv
from testkit import speechlike
from helpers import load_parts
from sensevoice import cli, decoding, transcripts
from sensevoice.pipeline import Transcriber
from sensevoice.serve.app import ServeConfig, create_app
from sensevoice.serve.batcher import Batcher


@pytest.fixture(scope="module")
def parts(tiny_dir):
    return load_parts(tiny_dir)


@pytest.fixture(scope="module")
def special(parts):
    return parts[0].special or sv.SpecialTokens.from_pieces(sv.tokenizer_pieces(parts[1]))


def piece_id(special, piece):
    return special.pieces.index(piece)


def peaked_scores(special, frames: list[dict[int, float]], n_vocab: int | None = None) -> torch.Tensor:
    """(1, 4 + T, V) log-probs: tag frames on <|en|><|NEUTRAL|><|Speech|><|woitn|>, then each text frame's given
    log-probs (the rest of the mass spread over the other pieces)."""
    V = n_vocab or len(special.pieces)
    names = {name: i for i, name in special.names.items()}
    rows = [{names["en"]: 0.0}, {names["NEUTRAL"]: 0.0}, {names["Speech"]: 0.0}, {names["woitn"]: 0.0}] + frames
    scores = torch.full((1, len(rows), V), -30.0)
    for t, row in enumerate(rows):
        for k, logp in row.items():
            scores[0, t, k] = logp
    return scores.log_softmax(-1)


def decode(scores, special, tokenizer, **options):
    return transcripts.decode_scores(scores.clone(), torch.tensor([scores.shape[1]]), ["x"],
                                     sv.DecodingOptions(**options), special, tokenizer)[0]


# ----------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("fields, error, message", [
    ({"beam_size": 0}, ValueError, r"beam_size=0 must be an integer in \[1, 64\]"),
    ({"beam_size": 2.0}, ValueError, "beam_size=2.0"),
    ({"beam_size": True}, ValueError, "beam_size=True"),
    ({"tag_topk": -1}, ValueError, "tag_topk=-1"),
    ({"hotword_weight": -1}, ValueError, "hotword_weight=-1"),
    ({"hotword_weight": float("inf")}, ValueError, "hotword_weight=inf"),
    ({"hotwords": "zorbel"}, TypeError, "hotwords='zorbel' must be a tuple"),
    ({"hotwords": ("",)}, ValueError, "non-empty phrase"),
    ({"hotwords": (("zorbel", -2),)}, ValueError, "weight of 'zorbel'=-2"),
    ({"restrict_language": "yes"}, TypeError, "restrict_language='yes' must be True or False"),
])
def test_search_options_validate_on_construction(fields, error, message):
    with pytest.raises(error, match=message):
        sv.DecodingOptions(**fields)


def test_hotwords_from_funasr_kwargs(tmp_path):
    listed = tmp_path / "hotwords.txt"
    listed.write_text("zorbel\nkalu mira 3.5\n\n")
    assert sv.DecodingOptions.from_kwargs({"hotword": str(listed)}).hotwords == (("zorbel", None), ("kalu mira", 3.5))
    options = sv.DecodingOptions.from_kwargs({"hotword": "zorbel  kalu"})
    assert options.hotwords == (("zorbel", None), ("kalu", None))
    assert options == sv.DecodingOptions(hotwords=["zorbel", "kalu"]) and hash(options)  # batchable
    assert options.searches and not sv.DecodingOptions().searches
    with pytest.raises(ValueError, match="not both"):
        sv.DecodingOptions.from_kwargs({"hotword": "a", "hotwords": ("b",)})


# ----------------------------------------------------------------------------------------------- search
def test_beam_one_is_greedy_and_beam_search_finds_the_greedy_path_on_peaked_scores(parts, special):
    _, tokenizer, _, _ = parts
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.normal(size=(2, 40, len(special.pieces))).astype(np.float32) * 3).log_softmax(-1)
    lens = torch.tensor([40, 31])
    greedy = transcripts.decode_scores(scores.clone(), lens, ["a", "b"], sv.DecodingOptions(output_timestamp=True),
                                       special, tokenizer)
    beam1 = transcripts.decode_scores(scores.clone(), lens, ["a", "b"],
                                      sv.DecodingOptions(beam_size=1, tag_topk=2, output_timestamp=True), special,
                                      tokenizer)
    for g, b in zip(greedy, beam1):
        assert {k: v for k, v in b.items() if k != "tag_probs"} == g
    a, t = piece_id(special, "▁the"), piece_id(special, "▁cat")
    peaked = peaked_scores(special, [{a: -0.01}, {0: -0.01}, {t: -0.05}, {t: -0.1}, {0: -0.01}])
    assert decode(peaked, special, tokenizer, beam_size=4)["text"] == decode(peaked, special, tokenizer)["text"]
    assert decode(peaked, special, tokenizer, beam_size=4)["text"].endswith("the cat")


def test_beam_search_sums_the_paths_of_a_prefix(parts, special):
    """Greedy takes the single best frame labels (blank, blank); the prefix "a" wins once its paths are summed."""
    _, tokenizer, _, _ = parts
    a = piece_id(special, "▁cat")
    frames = [{0: math.log(0.4), a: math.log(0.35)}, {0: math.log(0.4), a: math.log(0.35)}]
    assert decode(peaked_scores(special, frames), special, tokenizer)["clean_text"] == ""
    assert decode(peaked_scores(special, frames), special, tokenizer, beam_size=4)["clean_text"] == "cat"


def test_hotword_bias_recovers_a_runner_up_piece(parts, special):
    _, tokenizer, _, _ = parts
    ids = decoding.encode_pieces(tokenizer, "cat")
    assert len(ids) == 1
    dog = piece_id(special, "▁dog")
    frames = [{dog: math.log(0.5), ids[0]: math.log(0.3)}, {0: -0.01}]
    assert decode(peaked_scores(special, frames), special, tokenizer, beam_size=4)["clean_text"] == "dog"
    assert decode(peaked_scores(special, frames), special, tokenizer, hotwords=("cat",))["clean_text"] == "cat"
    assert decode(peaked_scores(special, frames), special, tokenizer, hotwords=("cat",),
                  hotword_weight=0.1)["clean_text"] == "dog"  # a bonus below the gap changes nothing


def test_a_failed_partial_match_gives_its_bonus_back(parts, special):
    _, tokenizer, _, _ = parts
    x, y, z, w = (piece_id(special, p) for p in ("▁one", "▁two", "▁six", "▁ten"))
    graph = decoding.ContextGraph.build([([x, y], 2.0)])
    delta, node = graph.step(0, x)
    assert delta == 2.0 and node != 0
    assert graph.step(node, y) == (2.0, 0)  # completed: kept, back at the root
    assert graph.step(node, z) == (-2.0, 0)  # failed: taken back
    # "ten six" beats "one six" by 0.3 nats; biased towards "one two", "one" leads after frame 1, but the match
    # fails at "six" and the bonus is taken back, so "ten six" wins again.
    frames = [{w: math.log(0.5), x: math.log(0.37)}, {0: -0.01}, {z: -0.01}, {0: -0.01}]
    assert decode(peaked_scores(special, frames), special, tokenizer, hotwords=("one two",))["clean_text"] == "ten six"


def test_restrict_language_suppresses_other_scripts(parts, special):
    _, tokenizer, _, _ = parts
    kana = next(i for i, p in enumerate(special.pieces) if decoding.scripts_of(p) == {"kana"})
    cat = piece_id(special, "▁cat")
    frames = [{kana: math.log(0.6), cat: math.log(0.3)}, {0: -0.01}]
    assert decoding.scripts_of(decode(peaked_scores(special, frames), special, tokenizer)["clean_text"]) == {"kana"}
    restricted = decode(peaked_scores(special, frames), special, tokenizer, language="en", restrict_language=True)
    assert restricted["clean_text"] == "cat"
    assert set(decoding.suppressed(special, "zh").tolist()).isdisjoint(  # zh keeps Latin (code-switching)
        i for i, p in enumerate(special.pieces) if decoding.scripts_of(p) == {"latin"})


@pytest.mark.parametrize("language", ["en", "zh", "yue", "ja", "ko"])
def test_restrict_language_never_suppresses_the_blank_or_control_pieces(special, language):
    """The blank is piece 0, ``<unk>``: a Latin-looking name. Suppressing it under ja/ko made every frame emit a
    piece (CER over 100 % on the demo test split before this was fixed)."""
    suppressed = set(decoding.suppressed(special, language).tolist())
    assert special.blank not in suppressed
    assert not suppressed & {i for i, p in enumerate(special.pieces) if p in ("<unk>", "<s>", "</s>")}
    assert not suppressed & set(special.names)


def test_tag_probabilities(parts, special):
    _, tokenizer, _, _ = parts
    result = decode(peaked_scores(special, [{0: -0.01}]), special, tokenizer, tag_topk=3)
    tags = result["tag_probs"]
    assert list(tags) == ["language", "emotion", "event"] and all(len(v) == 3 for v in tags.values())
    assert next(iter(tags["language"])) == "en" and tags["language"]["en"] > 0.99
    assert next(iter(tags["emotion"])) == "NEUTRAL" and next(iter(tags["event"])) == "Speech"
    assert all(0 <= p <= 1 for family in tags.values() for p in family.values())


# ----------------------------------------------------------------------------------------------- confidence
def test_confidence_fields_are_posteriors(parts, special):
    _, tokenizer, _, _ = parts
    cat, dog = piece_id(special, "▁cat"), piece_id(special, "▁dog")
    frames = [{cat: math.log(0.9), 0: math.log(0.1)}, {0: 0.0}, {dog: math.log(0.4), cat: math.log(0.3),
                                                                0: math.log(0.3)}, {0: 0.0}]
    result = decode(peaked_scores(special, frames), special, tokenizer, output_timestamp=True)
    assert result["words"] == ["cat", "dog"]
    assert result["word_probability"] == pytest.approx([0.9, 0.4], abs=1e-3)
    assert result["token_probability"] == result["word_probability"]
    assert result["avg_logprob"] == pytest.approx((math.log(0.9) + math.log(0.4)) / 4, abs=1e-3)
    assert 0 <= result["no_speech_prob"] < 0.01  # the language frame says <|en|>
    logits = peaked_scores(special, frames) * 1.0 + 7.0  # raw logits (ONNX Runtime) give the same posteriors
    assert decode(logits, special, tokenizer, output_timestamp=True)["word_probability"] == result["word_probability"]


def test_automodel_kwargs_reach_the_search(parts):
    model, tokenizer, frontend, _ = parts
    [result], _ = model.inference([speechlike(1.5)], key=["x"], tokenizer=tokenizer, frontend=frontend,
                                  beam_size=3, hotword="cat dog", tag_topk=2, restrict_language=True,
                                  language="en", output_timestamp=True)
    assert set(result["tag_probs"]) == {"language", "emotion", "event"}
    assert {"avg_logprob", "no_speech_prob", "word_probability", "token_probability"} <= set(result)
    assert not decoding.scripts_of(result["clean_text"]) - {"latin"}


def test_cli_json_and_verbose_json_carry_confidence(capsys, tiny_dir, tmp_path):
    wav = tmp_path / "a.wav"
    soundfile.write(wav, speechlike(2.0), 16000)
    code = cli.main(["transcribe", str(wav), "--model", str(tiny_dir), "--no-vad", "-f", "json", "--timestamps",
                     "--beam-size", "3", "--tag-topk", "2", "--hotwords", "cat dog"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    [segment] = doc["segments"]
    assert segment["avg_logprob"] <= 0 and 0 <= segment["no_speech_prob"] <= 1
    assert len(segment["tag_probs"]["emotion"]) == 2
    assert len(doc["word_probability"]) == len(doc["words"])
    assert all(0 <= p <= 1 for p in doc["word_probability"] + doc["token_probability"])

    app = create_app(Batcher(Transcriber(tiny_dir, vad=False, threads=2), 60.0, 5.0, 8), ServeConfig())
    with TestClient(app) as client:
        answer = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav.read_bytes())},
                             data={"response_format": "verbose_json", "timestamp_granularities[]": "word",
                                   "prompt": "cat dog", "beam_size": "2"})
        bad = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav.read_bytes())},
                          data={"beam_size": "0"})
    body = answer.json()
    assert answer.status_code == 200, body
    assert all(s["avg_logprob"] <= 0 and 0 <= s["no_speech_prob"] <= 1 for s in body["segments"])
    assert all(0 <= w["probability"] <= 1 for w in body["words"])
    assert bad.status_code == 422 and "beam_size=0" in bad.json()["error"]["message"]


def test_onnx_backend_gives_the_torch_beam_result(tiny_dir):
    options = sv.DecodingOptions(beam_size=4, output_timestamp=True, hotwords=("cat",))
    audio = speechlike(2.0, seed=3)
    torch_result = Transcriber(tiny_dir, vad=False, threads=2).transcribe(audio, options=options)
    ort = Transcriber(tiny_dir, backend=sv.BackendOptions(backend="onnxruntime"), vad=False, threads=2)
    ort_result = ort.transcribe(audio, options=options)
    assert ort_result.text == torch_result.text and ort_result.tokens == torch_result.tokens
    assert ort_result.word_probability == pytest.approx(torch_result.word_probability, abs=1e-3)
    assert ort_result.segments[0].avg_logprob == pytest.approx(torch_result.segments[0].avg_logprob, abs=1e-3)
