"""The synthetic corpus generator (sensevoice.training.data): number words, sentence forms, espeak-ng readings, jsonl
schema, audio vs labels, ITN pairs, emotion styles, events, splits, determinism, CLI and demo clips."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

import model as sv
from sensevoice.training.data import corpus, numbers, synth, text, voices
from sensevoice.training.data.__main__ import main as data_main

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (install with: bash scripts/install_system_deps.sh)")

OFFICIAL_KEYS = ["key", "text_language", "emo_target", "event_target", "with_or_wo_itn", "target", "source",
                 "target_len", "source_len"]
SEED = 0
N = {"train": 40, "val": 10, "test": 20}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    corpus.make_corpus(out, N["train"], N["val"], N["test"], seed=SEED, jobs=2)
    return out


@pytest.fixture(scope="module")
def rows(built) -> dict[str, list[dict]]:
    return {split: read_jsonl(built / f"{split}.jsonl") for split in corpus.SPLITS}


@pytest.fixture(scope="module")
def metas(built) -> dict[str, list[dict]]:
    return {split: read_jsonl(built / f"{split}.meta.jsonl") for split in corpus.SPLITS}


def all_rows(rows) -> list[dict]:
    return [row for split in corpus.SPLITS for row in rows[split]]


# ----------------------------------------------------------------------------------------------- numbers, text
@pytest.mark.parametrize("n, en, zh, ja, ko", [
    (0, "zero", "零", "ゼロ", "영"),
    (12, "twelve", "十二", "じゅうに", "십이"),
    (25, "twenty five", "二十五", "にじゅうご", "이십오"),
    (107, "one hundred seven", "一百零七", "ひゃくなな", "백칠"),
    (1631, "one thousand six hundred thirty one", "一千六百三十一", "せんろっぴゃくさんじゅういち", "천육백삼십일"),
    (30005, "thirty thousand five", "三万零五", "さんまんご", "삼만오"),
    (15000, "fifteen thousand", "一万五千", "いちまんごせん", "만오천"),
])
def test_cardinals(n, en, zh, ja, ko):
    got = numbers.en_cardinal(n), numbers.zh_cardinal(n), numbers.ja_cardinal(n), numbers.ko_cardinal(n)
    assert got == (en, zh, ja, ko)


def test_number_details():
    assert numbers.zh_cardinal(30005, traditional=True) == "三萬零五"
    assert numbers.zh_digits(2024) == "二零二四"
    assert [numbers.en_year(y) for y in (1998, 1905, 1900, 2005, 2024)] == [
        "nineteen ninety eight", "nineteen oh five", "nineteen hundred", "two thousand five", "twenty twenty four"]
    assert [numbers.en_ordinal(n) for n in (3, 12, 21, 40)] == ["third", "twelfth", "twenty first", "fortieth"]
    assert [numbers.en_ordinal_suffix(n) for n in (1, 2, 3, 11, 13, 22)] == ["1st", "2nd", "3rd", "11th", "13th",
                                                                              "22nd"]
    assert numbers.ja_cardinal(2024, "ねん") == "にせんにじゅうよねん"
    assert numbers.ja_cardinal(9, "がつ") == "くがつ"
    assert numbers.ja_cardinal(800, "えん") == "はっぴゃくえん"
    assert (numbers.ko_month(6), numbers.ko_month(10), numbers.ko_month(3)) == ("유월", "시월", "삼월")
    with pytest.raises(ValueError, match="expected an integer"):
        numbers.en_cardinal(-1)


@pytest.mark.parametrize("lang", text.LANGS)
def test_sentence_forms(lang):
    sentences = text.sample_sentences(lang, 300, seed=1)
    assert any(s.itn for s in sentences) and any(not s.itn for s in sentences)
    for s in sentences:
        assert not re.search(r"[0-9%$.,?!。，？！]", s.spoken), s  # woitn: words only
        assert s.written[-1] in ".?。？", s  # withitn: punctuated
        if lang == "en":
            assert s.spoken == s.spoken.lower() and s.written[0].isupper(), s
        if s.itn:
            assert re.search(r"[0-9]", s.written), s
    assert len({s.spoken for s in sentences}) > 250  # templates x word lists give variety


def test_korean_particles_follow_the_final_consonant():
    assert text.ko_attach(("책", "책"), "obj") == ("책을", "책을")
    assert text.ko_attach(("우유", "우유"), "obj") == ("우유를", "우유를")
    assert text.ko_attach(("이십오 원", "25원"), "cop") == ("이십오 원이에요", "25원이에요")


# ----------------------------------------------------------------------------------------------- espeak-ng
@needs_espeak
def test_espeak_voice_facts():
    """The readings the generator relies on (see synth's docstring)."""
    def phonemes(voice, words):
        return subprocess.run(["espeak-ng", "-q", "-x", "-v", voice, words], capture_output=True, text=True,
                              check=True).stdout

    assert "(en)" in phonemes("cmn", "你好")  # the default Mandarin voice spells pinyin in English
    assert "(" not in phonemes("cmn-latn-pinyin", "你好")
    assert "(" not in phonemes("yue", "廣東話")
    assert "(en)" in phonemes("ja", "日本")  # kanji: "Chinese letter"
    assert "(" not in phonemes("ja", "にほん") and "(" not in phonemes("ko", "한국어")


@needs_espeak
@pytest.mark.parametrize("lang", text.LANGS)
def test_espeak_reads_generated_text_in_its_language(lang):
    """No switch to another language (e.g. '(en)' for a character the voice cannot read)."""
    says = "\n".join(s.say for s in text.sample_sentences(lang, 300, seed=2))
    voice = synth.LANGUAGE_VOICES[lang][0]
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", voice, says], capture_output=True, text=True,
                         check=True).stdout
    assert "(" not in out, re.findall(r".{20}\(\w+\).{20}", out)[:5]


