"""Long-audio transcription (sensevoice/pipeline.py): dynamic batching never changes the answer, and timestamps
land on the file's absolute timeline."""

from __future__ import annotations

import difflib
import statistics

import numpy as np
import pytest
import soundfile

import model as sv
from sensevoice.audio import AudioInputError, load_audio
from testkit import speechlike
from helpers_long import BURSTS_S, DEMO_DIR, assert_spans_ordered, long_speechlike, needs_demo
from sensevoice import pipeline as tr
from sensevoice.modeldir import ModelDir
from sensevoice.vad import fsmn_vad_dir
from sensevoice.result import TIMESTAMP_KEYS

FRAME_SLACK_MS = sv.ENC_FRAME_MS // 2  # the last frame centre may lie up to half a frame past the last sample


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    wave, _ = long_speechlike()
    path = tmp_path_factory.mktemp("long") / "long.wav"
    soundfile.write(path, wave, 16000)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return tr.Transcriber(tiny_dir, threads=2)


def batch_sizes_seen(transcriber, monkeypatch) -> list[int]:
    """Spy: the size of every batch the model is asked to decode."""
    seen = []
    ctc_scores = transcriber.backend.ctc_scores

    def spy(feats, *args, **kwargs):
        seen.append(len(feats))
        return ctc_scores(feats, *args, **kwargs)

    monkeypatch.setattr(transcriber.backend, "ctc_scores", spy)
    return seen


