"""Open-vocabulary text, the new events, the extra speech engines and the generalisation test splits
(sensevoice.training.data: opentext, sounds, engines, corpus.make_testset). Fast: the slow sources
(manual pages, wordfreq) are not loaded here."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from sensevoice.training.data import corpus, engines, opentext, sounds
from sensevoice.training.data.__main__ import main as data_main
from sensevoice.training.data.text import LANGS

from testkit import ROOT

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (install with: bash scripts/install_system_deps.sh)")
NEW_EVENTS = ("Cry", "Cough", "Sneeze", "Breath")


def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} not installed (install with: bash scripts/setup_env.sh)")


# ----------------------------------------------------------------------------------------------- sources
def test_every_language_has_train_and_open_sources_with_a_licence():
    for lang in LANGS:
        assert opentext.source_names(lang, "train"), lang
        assert opentext.source_names(lang, "open"), lang
    for source in opentext.SOURCES.values():
        assert source.split in opentext.SIDES and source.licence and source.package.startswith(("pip ", "apt "))
    table = opentext.sources_markdown()
    assert table.count("\n") == len(opentext.SOURCES) + 2 and "| konlpy-kolaw | ko | open |" in table


def test_documents_go_to_one_side_by_their_name():
    sides = {opentext.doc_side(f"hkcancor/FC-{i:03d}.cha") for i in range(40)}
    assert sides == {"train", "open"}
    assert opentext.doc_side("fortunes/wisdom") == opentext.doc_side("fortunes/wisdom")


@pytest.mark.parametrize("lang, module", [("yue", "pycantonese"), ("ko", "konlpy")])
def test_sources_load_and_the_open_side_shares_no_sentence_with_training(lang, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed (install with: bash scripts/setup_env.sh)")
    names = [n for n in opentext.source_names(lang, "train") if not n.startswith(("wordfreq", "faker"))]
    train = {s.spoken for name in names for s in opentext.source_sentences(name)}
    open_pool = opentext.pool(lang, "open")
    assert len(train) > 100 and len(open_pool) > 50
    assert not train & {s.spoken for s in open_pool}
    rng = np.random.default_rng(0)
    picked = opentext.random_open_sentence(lang, "open", rng)
    assert picked in open_pool and picked.template.split(":")[0] in opentext.source_names(lang, "open")


@pytest.mark.skipif(not opentext.FORTUNE_DIR.is_dir(), reason="fortunes not installed (install with: bash "
                    "scripts/install_system_deps.sh)")
def test_fortune_files_split_into_disjoint_sources():
    # Some fortunes appear in two files: the open pool drops whatever a train source also has.
    train = {s.spoken for s in opentext.source_sentences("fortunes-train")}
    held = {s.spoken for s in opentext.pool("en", "open")}
    assert len(train) > 1000 and len(held) > 1000 and not train & held


# ----------------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("lang, raw, spoken, written", [
    ("en", "I paid $25 in 1998, didn't I?", "i paid twenty five dollars in nineteen ninety eight didn't i",
     "I paid $25 in 1998, didn't I?"),
    ("en", "it grew by 15% to 3.5 tons", "it grew by fifteen percent to three point five tons",
     "It grew by 15% to 3.5 tons."),
    ("zh", "我在1998年买了３个苹果。", "我在一九九八年买了三个苹果", "我在1998年买了3个苹果。"),
    ("zh", "增长了15%，很好", "增长了百分之十五很好", "增长了15%，很好。"),
    ("yue", "佢有12000蚊", "佢有一萬二千蚊", "佢有12000蚊。"),
    ("ko", "학생 3명이 왔다.", "학생 삼명이 왔다", "학생 3명이 왔다."),
    ("ja", "3人で行きます", "さんにんでいきます", "3にんでいきます。"),
])
def test_normalise_gives_the_spoken_and_written_forms(lang, raw, spoken, written):
    if lang == "ja" and importlib.util.find_spec("pykakasi") is None:
        pytest.skip("pykakasi not installed (install with: bash scripts/setup_env.sh)")
    sentence = opentext.normalise(lang, raw)
    assert sentence is not None
    if lang == "ja":  # pykakasi reads 3人 as 3 + にん; the number is verbalised after the kanji are read
        assert sentence.spoken.endswith("でいきます") and not any("\u4e00" <= c <= "\u9fff" for c in sentence.spoken)
        return
    assert (sentence.spoken, sentence.written) == (spoken, written)
    assert sentence.itn


@pytest.mark.parametrize("lang, raw", [("zh", "我用Python写代码"), ("en", "see http://x.org"), ("ko", "法 제3조"),
                                       ("en", "Too"), ("yue", "𡃉喎")])
def test_normalise_drops_what_the_reader_cannot_say(lang, raw):
    assert opentext.normalise(lang, raw) is None


# ----------------------------------------------------------------------------------------------- events
@pytest.mark.parametrize("make", [sounds.cry, sounds.cough, sounds.sneeze, sounds.breath, sounds.music_styled])
def test_new_sounds_are_non_silent_and_reproducible(make):
    x = make(2.0, np.random.default_rng(1))
    assert x.dtype == np.float32 and x.size == 32000
    assert np.sqrt(np.mean(x**2)) > 0.01 and np.max(np.abs(x)) == pytest.approx(1.0, abs=1e-3)
    assert np.array_equal(x, make(2.0, np.random.default_rng(1)))


def test_room_impulse_and_babble():
    h = sounds.room_impulse(np.random.default_rng(0), 0.6)
    assert h.size == int(0.6 * sounds.SAMPLE_RATE) and abs(h[0]) == np.max(np.abs(h))
    assert np.sqrt(np.mean(sounds.babble(16000, np.random.default_rng(0)) ** 2)) == pytest.approx(1, rel=1e-3)


@pytest.mark.parametrize("event", NEW_EVENTS)
def test_event_alone_clips_carry_their_tag(tmp_path, event):
    variety = corpus.Variety(events="extended", acoustics="wide")
    rows, meta = corpus.make_clip(0, "train", 7, tmp_path, corpus.ClipSpec(event=event, has_speech=False),
                                  variety=variety)
    assert [r["event_target"] for r in rows] == [f"<|{event}|>"] and rows[0]["target"] == ""
    audio, rate = soundfile.read(rows[0]["source"])
    assert rate == 16000 and np.sqrt(np.mean(audio**2)) > 1e-3 and "snr_db" in meta["effects"]


@needs_espeak
def test_events_under_or_beside_speech(tmp_path):
    variety = corpus.Variety(events="extended")
    positions = set()
    for index in (15, 16, 17):  # seed 0's clips 15-17 draw the three layouts (P_UNDER = 0.3)
        rows, meta = corpus.make_clip(0, "train", index, tmp_path, corpus.ClipSpec(event="Cough", has_speech=True,
                                      lang="en"), variety=variety)
        assert rows[0]["event_target"] == "<|Cough|>" and rows[0]["target"]
        positions.add(meta["layout"]["event_position"])
    assert positions == {"before", "after", "under"}


def test_demo_tokenizer_has_every_event_tag():
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(ROOT / "demo" / "sensevoice.bpe.model"))
    for event in corpus.EVENTS_EXTENDED:
        assert sp.id_to_piece(sp.piece_to_id(f"<|{event}|>")) == f"<|{event}|>"


def test_default_variety_keeps_the_original_clip_kinds():
    assert corpus.Variety().kinds is corpus.CLIP_KINDS
    assert {e for e, _, _ in corpus.CLIP_KINDS_EXTENDED} == set(corpus.EVENTS_EXTENDED)
    with pytest.raises(ValueError, match="events="):
        corpus.Variety(events="all")
    with pytest.raises(ValueError, match="open_text="):
        corpus.Variety(open_text=1.5)


# ----------------------------------------------------------------------------------------------- engines
@pytest.mark.parametrize("engine, lang, text", [("flite", "en", "Good morning, everyone."),
                                                ("festival", "en", "Good morning."),
                                                ("openjtalk", "ja", "おはようございます。")])
def test_engines_render_or_name_their_install(engine, lang, text):
    why = engines.available(engine)
    if why:
        with pytest.raises(engines.EngineMissing, match="install"):
            engines.check(engine)
        pytest.skip(why)
    x, voice = engines.speak(text, lang, engine, "HAPPY", np.random.default_rng(0))
    assert x.dtype == np.float32 and 0.3 < x.size / 16000 < 5 and voice.name.startswith(engine)


def test_engine_roles_hold_one_engine_out_per_language():
    for lang, held in engines.ENGINE_ROLES["cross"].items():
        assert not set(held) & set(engines.ENGINE_ROLES["train"].get(lang, ()))


def test_a_sentence_an_engine_crashes_on_is_replaced_by_another(monkeypatch):
    said = []

    def speak(text, lang, engine, emotion, rng, warp=1.0):
        said.append(text)
        if len(said) == 1:  # Festival's text2wave dies with signal 11 on a few sentences
            raise subprocess.CalledProcessError(-11, ["text2wave"])
        return np.zeros(16000 * 2, np.float32), engines.EngineVoice("festival", "kal_diphone", 1.0, 1.0)

    monkeypatch.setattr(engines, "speak", speak)
    monkeypatch.setattr(corpus, "draw_engine", lambda *args: "festival")
    sentence, audio, _, _ = corpus.render_speech("train", "en", "m1", "NEUTRAL", "Speech", np.random.default_rng(0),
                                                 None, 10.0)
    assert len(said) == 2 and sentence.say == said[1] and audio.size == 32000

    monkeypatch.setattr(engines, "speak", lambda *a, **k: (_ for _ in ()).throw(
        subprocess.CalledProcessError(-11, ["text2wave"])))
    with pytest.raises(RuntimeError, match="festival failed on 100"):
        corpus.render_speech("train", "en", "m1", "NEUTRAL", "Speech", np.random.default_rng(0), None, 10.0)


def test_pieces_are_words_or_short_character_runs_with_their_punctuation():
    rng = np.random.default_rng(0)
    assert corpus.pieces("Good morning, everyone.", "en", rng) == ["Good", "morning,", "everyone."]
    runs = corpus.pieces("我们明天去北京，好吗？", "zh", rng)
    assert "".join(runs) == "我们明天去北京，好吗？" and all(not corpus.is_punct(run[0]) for run in runs)
    assert all(len(run.rstrip("，？")) <= 3 for run in runs)


@needs_espeak
def test_word_by_word_speech_has_pauses_between_the_words():
    from sensevoice.training.data import synth

    x, voice = synth.speak_in_pieces(["one", "two", "three"], "en", "m3", "NEUTRAL", np.random.default_rng(0),
                                     gap_s=(0.3, 0.3))
    frame = 160
    energy = np.square(x[: x.size // frame * frame].reshape(-1, frame)).mean(1)
    silent = energy < energy.max() * 1e-4
    runs, length = [], 0  # lengths of the silent stretches (10 ms frames)
    for quiet in silent:
        length = length + 1 if quiet else 0
        if length == 25:
            runs.append(1)
    assert len(runs) == 2 and voice.variant == "m3"  # two pauses of 0.3 s between three words


# ----------------------------------------------------------------------------------------------- test splits
@needs_espeak
@needs("pycantonese")
def test_open_testset(tmp_path):
    summary = corpus.make_testset(tmp_path, "open", 2, 1, events="extended", langs=("yue",))
    rows = [json.loads(line) for line in (tmp_path / "open.jsonl").read_text().splitlines()]
    metas = [json.loads(line) for line in (tmp_path / "open.meta.jsonl").read_text().splitlines()]
    assert summary["clips"] == 2 + len(corpus.EVENTS_EXTENDED) - 1
    speech = [m for m in metas if m["speech"]]
    assert all(m["template"].startswith("hkcancor-open:") for m in speech)
    assert all(m["variant"] in corpus.Variety(held_out_voices=tuple(f"held{i:04d}" for i in range(12))).pool("open")
               for m in speech)
    assert {r["event_target"] for r in rows if r["text_language"] == "<|nospeech|>"} == {
        f"<|{e}|>" for e in corpus.EVENTS_EXTENDED[1:]}


def test_testset_cli_refuses_a_bad_split(tmp_path):
    with pytest.raises(SystemExit):
        data_main(["testset", "--split", "train", "--out", str(tmp_path)])


def test_normalised_sources_are_cached_on_disk_and_read_back(monkeypatch, tmp_path):
    loads = []

    def load():
        loads.append(1)
        return ["The ship sails at 5 pm.", "x"]

    monkeypatch.setenv("SENSEVOICE_CACHE", str(tmp_path))
    monkeypatch.setitem(opentext.SOURCES, "test-src", opentext.Source("test-src", "en", "train", "pip none", "none",
                                                                      "a test source", load))
    opentext.source_sentences.cache_clear()
    first = opentext.source_sentences("test-src")
    opentext.source_sentences.cache_clear()  # a new process: only the file is left
    again = opentext.source_sentences("test-src")
    opentext.source_sentences.cache_clear()
    assert loads == [1] and again == first and [s.spoken for s in first] == ["the ship sails at five pm"]
    assert [p.name for p in (tmp_path / "opentext").iterdir()] == [f"test-src-{opentext.normaliser_digest()}.json.gz"]