@needs_espeak
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_emotion_styles_differ_measurably(lang):
    """Same sentence and variant in each emotion: pitch, level and tempo order as the style table says."""
    import librosa

    say = text.sample_sentences(lang, 1, seed=3)[0].say
    stats = {}
    for emotion in synth.EMOTIONS:
        x, _ = synth.speak(say, lang, "m3", emotion, np.random.default_rng(0))
        f0 = librosa.yin(x, fmin=50, fmax=500, sr=corpus.SAMPLE_RATE, frame_length=1024)
        stats[emotion] = {"f0": float(np.median(f0)), "db": synth.active_rms_db(x), "s": x.size / corpus.SAMPLE_RATE}
    assert stats["HAPPY"]["f0"] > stats["NEUTRAL"]["f0"] * 1.15 > stats["SAD"]["f0"] * 1.3, stats
    assert stats["ANGRY"]["f0"] < stats["HAPPY"]["f0"], stats
    assert stats["ANGRY"]["db"] > stats["NEUTRAL"]["db"] + 4 > stats["SAD"]["db"] + 8, stats
    assert stats["SAD"]["s"] > stats["NEUTRAL"]["s"] * 1.15 > stats["HAPPY"]["s"] * 1.2, stats


@needs_espeak
def test_warp_scales_pitch_and_duration():
    """warp a: the same rendering, a times the pitch (and formants), 1/a times the duration."""
    import librosa

    say = text.sample_sentences("en", 1, seed=5)[0].say
    stats = {}
    for warp in (0.88, 1.0, 1.12):
        x, _ = synth.speak(say, "en", "m3", "NEUTRAL", np.random.default_rng(0), warp=warp)
        f0 = librosa.yin(x, fmin=50, fmax=500, sr=corpus.SAMPLE_RATE, frame_length=1024)
        stats[warp] = (float(np.median(f0)), x.size / corpus.SAMPLE_RATE)
    for warp in (0.88, 1.12):
        assert stats[warp][0] / stats[1.0][0] == pytest.approx(warp, rel=0.04), stats
        assert stats[1.0][1] / stats[warp][1] == pytest.approx(warp, rel=0.02), stats


