"""Every decoding option is validated up front; a wrong one names the value and what is accepted."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import model as sv
from sensevoice.decoding import apply_decoding_options, ctc_greedy
from sensevoice.richtext import split_rich_text
from sensevoice.timestamps import group_words
from testkit import speechlike
from helpers import load_parts


@pytest.fixture(scope="module")
def parts(tiny_dir):
    return load_parts(tiny_dir)


def decode(parts, **options):
    model, tokenizer, frontend, _ = parts
    results, _ = model.inference([speechlike(1.5)], key=["x"], tokenizer=tokenizer, frontend=frontend, **options)
    return results[0]


def test_defaults():
    options = sv.DecodingOptions.from_kwargs({})
    assert (options.language, options.textnorm, options.ban_emo_unk, options.output_timestamp) == ("auto", "woitn", False, False)
    assert options.blank_penalty == 0.0


@pytest.mark.parametrize("kwargs, expected", [
    ({"language": "zn"}, ("zh", "woitn")),
    ({"language": "yue", "use_itn": True}, ("yue", "withitn")),
    ({"text_norm": "withitn"}, ("auto", "withitn")),
    ({"textnorm": "woitn", "use_itn": False}, ("auto", "woitn")),
    ({"language": None}, ("auto", "woitn")),
])
def test_accepted_spellings(kwargs, expected):
    options = sv.DecodingOptions.from_kwargs(kwargs)
    assert (options.language, options.textnorm) == expected


@pytest.mark.parametrize("kwargs, error, message", [
    ({"language": "fr"}, ValueError, r"language='fr'; expected one of \['auto', 'zh', 'en', 'yue', 'ja', 'ko', 'nospeech'\]"),
    ({"language": "EN"}, ValueError, "language='EN'"),
    ({"language": 3}, TypeError, "must be a string"),
    ({"use_itn": "yes"}, TypeError, "use_itn='yes' must be True or False"),
    ({"use_itn": 1}, TypeError, "use_itn=1"),
    ({"textnorm": "itn"}, ValueError, r"textnorm='itn'; expected one of \['withitn', 'woitn'\]"),
    ({"textnorm": "withitn", "use_itn": False}, ValueError, "contradicts"),
    ({"ban_emo_unk": "no"}, TypeError, "ban_emo_unk='no'"),
    ({"output_timestamp": None}, TypeError, "output_timestamp=None"),
    ({"blank_penalty": -0.5}, ValueError, r"blank_penalty=-0.5 must be a finite number >= 0"),
    ({"blank_penalty": float("nan")}, ValueError, "blank_penalty=nan"),
    ({"blank_penalty": "1"}, ValueError, "blank_penalty='1'"),
    ({"blank_penalty": True}, ValueError, "blank_penalty=True"),
    ({"fs": 0}, ValueError, "fs=0"),
    ({"fs": "16k"}, ValueError, "fs='16k'"),
])
def test_bad_options_raise_before_any_work(parts, kwargs, error, message):
    with pytest.raises(error, match=message):
        decode(parts, **kwargs)


@pytest.mark.parametrize("fields, error, message", [
    ({"language": "fr"}, ValueError, "language='fr'"),
    ({"textnorm": "itn"}, ValueError, "textnorm='itn'"),
    ({"blank_penalty": -1}, ValueError, "blank_penalty=-1"),
    ({"ban_emo_unk": "yes"}, TypeError, "ban_emo_unk='yes'"),
    ({"fs": 8000.5}, ValueError, "fs=8000.5"),
])
def test_options_validate_on_construction(fields, error, message):
    """Every door builds DecodingOptions directly (CLI, service, pipeline): the check is in the type itself."""
    with pytest.raises(error, match=message):
        sv.DecodingOptions(**fields)


def test_construction_normalises_aliases_and_numbers():
    options = sv.DecodingOptions(language="zn", blank_penalty=1, ban_emo_unk=np.bool_(True))
    assert (options.language, options.blank_penalty, options.ban_emo_unk) == ("zh", 1.0, True)
    assert type(options.blank_penalty) is float and type(options.ban_emo_unk) is bool
    assert options == sv.DecodingOptions(language="zh", blank_penalty=1.0, ban_emo_unk=True)  # equal: batchable
    assert not options.use_itn and sv.DecodingOptions(textnorm="withitn").use_itn


def test_a_bare_word_boundary_piece_starts_the_next_word():
    """sentencepiece may emit "▁" alone before a piece: "▁on ▁ the ▁ 26 th" is on / the / 26th, not "onthe26th"."""
    pieces = ["\u2581on", "\u2581", "the", "\u2581", "26", "th", "\u2581", "你", "好"]
    spans = [[i * 10, i * 10 + 5] for i in range(len(pieces))]
    words, word_spans = group_words(pieces, spans)
    assert words == ["on", "the", "26th", "你", "好"]
    assert word_spans == [[0, 5], [20, 25], [40, 55], [70, 75], [80, 85]]


def test_zn_alias_decodes_like_zh(parts):
    assert decode(parts, language="zn")["text"] == decode(parts, language="zh")["text"]


def test_language_changes_the_prompt(parts):
    model, _, _, _ = parts
    feats = np.random.default_rng(0).standard_normal((1, 30, 560)).astype(np.float32)
    x, lens = torch.from_numpy(feats), torch.tensor([30])
    with torch.no_grad():
        a, _ = model.ctc_logprobs(x, lens, "en", "woitn")
        b, _ = model.ctc_logprobs(x, lens, "ja", "woitn")
        c, _ = model.ctc_logprobs(x, lens, "en", "withitn")
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


@contextlib.contextmanager
def boosted(model, token_id, nats):
    """Raise one token's CTC output bias by ``nats`` for the block; the module-scoped model is restored after."""
    with torch.no_grad():
        model.ctc.ctc_lo.bias[token_id] += nats
    try:
        yield
    finally:
        with torch.no_grad():
            model.ctc.ctc_lo.bias[token_id] -= nats