@pytest.fixture(scope="module")
def runs(tiny, long_wav):
    """budget -> (result with timestamps, the batch sizes the model saw) for the long file."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        seen = batch_sizes_seen(tiny, mp)
        for budget in (1, 60, 300):
            seen.clear()
            out[budget] = tiny.transcribe(long_wav, "long", sv.DecodingOptions(output_timestamp=True),
                                          batch_size_s=budget), list(seen)
    return out


@pytest.fixture(scope="module")
def alone(tiny, long_wav, runs):
    """Reference: each VAD segment decoded on its own straight through model.inference (segment-relative)."""
    wave = load_audio(str(long_wav), "long").numpy()
    references = []
    for segment in runs[1][0].segments:
        piece = wave[segment.start_ms * 16:segment.end_ms * 16]
        results, _ = tiny.backend.model.inference([piece], key=["alone"], tokenizer=tiny.tokenizer,
                                                  frontend=tiny.frontend, output_timestamp=True)
        references.append(results[0])
    return references


# ----------------------------------------------------------------------------------------------- planning
@pytest.mark.parametrize("budget_s", [0.5, 1, 5, 12, 60, 300])
def test_plan_batches_covers_every_segment_once_within_budget(budget_s):
    durations = [800, 6000, 2000, 12000, 1200, 30000, 5000, 4000, 400, 400]
    batches = tr.plan_batches(durations, budget_s)
    assert sorted(i for b in batches for i in b) == list(range(len(durations)))
    for batch in batches:
        longest = max(durations[i] for i in batch)
        assert len(batch) == 1 or longest * len(batch) <= budget_s * 1000


def test_plan_batches_sorts_by_length_and_packs():
    assert tr.plan_batches([3000, 2800, 2900, 3100], 9) == [[1, 2, 0], [3]]  # 3 x 3 s fit, 4 x 3.1 s do not
    assert tr.plan_batches([3000, 2800, 2900, 3100], 6) == [[1, 2], [0], [3]]
    assert tr.plan_batches([3000, 2800, 2900, 3100], 300) == [[1, 2, 0, 3]]
    assert tr.plan_batches([3000, 2800, 2900, 3100], 1) == [[1], [2], [0], [3]]
    assert tr.plan_batches([5000, 1000, 3000, 1000], 300) == [[1, 3], [2], [0]]  # lengths 1.3x apart never meet
    assert tr.plan_batches([], 60) == []


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "60"])
def test_bad_batch_size_is_refused(bad):
    with pytest.raises(ValueError, match="batch_size_s"):
        tr.check_batch_size_s(bad)


def test_bad_decoding_option_is_refused():
    with pytest.raises(ValueError, match="language"):
        sv.DecodingOptions(language="xx")


# ----------------------------------------------------------------------------------------------- batching
def test_batch_size_s_never_changes_the_transcript_tiny(runs):
    (reference, singles), (_, all_in) = runs[1], runs[300]
    assert max(singles) == 1 and max(all_in) >= 2, "batching must really happen"
    for budget in (60, 300):
        assert runs[budget][0] == reference


def test_inputs_share_batches_and_keep_their_answers_tiny(tiny_dir, monkeypatch):
    """Several inputs decoded together (the service's and batch jobs' case): one padded call, the same results as
    one input at a time."""
    tiny = tr.Transcriber(tiny_dir, vad=False, threads=2)
    clips = [speechlike(2.0 + 0.1 * i, seed=60 + i) for i in range(5)]
    keys = [f"c{i}" for i in range(5)]
    seen = batch_sizes_seen(tiny, monkeypatch)
    together = tiny.transcribe_many(clips, keys, sv.DecodingOptions(output_timestamp=True))
    assert max(seen) == 5
    alone = [tiny.transcribe(clip, key, sv.DecodingOptions(output_timestamp=True), batch_size_s=1)
             for clip, key in zip(clips, keys)]
    assert together == alone


def test_batched_segments_equal_each_segment_alone_tiny(runs, alone):
    """Every segment of the 300 s batches vs that segment decoded alone, token for token and ms for ms."""
    segments = runs[300][0].segments
    assert len(segments) == len(alone) > len(BURSTS_S)
    for segment, reference in zip(segments, alone):
        start, end = segment.start_ms, segment.end_ms
        assert segment.text == reference["text"]
        assert segment.tokens == reference["tokens"] and segment.words == reference["words"]
        assert segment.token_timestamp == tr.shift_spans(reference["token_timestamp"], start, end)
        assert segment.timestamp == tr.shift_spans(reference["timestamp"], start, end)


def test_cpu_device_still_batches(tiny, runs):
    """FunASR turns batching off on device="cpu"; our pipeline must not (tiny was loaded on "cpu")."""
    assert next(tiny.backend.model.parameters()).device.type == "cpu"
    assert max(runs[300][1]) > 1


def test_batch_size_without_vad_never_changes_the_transcript_tiny(tiny_dir, wav_file):
    """FunASR's own batching by count (no VAD), through AutoModel.generate on a device that keeps batching."""
    automodel = ModelDir(tiny_dir).automodel(device="cpu:0", ncpu=2, disable_pbar=True)
    clips = [speechlike(s, seed=i) for i, s in enumerate((0.7, 3.1, 1.4, 5.2, 2.2))]
    texts = {n: [r["text"] for r in automodel.generate(clips, batch_size=n, output_timestamp=True)]
             for n in (1, 2, 5)}
    assert texts[1] == texts[2] == texts[5]
    assert len(set(texts[1])) == len(clips)


def test_no_vad_is_one_segment(tiny_dir, wav_file):
    transcriber = tr.Transcriber(tiny_dir, vad=False, threads=2)
    result = transcriber.transcribe(wav_file, "clip", sv.DecodingOptions(output_timestamp=True))
    assert [(s.start_ms, s.end_ms) for s in result.segments] == [(0, result.duration_ms)]
    assert result.duration_ms == 2500


def test_no_vad_warns_on_long_audio(tiny_dir):
    transcriber = tr.Transcriber(tiny_dir, vad=False, threads=2)
    with pytest.warns(UserWarning, match="use VAD"):
        transcriber.transcribe(np.zeros(61 * 16000, np.float32), "long")