def test_resample_warp_ratio():
    """The warped ratio is rounded to a short polyphase filter, within 0.1 % of the exact one."""
    x = np.zeros(22050 * 2, np.float32)
    assert synth.resample(x, 22050).size == 32000  # unwarped: exact 320/441
    for warp in (0.88, 0.9731, 1.05, 1.12):
        got = synth.resample(x, 22050, warp).size
        assert got == pytest.approx(32000 / warp, rel=1e-3), warp
    with pytest.raises(ValueError, match="warp=0"):
        synth.resample(x, 22050, 0.0)


@needs_espeak
def test_warped_corpus(tmp_path, capsys):
    """--warp draws one factor per speech clip from [1 - w, 1 + w] and records it; w outside [0, 0.3] is refused."""
    corpus.make_corpus(tmp_path, 12, 0, 0, seed=SEED, jobs=1, warp=0.15)
    summary = json.loads((tmp_path / "corpus.json").read_text())
    factors = [m["warp"] for m in read_jsonl(tmp_path / "train.meta.jsonl") if m["speech"]]
    assert summary["warp"] == 0.15 and factors
    assert all(0.85 <= f <= 1.15 for f in factors) and len(set(factors)) == len(factors), factors
    with pytest.raises(ValueError, match="warp=0.5"):
        corpus.make_corpus(tmp_path / "bad", 1, 0, 0, warp=0.5)
    assert data_main(["--out", str(tmp_path / "bad"), "--warp", "-0.1"]) == 2  # a usage error
    assert "--warp=-0.1" in capsys.readouterr().err


def test_random_variants_are_seeded_and_in_range():
    first, again = voices.random_variants(20, seed=0, stream=3), voices.random_variants(20, seed=0, stream=3)
    assert first == again and len(set(first.values())) == 20
    assert voices.random_variants(3, seed=1, stream=3) != voices.random_variants(3, seed=0, stream=3)
    for name, text_ in first.items():
        fields = [line.split() for line in text_.splitlines() if line.strip()]
        assert fields[:3] == [["language", "variant"], ["name", name], ["gender", fields[2][1]]]
        low, high = next(list(map(int, f[1:])) for f in fields if f[0] == "pitch")
        assert 65 <= low < high <= 215 + 95
        formants = [list(map(int, f[2:])) for f in fields if f[0] == "formant"]
        assert len(formants) == voices.N_FORMANTS and all(80 <= freq <= 130 for freq, _, _ in formants)


@needs_espeak
def test_overlay_speaks_fixed_variants_unchanged_and_random_ones_differently(tmp_path):
    variants = voices.random_variants(2, seed=0, stream=3)
    root = voices.make_overlay(tmp_path / "overlay", variants)
    assert voices.make_overlay(tmp_path / "overlay", variants) == root  # idempotent
    say, rng = "the green hat is near the station", lambda: np.random.default_rng(0)
    for lang in text.LANGS:  # every language voice reads as it does from espeak-ng's own data
        sentence = text.sample_sentences(lang, 1, seed=2)[0].say
        for name in synth.LANGUAGE_VOICES[lang]:
            voice = synth.draw_voice(lang, "m3", "NEUTRAL", rng())
            voice = dataclasses.replace(voice, language_voice=name)
            overlaid = dataclasses.replace(voice, data_path=str(root))
            assert np.array_equal(synth.espeak(sentence, voice)[0], synth.espeak(sentence, overlaid)[0]), name
    rendered = [synth.speak(say, "en", name, "NEUTRAL", rng(), data_path=str(root))[0] for name in variants]
    unknown, _ = synth.speak(say, "en", "no-such-variant", "NEUTRAL", rng(), data_path=str(root))
    assert not any(x.shape == unknown.shape and np.array_equal(x, unknown) for x in rendered)  # espeak-ng used them
    assert rendered[0].shape != rendered[1].shape or not np.array_equal(*rendered)
    assert voices.variant_file("rand0000", root).read_text() == variants["rand0000"]
    with pytest.raises(FileNotFoundError, match="'no-such-variant' is not in the overlay"):
        voices.variant_file("no-such-variant", root)
    with pytest.raises(FileNotFoundError, match="'rand0000' is not in espeak-ng's data"):
        voices.variant_file("rand0000", None)
    with pytest.raises(ValueError, match="would shadow"):
        voices.make_overlay(tmp_path / "clash", {"m3": "language variant\n"})
    with pytest.raises(ValueError, match="at most 200"):
        voices.make_overlay(tmp_path / "many", voices.random_variants(201, seed=0, stream=3))