def test_ban_emo_unk_removes_the_tag(parts):
    model, _, _, _ = parts
    with boosted(model, model.special.emotion_unknown, 100.0):  # make <|EMO_UNKNOWN|> win everywhere, then ban it
        assert "<|EMO_UNKNOWN|>" in decode(parts)["text"]
        assert "<|EMO_UNKNOWN|>" not in decode(parts, ban_emo_unk=True)["text"]


def test_blank_penalty_turns_a_close_blank_into_the_runner_up():
    special = sv.SpecialTokens.from_pieces(["<unk>", *(sv.tag(n) for n in (*sv.LANGUAGES[1:], *sv.TEXTNORMS)),
                                            sv.tag("EMO_UNKNOWN"), "▁two"])
    two, english = special.pieces.index("▁two"), special.language["en"]
    # (1, 4 tag frames + 2 speech frames, V) log-probs: blank leads everywhere at 0.6; the runner-up at 0.4 is
    # <|en|> on the tag frames and "two" on the speech frames
    logp = torch.full((1, sv.N_PROMPT + 2, len(special.pieces)), -30.0)
    logp[0, :, special.blank] = math.log(0.6)
    logp[0, :sv.N_PROMPT, english], logp[0, sv.N_PROMPT:, two] = math.log(0.4), math.log(0.4)
    lens = torch.tensor([logp.shape[1]])

    def tokens(penalty):
        options = sv.DecodingOptions.from_kwargs({"blank_penalty": penalty})
        scores = apply_decoding_options(logp.clone(), options, special)
        return [t for t, _, _ in ctc_greedy(scores, lens, special.blank)[0]]

    assert tokens(0) == []
    assert tokens(0.3) == []  # log(0.6) - 0.3 still beats log(0.4)
    assert tokens(1.0) == [two]  # both speech frames now pick "two" (one token); the tag frames keep blank


def test_blank_penalty_reaches_inference(parts):
    model, _, _, _ = parts
    with boosted(model, model.special.blank, 100.0):  # blank wins every frame; a 200 penalty on speech frames
        assert decode(parts)["text"] == decode(parts, blank_penalty=0)["text"] == ""
        penalised = decode(parts, blank_penalty=200.0)
        assert penalised["clean_text"] and penalised["language"] == ""  # text, but the tag frames stayed blank


def test_result_fields(parts):
    result = decode(parts, output_timestamp=True)
    assert {"key", "text", "language", "emotion", "event", "itn", "clean_text", "words", "timestamp", "tokens",
            "token_timestamp"} <= set(result)
    assert len(result["words"]) == len(result["timestamp"]) and len(result["tokens"]) == len(result["token_timestamp"])