def test_silence_gives_an_empty_result(tiny):
    result = tiny.transcribe(np.zeros(5 * 16000, np.float32), "quiet", sv.DecodingOptions(output_timestamp=True))
    assert result.segments == [] and result.text == "" and result.tokens == []


def test_bad_input_names_it(tiny, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all, just some text")
    with pytest.raises(AudioInputError, match="notes"):
        tiny.transcribe(str(bad), "notes")
    with pytest.raises(FileNotFoundError):
        tiny.transcribe(str(tmp_path / "missing.wav"), "missing")


@pytest.mark.official
@pytest.mark.slow
def test_batch_size_s_never_changes_the_transcript_official_size(official_dir, official, tmp_path):
    """Random official-size weights on real speech: three example clips and 16 s of news, 2.5 s apart."""
    clips = [load_audio(str(official / "example" / f"{lang}.mp3"), lang).numpy() for lang in ("ko", "yue", "zh")]
    clips.append(load_audio(str(official / "example" / "enNews.wav"), "news").numpy()[:16 * 16000])
    gap = np.zeros(int(2.5 * 16000), np.float32)
    path = tmp_path / "examples.wav"
    soundfile.write(path, np.concatenate([gap] + [x for clip in clips for x in (clip, gap)]), 16000)

    transcriber = tr.Transcriber(official_dir, threads=2)
    results = {b: transcriber.transcribe(path, "ex", sv.DecodingOptions(output_timestamp=True), batch_size_s=b)
               for b in (1, 60, 300)}
    durations = [s.end_ms - s.start_ms for s in results[1].segments]
    assert len(durations) >= len(clips)
    assert all(len(b) == 1 for b in tr.plan_batches(durations, 1)), "at 1 s every segment is decoded alone"
    assert max(map(len, tr.plan_batches(durations, 300))) >= 2, "at 300 s segments share a call"
    assert results[60] == results[1] and results[300] == results[1]


# ----------------------------------------------------------------------------------------------- timestamps
def test_timestamps_are_absolute_ordered_and_inside_their_segment(runs, alone):
    result = runs[60][0]
    for segment, reference in zip(result.segments, alone):
        start, end = segment.start_ms, segment.end_ms
        assert len(segment.words) == len(segment.timestamp)
        assert len(segment.tokens) == len(segment.token_timestamp)
        assert_spans_ordered(segment.token_timestamp, start, end, f"{start}-{end} token_timestamp")
        assert_spans_ordered(segment.timestamp, start, end, f"{start}-{end} timestamp")
        # absolute = relative (the segment alone) + the segment's start
        assert segment.token_timestamp == tr.shift_spans(reference["token_timestamp"], start, end)
    later = [s for s in result.segments if s.start_ms > 30000 and s.tokens]
    assert later and later[0].token_timestamp[0][0] >= later[0].start_ms > 30000
    for name in TIMESTAMP_KEYS:  # the file's lists are its segments' lists, in order
        assert getattr(result, name) == [x for s in result.segments for x in getattr(s, name)]
    assert_spans_ordered(result.token_timestamp, 0, result.duration_ms, "token_timestamp")
    assert_spans_ordered(result.timestamp, 0, result.duration_ms, "timestamp")


def test_relative_spans_fit_their_segment(alone, runs):
    """The clamp in shift_spans only ever trims the half frame past a segment's last sample."""
    for segment, reference in zip(runs[1][0].segments, alone):
        length = segment.end_ms - segment.start_ms
        assert_spans_ordered(reference["token_timestamp"], 0, length + FRAME_SLACK_MS, "relative token_timestamp")


def test_padded_batch_items_keep_their_own_lengths(tiny):
    """model.inference on a padded batch: each item's timestamps end within its own audio, equal to it alone."""
    model, kwargs = tiny.backend.model, {"tokenizer": tiny.tokenizer, "frontend": tiny.frontend}
    clips = [speechlike(s, seed=10 + i) for i, s in enumerate((0.9, 6.0, 2.3))]
    batch, _ = model.inference(clips, key=["a", "b", "c"], **kwargs, output_timestamp=True)
    for clip, item in zip(clips, batch):
        duration_ms = len(clip) // 16
        assert item["token_timestamp"], "the random tiny model emits tokens on speech-like audio"
        assert_spans_ordered(item["token_timestamp"], 0, duration_ms + FRAME_SLACK_MS, item["key"])
        single, _ = model.inference([clip], key=["x"], **kwargs, output_timestamp=True)
        assert {k: item[k] for k in ("text", *TIMESTAMP_KEYS)} == {k: single[0][k] for k in ("text", *TIMESTAMP_KEYS)}


def test_progress_reports_seconds_done(tiny, long_wav):
    calls = []
    tiny.transcribe(long_wav, "long", progress=lambda d, t: calls.append((d, t)), batch_size_s=60)
    assert calls[0][0] == 0 and calls[-1][0] == pytest.approx(calls[-1][1])
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 2


# ----------------------------------------------------------------------------------------------- trained model
def espeak_words(words: list[str], gap_s: float = 0.25) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Each word spoken alone by espeak-ng (the demo corpus's voice), trimmed and joined with ``gap_s`` of
    silence: the word boundaries are known to the sample."""
    from sensevoice.training.data import synth

    rng = np.random.default_rng(0)
    parts, spans, t = [np.zeros(int(0.5 * 16000), np.float32)], [], int(0.5 * 16000)
    for word in words:
        audio, _ = synth.speak(word, "en", "m3", "NEUTRAL", rng)
        audio = synth.trim_silence(audio, keep_s=0.0)
        spans.append((t // 16, (t + len(audio)) // 16))
        parts += [audio, np.zeros(int(gap_s * 16000), np.float32)]
        t += len(audio) + int(gap_s * 16000)
    return np.concatenate(parts + [np.zeros(16000, np.float32)]).astype(np.float32), spans


@needs_demo
@pytest.mark.xfail(strict=True, reason="the embedded demo model (held-out WER en 4.9 % on sentences) was trained "
                   "on continuous sentences only and recognises too few of these isolated, gap-separated words to "
                   "measure boundaries; this must pass once it does")
def test_word_timestamps_match_known_boundaries_demo():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install_system_deps.sh)")
    words = "my cousin lives on the twenty sixth floor near the old market".split()
    wave, truth = espeak_words(words)
    result = tr.Transcriber(DEMO_DIR, threads=2).transcribe(wave, "words", sv.DecodingOptions(language="en",
                                                                                              output_timestamp=True))
    predicted = [w.lower() for w in result.words]
    errors = []
    matcher = difflib.SequenceMatcher(a=words, b=predicted, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            (ts, te), (ps, pe) = truth[block.a + k], result.timestamp[block.b + k]
            errors += [abs(ps - ts), abs(pe - te)]
    assert len(errors) >= len(words), f"the demo model recognised too few words: {predicted} vs {words}"
    assert statistics.median(errors) <= 120, f"median boundary error {statistics.median(errors)} ms"


@needs_demo
def test_funasr_generate_with_vad_is_batch_invariant_demo(long_wav):
    """FunASR's own VAD path (device "cpu:0" keeps its batching on) vs batch_size_s, and vs our layer."""
    automodel = ModelDir(DEMO_DIR).automodel(device="cpu:0", ncpu=2, disable_pbar=True, vad_model=str(fsmn_vad_dir()),
                                             vad_kwargs={"max_single_segment_time": 30_000})
    texts = {b: automodel.generate(str(long_wav), batch_size_s=b)[0]["text"] for b in (1, 60, 300)}
    assert texts[1] == texts[60] == texts[300]
    ours = tr.Transcriber(DEMO_DIR, threads=2).transcribe(long_wav, "long", batch_size_s=60)
    assert ours.text == texts[1]