@needs_espeak
def test_overlay_with_the_most_variants_keeps_every_language_voice(tmp_path):
    """espeak-ng lists at most 349 voices; past that it drops language voices without a word."""
    root = voices.make_overlay(tmp_path, voices.random_variants(voices.MAX_RANDOM_VARIANTS, seed=0, stream=3))
    last = f"rand{voices.MAX_RANDOM_VARIANTS - 1:04d}"
    for lang in text.LANGS:
        for name in synth.LANGUAGE_VOICES[lang]:
            voice = synth.draw_voice(lang, last, "NEUTRAL", np.random.default_rng(0), data_path=str(root))
            assert synth.espeak("1 2 3", dataclasses.replace(voice, language_voice=name))[0].size > 1000, name


@needs_espeak
def test_random_voices_join_the_train_pool_only(tmp_path, capsys):
    corpus.make_corpus(tmp_path, 30, 4, 4, seed=SEED, jobs=1, random_voices=50)  # variants need the overlay
    summary = json.loads((tmp_path / "corpus.json").read_text())
    metas = {split: [m for m in read_jsonl(tmp_path / f"{split}.meta.jsonl") if m["speech"]] for split in corpus.SPLITS}
    assert summary["random_voices"] == 50
    assert any(m["variant"].startswith("rand") for m in metas["train"])
    for split in ("val", "test"):
        assert {m["variant"] for m in metas[split]} <= set(synth.VOICE_POOLS[split])
    assert (tmp_path / corpus.VOICE_OVERLAY / "espeak-ng-data" / voices.VARIANT_DIR / "rand0049").is_file()
    assert data_main(["--out", str(tmp_path / "bad"), "--random-voices", "-1"]) == 2  # a usage error
    assert "--random-voices=-1" in capsys.readouterr().err
    assert data_main(["--out", str(tmp_path / "bad"), "--random-voices", "201"]) == 2  # a usage error
    assert "--random-voices=201" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- corpus
def test_compose_fits_any_speech_length(monkeypatch):
    """Events are sized in seconds; the mix must still line up sample for sample (a BGM off-by-one once broke)."""
    rng = np.random.default_rng(0)
    rounds_down = [n for n in range(16000, 40000) if int(n / corpus.SAMPLE_RATE * corpus.SAMPLE_RATE) != n][:3]
    monkeypatch.setattr(corpus, "silence", lambda seconds: np.zeros(0, np.float32))  # x.size == speech.size
    for n in [*rounds_down, 8000, 40001, 96000]:
        speech = 0.1 * np.sin(np.arange(n, dtype=np.float32))
        for event in corpus.EVENTS_EXTENDED:
            x, layout = corpus.compose(speech, event, rng, corpus.MAX_CLIP_S)
            assert n <= x.size <= corpus.MAX_CLIP_S * corpus.SAMPLE_RATE, (event, n, layout)
    with pytest.raises(ValueError, match="expected one of"):
        corpus.compose(speech, "Sing", rng, corpus.MAX_CLIP_S)  # an official tag the generator does not make


def test_tags_are_model_tags():
    assert set(text.LANGS) <= set(sv.LANGUAGES) and "nospeech" in sv.LANGUAGES
    assert set(synth.EMOTIONS) | {"EMO_UNKNOWN"} <= set(sv.EMOTIONS)
    assert set(corpus.EVENTS) <= set(sv.EVENTS)