@pytest.mark.parametrize("text, fields", [
    ("<|en|><|NEUTRAL|><|Speech|><|woitn|>hello world",
     {"language": "en", "emotion": "NEUTRAL", "event": "Speech", "itn": "woitn", "clean_text": "hello world"}),
    ("<|zh|><|HAPPY|><|BGM|><|withitn|>你好。",
     {"language": "zh", "emotion": "HAPPY", "event": "BGM", "itn": "withitn", "clean_text": "你好。"}),
    ("<|nospeech|><|EMO_UNKNOWN|><|Applause|><|woitn|>",
     {"language": "nospeech", "emotion": "EMO_UNKNOWN", "event": "Applause", "itn": "woitn", "clean_text": ""}),
    ("plain", {"language": "", "emotion": "", "event": "", "itn": "", "clean_text": "plain"}),
])
def test_split_rich_text(text, fields):
    assert split_rich_text(text) == fields


def test_emoji_form():
    from sensevoice.richtext import clean_text, emoji_text

    assert emoji_text("<|en|><|HAPPY|><|Applause|><|woitn|>well done") == "👏well done😊"
    assert clean_text("<|en|><|HAPPY|><|Applause|><|woitn|>well done") == "well done"


# ----------------------------------------------------------------------------------------------- one declaration
@dataclass(frozen=True)
class WithSpeakers(sv.DecodingOptions):
    """A copy of the options type with one field more, declared as a new option is (one field, nothing else)."""

    speakers: int = sv.option(0, "label up to N speakers (0: off)", range=(0, 8), metavar="N")


def test_the_cli_reads_the_declaration_from_model_py_s_source_as_the_type_has_it():
    from sensevoice import optionspec

    assert optionspec.declared() == optionspec.of_type(sv.DecodingOptions)
    assert [o.name for o in optionspec.declared()] == [f.name for f in dataclasses.fields(sv.DecodingOptions)]