def test_official_example_keys(official):
    example = read_jsonl(official / "data" / "train_example.jsonl")
    assert all(list(row) == OFFICIAL_KEYS for row in example)


@needs_espeak
def test_jsonl_schema(built, rows):
    tags = {
        "text_language": {sv.tag(x) for x in (*text.LANGS, "nospeech")},
        "emo_target": {sv.tag(x) for x in (*synth.EMOTIONS, "EMO_UNKNOWN")},
        "event_target": {sv.tag(x) for x in corpus.EVENTS},
        "with_or_wo_itn": {sv.tag(x) for x in sv.TEXTNORMS},
    }
    for split in corpus.SPLITS:
        assert len({r["source"] for r in rows[split]}) == N[split]
        keys = [r["key"] for r in rows[split]]
        assert len(keys) == len(set(keys))
    for row in all_rows(rows):
        assert list(row) == OFFICIAL_KEYS
        for field, allowed in tags.items():
            assert row[field] in allowed, row
        assert isinstance(row["source_len"], int) and isinstance(row["target_len"], int)
        assert Path(row["source"]).is_absolute() and Path(row["source"]).is_relative_to(built)
        lang = row["text_language"][2:-2]
        expected_len = len(row["target"].split()) if lang == "en" else len(row["target"])
        assert row["target_len"] == expected_len, row
    train_targets = [r["target"] for r in rows["train"] if r["target"]]
    assert (built / "text.txt").read_text(encoding="utf-8").splitlines() == train_targets