def test_a_new_field_appears_in_every_door():
    """CLI flag, HTTP form fields (both routes), WebSocket field, batch settings and FunASR kwargs, each with the
    declared range: a new option needs no door edited."""
    import argparse
    import io

    from starlette.datastructures import FormData, UploadFile

    from sensevoice import argtypes, batch, optionspec
    from sensevoice.serve import fields, websocket

    assert WithSpeakers.from_kwargs({"speakers": 3}).speakers == 3  # FunASR's kwargs (AutoModel.generate)
    with pytest.raises(ValueError, match=r"speakers=9 must be an integer in \[0, 8\]"):
        WithSpeakers.from_kwargs({"speakers": 9})

    parser = argparse.ArgumentParser(exit_on_error=False)
    argtypes.add_decoding_arguments(parser, options=optionspec.of_type(WithSpeakers))
    assert argtypes.decoding_options(parser.parse_args(["--speakers", "3"]), WithSpeakers).speakers == 3
    with pytest.raises(argparse.ArgumentError, match="expected an integer from 0 to 8, got '9'"):
        parser.parse_args(["--speakers", "9"])

    def form(upload_field="file", **values):
        return FormData([(upload_field, UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")), *values.items()])

    base = WithSpeakers()
    assert fields.parse_openai(form(speakers="3"), "m", base).options.speakers == 3
    assert fields.parse_asr(form("files", speakers="2"), base)[0].speakers == 2
    with pytest.raises(fields.ApiError, match="speakers=9") as error:
        fields.parse_openai(form(speakers="9"), "m", base)
    assert (error.value.status, error.value.param) == (422, "speakers")

    assert websocket.parse_first({"mode": "offline", "speakers": 4}, base).options.speakers == 4
    with pytest.raises(websocket.StreamError, match="speakers=9"):
        websocket.parse_first({"speakers": 9}, base)

    model_dir = argparse.Namespace(path="m", identity=argparse.Namespace(id="custom:m@0"))
    door = argparse.Namespace(model_dir=model_dir, backend="torch", precision="fp32", vad=True, timestamps=False,
                              speaker_encoder="resemblyzer")
    assert batch.settings(door, WithSpeakers(speakers=5))["speakers"] == 5


def test_every_door_takes_the_search_options_with_one_range():
    """beam_size had three ranges (CLI >= 1, HTTP >= 0, the type [1, 64]); now the type's in each door."""
    import argparse
    import io

    from starlette.datastructures import FormData, UploadFile

    from sensevoice import argtypes
    from sensevoice.serve import fields, websocket

    parser = argparse.ArgumentParser(exit_on_error=False)
    argtypes.add_decoding_arguments(parser)
    for bad in ("0", "65"):
        with pytest.raises(argparse.ArgumentError, match="from 1 to 64"):
            parser.parse_args(["--beam-size", bad])
        upload = UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")
        with pytest.raises(fields.ApiError, match=rf"beam_size={bad} must be an integer in \[1, 64\]"):
            fields.parse_openai(FormData([("file", upload), ("beam_size", bad)]), "m")
        with pytest.raises(websocket.StreamError, match=rf"beam_size={bad} must be an integer in \[1, 64\]"):
            websocket.parse_first({"beam_size": int(bad)}, sv.DecodingOptions())
    args = parser.parse_args(["--beam-size", "8", "--hotwords", "foo bar", "--no-itn", "--language", "zn"])
    assert argtypes.decoding_options(args) == sv.DecodingOptions(beam_size=8, hotwords=("foo", "bar"), language="zh")


def test_a_stream_s_null_field_is_not_given_in_every_options_type():
    """JSON null reads as an absent key for the decoding fields as for the diarization ones (both through one
    reading of a message's fields); a form's refusal names the field at fault as its param."""
    import io

    from starlette.datastructures import FormData, UploadFile

    from sensevoice.serve import fields, websocket

    base = sv.DecodingOptions(beam_size=3)
    settings = websocket.parse_first({"itn": None, "hotwords": None, "beam_size": None, "num_speakers": None}, base)
    assert settings.options == dataclasses.replace(base, textnorm="withitn", output_timestamp=True)
    assert settings.diarization is None
    with pytest.raises(websocket.StreamError, match="ban_emo_unk='yes' must be true or false"):
        websocket.parse_first({"ban_emo_unk": "yes"}, base)
    upload = UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")
    with pytest.raises(fields.ApiError, match="hotword") as error:
        fields.parse_openai(FormData([("file", upload), ("hotwords", '{" ": 1}')]), "m")
    assert error.value.param == "hotword"


# ----------------------------------------------------------------------------------------------- diarization's twin
def with_turn_windows():
    """A copy of the diarization options type with one field more, declared as a new one is (one field)."""
    from sensevoice.diarize import DiarizationOptions

    @dataclass(frozen=True)
    class WithTurnWindows(DiarizationOptions):
        min_turn_windows: int = sv.option(1, "a turn lasts at least N windows", range=(1, 8), metavar="N")

    return WithTurnWindows


def test_the_cli_reads_the_diarization_declaration_from_diarize_py_s_source_as_the_type_has_it():
    from sensevoice import optionspec
    from sensevoice.diarize import DiarizationOptions

    assert optionspec.declared(*optionspec.DIARIZATION) == optionspec.of_type(DiarizationOptions)
    assert optionspec.declared_switch(*optionspec.DIARIZATION) == optionspec.switch_of(DiarizationOptions)
    assert [(o.name, o.optional) for o in optionspec.of_type(DiarizationOptions)] == [
        ("num_speakers", True), ("min_speakers", False), ("max_speakers", False)]


def test_a_new_diarization_field_appears_in_every_door():
    """CLI flag (implying --diarize), HTTP form field, WebSocket field and batch settings, each with the declared
    range and one check (the type's): a new diarization option needs no door edited."""
    import argparse
    import io

    from starlette.datastructures import FormData, UploadFile

    from sensevoice import argtypes, batch
    from sensevoice.serve import fields, websocket

    twin = with_turn_windows()
    parser = argparse.ArgumentParser(exit_on_error=False)
    argtypes.add_diarization_arguments(parser, twin)
    assert argtypes.diarization_options(parser.parse_args([]), twin) is None
    assert argtypes.diarization_options(parser.parse_args(["--diarize"]), twin) == twin()
    given = parser.parse_args(["--min-turn-windows", "3"])
    assert argtypes.diarization_options(given, twin) == twin(min_turn_windows=3)
    with pytest.raises(argparse.ArgumentError, match="expected an integer from 1 to 8, got '9'"):
        parser.parse_args(["--min-turn-windows", "9"])
    with pytest.raises(argtypes.UsageError, match="--min-speakers=3 is more than --max-speakers=2"):
        argtypes.diarization_options(parser.parse_args(["--min-speakers", "3", "--max-speakers", "2"]), twin)

    def form(**values):
        return FormData([("file", UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")), *values.items()])

    assert fields.parse_openai(form(), "m", diarization=twin).diarization is None
    asked = fields.parse_openai(form(min_turn_windows="3"), "m", diarization=twin).diarization
    assert asked == twin(min_turn_windows=3)
    assert fields.parse_openai(form(diarize="true"), "m", diarization=twin).diarization == twin()
    with pytest.raises(fields.ApiError, match=r"min_turn_windows=9 must be an integer in \[1, 8\]") as error:
        fields.parse_openai(form(min_turn_windows="9"), "m", diarization=twin)
    assert (error.value.status, error.value.param) == (422, "min_turn_windows")
    with pytest.raises(fields.ApiError, match="unknown form field"):  # the real type has no such field
        fields.parse_openai(form(min_turn_windows="3"), "m")

    base = sv.DecodingOptions()
    assert websocket.parse_first({"mode": "online"}, base, twin).diarization is None
    assert websocket.parse_first({"min_turn_windows": 4}, base, twin).diarization == twin(min_turn_windows=4)
    assert websocket.parse_first({"diarize": True, "max_speakers": 3}, base, twin).diarization == twin(max_speakers=3)
    with pytest.raises(websocket.StreamError, match="min_turn_windows=9"):
        websocket.parse_first({"min_turn_windows": 9}, base, twin)
    with pytest.raises(websocket.StreamError, match="diarize='yes' must be true or false"):
        websocket.parse_first({"diarize": "yes"}, base, twin)

    model_dir = argparse.Namespace(path="m", identity=argparse.Namespace(id="custom:m@0"))
    door = argparse.Namespace(model_dir=model_dir, backend="torch", precision="fp32", vad=True, timestamps=False,
                              speaker_encoder="resemblyzer")
    plain, diarized = batch.settings(door, base, None), batch.settings(door, base, twin(min_turn_windows=5))
    assert plain["diarization"] is plain["speaker_encoder"] is plain["clustering"] is None
    assert diarized["diarization"] == {"num_speakers": None, "min_speakers": 1, "max_speakers": 32,
                                       "min_turn_windows": 5}
    # the library's clustering constants too: a rerun after they are re-tuned is refused, not mixed
    from sensevoice import diarize

    assert diarized["speaker_encoder"] == "resemblyzer"
    assert diarized["clustering"] == dataclasses.asdict(diarize.DEFAULT_CLUSTERING)


@pytest.mark.parametrize("door, value, message", [
    ("cli", ["--num-speakers", "0"], "expected an integer from 1 to 32, got '0'"),
    ("form", {"num_speakers": "0"}, r"num_speakers=0 must be an integer in \[1, 32\]"),
    ("form", {"num_speakers": "two"}, "num_speakers='two'; expected an integer"),
    ("form", {"min_speakers": "3", "max_speakers": "2"}, "min_speakers=3 is more than max_speakers=2"),
    ("stream", {"num_speakers": 0}, r"num_speakers=0 must be an integer in \[1, 32\]"),
    ("stream", {"num_speakers": 2.5}, "num_speakers=2.5"),
    ("stream", {"num_speakers": 5, "max_speakers": 3}, "num_speakers=5 is outside"),
])
def test_every_door_refuses_bad_speaker_counts_with_the_type_s_message(door, value, message):
    import argparse
    import io

    from starlette.datastructures import FormData, UploadFile

    from sensevoice import argtypes
    from sensevoice.serve import fields, websocket

    if door == "cli":
        parser = argparse.ArgumentParser(exit_on_error=False)
        argtypes.add_diarization_arguments(parser)
        with pytest.raises(argparse.ArgumentError, match=message):
            parser.parse_args(value)
    elif door == "form":
        form = FormData([("file", UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")), *value.items()])
        with pytest.raises(fields.ApiError, match=message):
            fields.parse_openai(form, "m")
    else:
        with pytest.raises(websocket.StreamError, match=message):
            websocket.parse_first(value, sv.DecodingOptions())