@needs_espeak
def test_audio_matches_labels(rows):
    for row in all_rows(rows):
        info = soundfile.info(row["source"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert corpus.MIN_CLIP_S <= info.duration <= corpus.MAX_CLIP_S + 1e-3
        assert abs(row["source_len"] - info.duration * 100) <= 3  # 10 ms fbank frames
        assert row["source_len"] == corpus.fbank_frames(info.frames)


@needs_espeak
def test_source_len_is_the_frontends_frame_count(rows):
    import torch
    from funasr.frontends.wav_frontend import WavFrontend

    frontend = WavFrontend(cmvn_file=None, fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10,
                           lfr_m=1, lfr_n=1)
    for row in rows["test"][:4]:
        audio, _ = soundfile.read(row["source"], dtype="float32")
        _, frames = frontend(torch.from_numpy(audio)[None], torch.tensor([audio.size]))
        assert int(frames[0]) == row["source_len"]


@needs_espeak
def test_itn_pairs_share_audio(rows):
    by_source = defaultdict(list)
    for row in all_rows(rows):
        by_source[row["source"]].append(row)
    pairs = [group for group in by_source.values() if len(group) == 2]
    assert sum(bool(re.search(r"\d", g[1]["target"])) for g in pairs) >= 5  # number/date/time/money pairs
    for woitn, withitn in pairs:
        assert (woitn["with_or_wo_itn"], withitn["with_or_wo_itn"]) == ("<|woitn|>", "<|withitn|>")
        assert withitn["key"] == woitn["key"] + "_itn" and woitn["target"] != withitn["target"]
        assert {k: v for k, v in woitn.items() if k not in ("key", "with_or_wo_itn", "target", "target_len")} == \
               {k: v for k, v in withitn.items() if k not in ("key", "with_or_wo_itn", "target", "target_len")}
    assert all(len(group) <= 2 for group in by_source.values())
    assert not any(re.search(r"\d", r["target"]) for r in all_rows(rows) if r["with_or_wo_itn"] == "<|woitn|>")


@needs_espeak
def test_events_and_nospeech(rows):
    speechless = [r for r in all_rows(rows) if r["text_language"] == "<|nospeech|>"]
    assert speechless
    for row in speechless:
        assert (row["target"], row["target_len"], row["emo_target"]) == ("", 0, "<|EMO_UNKNOWN|>")
        assert row["event_target"] in ("<|BGM|>", "<|Applause|>", "<|Laughter|>")
    assert all(r["target"] for r in all_rows(rows) if r["text_language"] != "<|nospeech|>")
    events_with_speech = {r["event_target"] for r in all_rows(rows) if r["target"]}
    assert events_with_speech == {sv.tag(e) for e in corpus.EVENTS}


@needs_espeak
def test_splits_hold_out_sentences_and_voices(metas):
    sentences = {s: {(m["lang"], m["spoken"]) for m in metas[s] if m["speech"]} for s in corpus.SPLITS}
    variants = {s: {m["variant"] for m in metas[s] if m["speech"]} for s in corpus.SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not sentences[a] & sentences[b]
        assert not set(synth.VOICE_POOLS[a]) & set(synth.VOICE_POOLS[b])
    for split in corpus.SPLITS:
        assert variants[split] <= set(synth.VOICE_POOLS[split])
        assert all(corpus.sentence_bucket(*s) in corpus.SENTENCE_BUCKETS[split] for s in sentences[split])


@needs_espeak
def test_same_seed_same_clips_for_any_jobs_and_size(built, rows, tmp_path):
    """Clips depend on (seed, split, index) only: a smaller corpus made with 1 job repeats the first clips."""
    corpus.make_corpus(tmp_path, 6, 0, 3, seed=SEED, jobs=1)
    for split, n in (("train", 6), ("test", 3)):
        again = read_jsonl(tmp_path / f"{split}.jsonl")
        first = [r for r in rows[split] if int(r["key"].split("_")[1]) < n]
        strip = lambda r: {**r, "source": Path(r["source"]).name}  # noqa: E731
        assert [strip(r) for r in again] == [strip(r) for r in first]
        for row in again:
            assert Path(row["source"]).read_bytes() == (built / "wav" / split / Path(row["source"]).name).read_bytes()
    other = tmp_path / "other_seed"
    corpus.make_corpus(other, 3, 0, 0, seed=SEED + 1, jobs=1)
    assert [r["target"] for r in read_jsonl(other / "train.jsonl")] != [r["target"] for r in rows["train"][:3]]


# ----------------------------------------------------------------------------------------------- CLI, examples
@needs_espeak
def test_cli(tmp_path, capsys):
    assert data_main(["--out", str(tmp_path), "--n-train", "2", "--n-val", "1", "--n-test", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == {"train": 2, "val": 1, "test": 1}
    assert {p.name for p in tmp_path.iterdir()} >= {"train.jsonl", "val.jsonl", "test.jsonl", "text.txt", "wav",
                                                    "corpus.json", "train.meta.jsonl"}
    assert data_main(["--out", str(tmp_path), "--jobs", "0"]) == 2  # a usage error
    assert "--jobs=0" in capsys.readouterr().err


@needs_espeak
def test_examples(tmp_path):
    labels = corpus.make_examples(tmp_path)
    assert {label["text_language"][2:-2] for label in labels} == set(text.LANGS)
    for label in labels:
        path = tmp_path / label["file"]
        info = soundfile.info(path)
        assert (info.samplerate, info.channels) == (16000, 1) and path.stat().st_size <= corpus.EXAMPLE_MAX_BYTES
        assert label["rich"].endswith(label["target"]) and label["rich"].startswith(label["text_language"])


def test_committed_examples():
    """examples/ (made by `python -m sensevoice.training.data examples --out examples`): small, 16 kHz mono, labelled."""
    root = Path(__file__).resolve().parent.parent / "examples"
    labels = read_jsonl(root / "labels.jsonl")
    assert {label["file"] for label in labels} == {f"{lang}.flac" for lang in text.LANGS}
    for label in labels:
        info = soundfile.info(root / label["file"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert (root / label["file"]).stat().st_size <= corpus.EXAMPLE_MAX_BYTES
        assert label["source_len"] == corpus.fbank_frames(info.frames)
