"""Speaker diarization benchmark: conversations with known turns, built from real recordings of different people
(the official example clips) or from synthetic voices, scored with pyannote.metrics; and the time and memory that
diarization adds to ``transcribe``.

    python -m sensevoice.bench.diarize tune                                   # the grid, on the tuning set only
    python -m sensevoice.bench.diarize accuracy                               # held-out test set, real speech
    python -m sensevoice.bench.diarize accuracy --source espeak              # espeak-ng voices (test set)
    python -m sensevoice.bench.diarize accuracy --source flite               # Flite + Festival voices (test set)
    python -m sensevoice.bench.diarize overhead --minutes 10 --repeats 3     # whole `transcribe` runs, A/B
    python -m sensevoice.bench.diarize speed --minutes 10 --threads 2        # added time, in one process
    python -m sensevoice.bench.diarize memory --minutes 60                              # peak RSS
    python -m sensevoice.bench.diarize summary                                          # bench/results/diarize.md

A conversation has 2-4 speakers and turns of 3-20 s (as long as a speaker's recording allows) separated by pauses
of 0.2-1.0 s; a turn is a random stretch of one speaker's speech. The reference marks as speech what the FSMN-VAD
finds in that stretch on its own, so the diarization error rate (DER, collar 0.25 s, overlap scored) counts missed
and false speech at the joins, and speaker confusion.

Held out: the clustering settings (sensevoice.diarize.DEFAULT_CLUSTERING) are chosen by ``tune`` on the *tuning*
conversations only; ``accuracy`` reports the *test* conversations (``--split tune`` to score the tuning set). The two
sets differ in (1) the random seed (TUNE_SEED vs TEST_SEED: different turn orders, lengths, pauses and cut points
inside each clip); (2) the speaker combinations: every 2-, 3- and 4-speaker subset of the pool, in sorted order, goes
alternately to tuning and test, so no test conversation has a set of voices that a tuning one has; (3) the one long
clip's audio: tuning cuts its turns from vad_example's 0-30 s, test from 30-60 s. The short clips (4.6-7.2 s each)
are too short to halve into 3 s turns, so both sets cut turns from the whole of each (different cut points).

Speakers of the official clips: en, zh, ja, ko, yue (one person each) and vad_example's first 60 s (one person,
halved between the sets; its last 7 s are another voice, left out). enNews is left out: it is a news report with
several voices whose turns are not known.
"""

from __future__ import annotations

from typing import Sequence

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensevoice import REPO_ROOT
from sensevoice.door import module_main
from sensevoice.bench.long import DATA_DIR, build_long_file, random_model_dir, reset_peak_rss, rss_mb

RESULTS_DIR = REPO_ROOT / "bench" / "results"
FS = 16000
COLLAR_S = 0.25
TURN_S = (3.0, 20.0)
PAUSE_S = (0.2, 1.0)
DEFAULT_CONVERSATIONS = 200  # per split (2, 3, 4, 2, ... speakers)
OFFICIAL_SPEAKERS = {"en": "en.mp3", "zh": "zh.mp3", "ja": "ja.mp3", "ko": "ko.mp3", "yue": "yue.mp3",
                     "vad_example": "vad_example.wav"}
SPLITS = ("tune", "test")
SPLIT_SEEDS = {"tune": 1000, "test": 0}  # the conversation generator's seed per split
# [start_ms, end_ms) of each clip that a split may cut turns from; a clip not named: all of it. vad_example's last
# 7 s (60-70 s) are another voice, left out of both.
SPLIT_CLIP_MS = {"tune": {"vad_example": (0, 30_000)}, "test": {"vad_example": (30_000, 60_000)}}
ESPEAK_SPEAKERS = {  # held-out variants of the data generator (its val and test pools), one accent and pitch each
    "m7": ("en-us", 45), "caleb": ("en-gb", 50), "f4": ("en-us", 55), "steph": ("en-gb-scotland", 60),
    "m6": ("en-029", 40), "Lee": ("en-us", 52), "f3": ("en-gb", 62), "grandma": ("en-us", 48)}
OTHER_ENGINE_SPEAKERS = {"flite:awb": ("flite", "awb"), "flite:rms": ("flite", "rms"), "flite:slt": ("flite", "slt"),
                         "festival:kal": ("festival", "kal_diphone"), "festival:ked": ("festival", "ked_diphone")}


@dataclass
class Speaker:
    """One person's speech: a waveform and where the VAD finds speech in it ([start, end) samples)."""

    name: str
    wave: np.ndarray
    spans: list[tuple[int, int]]

    def stretch(self, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """A random stretch of about ``seconds`` of this speaker (from speech start to speech end at most)."""
        first, last = self.spans[0][0], self.spans[-1][1]
        n = min(int(seconds * FS), last - first)
        start = first + int(rng.integers(0, last - first - n + 1))
        end = start + n
        spans = [(max(a, start) - start, min(b, end) - start) for a, b in self.spans if b > start and a < end]
        return self.wave[start:end], spans


def vad_spans(vad, wave: np.ndarray) -> list[tuple[int, int]]:
    return [(s * FS // 1000, e * FS // 1000) for s, e in vad.segments(wave)]


def official_speakers(vad, split: str) -> list[Speaker]:
    """The official clips' speakers, each cut to the part of its clip that ``split`` may use."""
    from sensevoice.audio import load_audio
    from sensevoice.modeldir import official_dir

    folder = official_dir()
    if folder is None:
        raise SystemExit("the official example clips are absent (../shared/official/example)")
    speakers = []
    for name, clip in OFFICIAL_SPEAKERS.items():
        wave = load_audio(str(folder / "example" / clip), clip).numpy()
        start_ms, end_ms = SPLIT_CLIP_MS[split].get(name, (0, len(wave) * 1000 // FS))
        wave = wave[start_ms * FS // 1000:end_ms * FS // 1000]
        speakers.append(Speaker(name, wave, vad_spans(vad, wave)))
    return speakers


def split_combinations(n_pool: int, n_speakers: int, split: str) -> list[tuple[int, ...]]:
    """The ``n_speakers``-subsets of a pool of ``n_pool`` that belong to ``split``: all of them in sorted order, the
    even-numbered to tuning, the odd-numbered to test (disjoint; both get some of every size the pool allows)."""
    from itertools import combinations

    every = list(combinations(range(n_pool), n_speakers))
    return every[SPLITS.index(split)::2]


def synthetic_speakers(vad, source: str, seconds: float = 40.0, seed: int = 0) -> list[Speaker]:
    """``seconds`` of English sentences per voice (the data generator's test-split sentences), 0.3 s apart."""
    from sensevoice.training.data import engines, synth
    from sensevoice.training.data.corpus import draw_sentence

    rng = np.random.default_rng(seed)
    table = ESPEAK_SPEAKERS if source == "espeak" else OTHER_ENGINE_SPEAKERS
    speakers = []
    for name, spec in table.items():
        parts, total = [], 0
        while total < seconds * FS:
            text = draw_sentence("en", "test", rng).say
            if source == "espeak":
                voice = synth.Voice(spec[0], name, spec[1], 165, 100, "medium", 0)
                x, rate = synth.espeak(text, voice)
            else:
                x, rate = engines.render_raw(text, engines.EngineVoice(spec[0], spec[1], 1.0, 1.0))
            x = synth.trim_silence(synth.resample(x, rate))
            parts += [x, np.zeros(int(0.3 * FS), np.float32)]
            total += len(x) + int(0.3 * FS)
        wave = np.concatenate(parts).astype(np.float32)
        speakers.append(Speaker(name, wave, vad_spans(vad, wave)))
    return speakers


@dataclass
class Conversation:
    wave: np.ndarray
    reference: list[tuple[float, float, str]]  # (start_s, end_s, speaker) of each stretch of speech
    speakers: list[str]


def conversation(pool: list[Speaker], n_speakers: int, rng: np.random.Generator,
                 split: str = "test") -> Conversation:
    """Turns of ``n_speakers`` people of ``pool`` (a combination of ``split``'s), no one twice in a row, everyone at
    least once."""
    combos = split_combinations(len(pool), n_speakers, split)
    chosen = [pool[i] for i in combos[int(rng.integers(len(combos)))]]
    n_turns = int(rng.integers(max(4, n_speakers), 9))
    order: list[int] = list(rng.permutation(n_speakers))
    while len(order) < n_turns:
        order.append(int(rng.choice([i for i in range(n_speakers) if i != order[-1]])))
    parts, reference, at = [], [], 0
    for i in order:
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * FS), np.float32)
        wave, spans = chosen[i].stretch(rng.uniform(*TURN_S), rng)
        at += len(pause)
        reference += [((at + a) / FS, (at + b) / FS, chosen[i].name) for a, b in spans]
        parts += [pause, wave]
        at += len(wave)
    parts.append(np.zeros(int(0.5 * FS), np.float32))
    return Conversation(np.concatenate(parts), reference, [s.name for s in chosen])


def score(conversations: list[Conversation], hypotheses: list[list]) -> dict:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=COLLAR_S, skip_overlap=False)
    rows, right = [], 0
    for conv, turns in zip(conversations, hypotheses):
        reference, hypothesis = Annotation(), Annotation()
        for start, end, name in conv.reference:
            reference[Segment(start, end)] = name
        for turn in turns:
            hypothesis[Segment(turn.start_ms / 1000, turn.end_ms / 1000)] = turn.label
        details = metric(reference, hypothesis, detailed=True)
        found = len({t.speaker for t in turns})
        right += found == len(conv.speakers)
        rows.append({"speakers": conv.speakers, "found": found, "der": round(details["diarization error rate"], 4),
                     "seconds": round(len(conv.wave) / FS, 1)})
    totals = {k: metric[k] for k in ("total", "missed detection", "false alarm", "confusion")}
    return {"der": round(abs(metric), 4), "missed": round(totals["missed detection"] / totals["total"], 4),
            "false_alarm": round(totals["false alarm"] / totals["total"], 4),
            "confusion": round(totals["confusion"] / totals["total"], 4),
            "count_accuracy": round(right / len(conversations), 4), "conversations": rows}


def prepare_only_transcriber(threads: int):
    """The VAD and speaker encoder that ``transcribe`` runs (no recogniser: the turns do not depend on it)."""
    from contextlib import redirect_stdout

    from sensevoice.pipeline import Transcriber

    with redirect_stdout(sys.stderr):
        return Transcriber(REPO_ROOT / "demo", backend=None, threads=threads)


def embedded_conversations(source: str, split: str, n: int, threads: int):
    """``n`` conversations of ``split`` (2, 3, 4, 2, ... speakers) with their speech found by the VAD and embedded,
    as ``Transcriber.prepare_wave`` does it with ``diarization``; clustering them is left to the caller."""
    from sensevoice.diarize import embed_speech

    transcriber = prepare_only_transcriber(threads)
    seed = SPLIT_SEEDS[split]
    pool = official_speakers(transcriber.vad, split) if source == "official" else \
        synthetic_speakers(transcriber.vad, source, seed=seed)
    rng = np.random.default_rng(seed)
    conversations = [conversation(pool, 2 + i % 3, rng, split) for i in range(n)]
    speeches, spent = [], 0.0
    for conv in conversations:
        t0 = time.perf_counter()
        speeches.append(embed_speech(conv.wave, transcriber.vad.segments(conv.wave), transcriber.diarizer.encoder))
        spent += time.perf_counter() - t0
    info = {"source": source, "split": split, "seed": seed, "speakers_in_pool": [s.name for s in pool],
            "conversations_n": n, "collar_s": COLLAR_S,
            "audio_s": round(sum(len(c.wave) for c in conversations) / FS, 1),
            "vad_and_embedding_wall_s": round(spent, 1)}
    return conversations, speeches, info


def diarized(conversations, speeches, settings, num_speakers: bool) -> list[list]:
    from sensevoice.diarize import DiarizationOptions, speech_turns

    return [speech_turns(speech, DiarizationOptions(num_speakers=len(conv.speakers)) if num_speakers else
                         DiarizationOptions(), settings) for conv, speech in zip(conversations, speeches)]


def accuracy(source: str, split: str, n: int, threads: int, num_speakers: bool) -> dict:
    """DER and speaker-count accuracy of the library's clustering settings on ``split``'s conversations."""
    from dataclasses import asdict

    from sensevoice.diarize import DEFAULT_CLUSTERING

    conversations, speeches, info = embedded_conversations(source, split, n, threads)
    t0 = time.perf_counter()
    hypotheses = diarized(conversations, speeches, DEFAULT_CLUSTERING, num_speakers)
    return {**info, "num_speakers_given": num_speakers, "settings": asdict(DEFAULT_CLUSTERING),
            "clustering_wall_s": round(time.perf_counter() - t0, 1), **score(conversations, hypotheses), **machine()}


# A first grid (thresholds 0.25-0.5, shares up to 0.12, smoothing 0-2) found the tuning set's best at its lowest
# threshold, 0.25; a second (0.2-0.35 in steps of 0.02-0.05, 40 conversations) at 0.22, one conversation ahead of
# 0.25: the right count moves by several points per 0.01 of threshold, so this grid steps by 0.01 and is scored on
# 200 conversations (DEFAULT_CONVERSATIONS), where one conversation is half a point.
TUNE_GRID = {"count": ("threshold", "silhouette"), "threshold": tuple(round(0.2 + 0.01 * i, 2) for i in range(11)),
             "min_cluster_share": (0.03, 0.05, 0.08), "smooth_windows": (1, 2, 3)}


def tune(source: str, n: int, threads: int) -> dict:
    """Every setting of TUNE_GRID scored on the tuning conversations only (the embeddings computed once); the best:
    the highest right-count share, then the lowest DER. The test conversations are never built here."""
    from dataclasses import asdict
    from itertools import product

    from sensevoice.diarize import ClusteringSettings

    conversations, speeches, info = embedded_conversations(source, "tune", n, threads)
    rows = []
    for values in product(*TUNE_GRID.values()):
        settings = ClusteringSettings(**dict(zip(TUNE_GRID, values)))
        scored = score(conversations, diarized(conversations, speeches, settings, False))
        rows.append({**asdict(settings), **{k: v for k, v in scored.items() if k != "conversations"}})
        print(f"{settings.count:10} threshold {settings.threshold:.2f} min share {settings.min_cluster_share:.2f} "
              f"smooth {settings.smooth_windows}: DER {100 * scored['der']:5.1f} %  right count "
              f"{100 * scored['count_accuracy']:3.0f} %", file=sys.stderr, flush=True)
    best = min(rows, key=lambda r: (-r["count_accuracy"], r["der"]))
    return {**info, "grid": {k: list(v) for k, v in TUNE_GRID.items()}, "best": best, "rows": rows, **machine()}


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def speed(minutes: float, threads: int, repeats: int) -> dict:
    """Wall time of ``Transcriber.transcribe`` on an N-minute file (official-size random weights: the same
    compute as the released model) with and without diarization, the best of ``repeats`` runs each."""
    from contextlib import redirect_stdout

    import model as sv
    from sensevoice.audio import load_audio
    from sensevoice.diarize import DiarizationOptions
    from sensevoice.pipeline import Transcriber

    audio = build_long_file(DATA_DIR / f"official_{minutes:g}min.wav", minutes, "official")
    with redirect_stdout(sys.stderr):
        transcriber = Transcriber(random_model_dir("official"), threads=threads)
    transcriber.diarizer.encoder  # loaded once, like the model: not part of either time
    options = sv.DecodingOptions(output_timestamp=True)  # as the CLI decodes
    times: dict[str, list[float]] = {"plain": [], "diarized": []}
    for _ in range(repeats):
        for name, diarization in (("plain", None), ("diarized", DiarizationOptions())):
            t0 = time.perf_counter()
            result = transcriber.transcribe(audio, audio.stem, options, diarization=diarization)
            times[name].append(time.perf_counter() - t0)
    # The diarization step alone (what --diarize adds to prepare), timed apart: on a shared machine the difference
    # of two whole runs swings with other jobs more than by diarization's share.
    wave = load_audio(str(audio), audio.stem).numpy()
    spans = transcriber.vad.segments(wave)
    alone = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        transcriber.diarizer(wave, spans)
        alone.append(time.perf_counter() - t0)
    plain, diarized = min(times["plain"]), min(times["diarized"])
    return {"audio_s": result.duration_ms / 1000, "threads": threads, "repeats": repeats,
            "transcribe_s": round(plain, 2), "transcribe_diarize_s": round(diarized, 2),
            "added_percent": round(100 * (diarized - plain) / plain, 1), "diarize_alone_s": round(min(alone), 2),
            "diarize_alone_percent": round(100 * min(alone) / plain, 1), "speakers_found": len(result.speakers),
            "times": {k: [round(t, 2) for t in v] for k, v in times.items()}, **machine()}


def overhead(minutes: float, threads: int, repeats: int) -> dict:
    """Whole ``sensevoice transcribe`` runs (a fresh process each: start-up, model and encoder loading, decoding,
    VAD, recognition, diarization, writing json) on the same N-minute file with and without ``--diarize``,
    alternating (plain, diarized, plain, ...) so that a change in the machine's load falls on both; the median of
    ``repeats`` runs each. Official-size random weights: the released model's compute."""
    import statistics
    import subprocess
    import tempfile

    audio = build_long_file(DATA_DIR / f"official_{minutes:g}min.wav", minutes, "official")
    model_dir = random_model_dir("official")
    times: dict[str, list[float]] = {"plain": [], "diarized": []}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            for name, extra in (("plain", []), ("diarized", ["--diarize"])):
                command = [sys.executable, "-m", "sensevoice", "transcribe", str(audio), "--model", str(model_dir),
                           "--threads", str(threads), "-f", "json", "-o", out, *extra]
                t0 = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
                times[name].append(time.perf_counter() - t0)
        speakers = {s["speaker"] for s in json.loads((Path(out) / f"{audio.stem}.json").read_text())["segments"]
                    if "speaker" in s}
    plain, diarized_s = statistics.median(times["plain"]), statistics.median(times["diarized"])
    return {"audio_s": round(minutes * 60, 1), "threads": threads, "repeats": repeats,
            "transcribe_median_s": round(plain, 2), "transcribe_diarize_median_s": round(diarized_s, 2),
            "added_percent": round(100 * (diarized_s - plain) / plain, 1), "speakers_found": len(speakers),
            "command": "sensevoice transcribe FILE --model RANDOM_OFFICIAL --threads N -f json -o DIR [--diarize]",
            "times": {k: [round(t, 2) for t in v] for k, v in times.items()}, **machine()}


def memory(minutes: float, threads: int) -> dict:
    """Peak RSS of preparing an N-minute file (decode, VAD, features) without and then with diarization."""
    from sensevoice.audio import load_audio
    from sensevoice.diarize import DiarizationOptions

    audio = build_long_file(DATA_DIR / f"official_{minutes:g}min.wav", minutes, "official")
    transcriber = prepare_only_transcriber(threads)
    transcriber.diarizer.encoder
    wave = load_audio(str(audio), audio.stem).numpy()
    out = {"audio_s": round(len(wave) / FS, 1), "waveform_mb": round(wave.nbytes / 2**20, 1)}
    for name, diarization in (("plain", None), ("diarized", DiarizationOptions())):
        reset_peak_rss()
        before = rss_mb()["VmRSS"]
        t0 = time.perf_counter()
        prepared = transcriber.prepare_wave(wave, audio.stem, diarization=diarization)
        out[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        out[f"{name}_peak_above_start_mb"] = round(rss_mb()["VmHWM"] - before, 1)
        del prepared
    return {**out, "threads": threads, **machine()}


def settings_text(settings: dict) -> str:
    """ClusteringSettings' fields as the summary names them: "threshold 0.23, share 0.05, smooth 2"."""
    return (f"{settings['count']} {settings['threshold']:g}, share {settings['min_cluster_share']:g}, smooth "
            f"{settings['smooth_windows']}")


def tune_line(name: str, r: dict) -> str:
    best = r["best"]
    return (f"Tuning ({name}): {len(r['rows'])} settings on {r['conversations_n']} tuning conversations of "
            f"{r['source']}; best (right count first, then DER): {settings_text(best)}: right count "
            f"{100 * best['count_accuracy']:.1f} %, DER {100 * best['der']:.1f} %.")


def overhead_line(name: str, r: dict) -> str:
    return (f"Whole runs ({name}): `transcribe` on a {r['audio_s'] / 60:g} min file, {r['threads']} threads, "
            f"official-size random weights, alternating, median of {r['repeats']}: {r['transcribe_median_s']:.1f} s "
            f"plain, {r['transcribe_diarize_median_s']:.1f} s with --diarize ({r['added_percent']:+.1f} %); load "
            f"{r['load_avg_1min']:.1f}, {r['date']}"
            + (" (a check that the command runs, not a measurement)" if r["repeats"] < 3 else "") + ".")


def speed_line(name: str, r: dict) -> str:
    return (f"Speed ({name}): {r['audio_s'] / 60:.0f} min file, {r['threads']} threads, official-size random "
            f"weights: transcribe {r['transcribe_s']:.1f} s, with diarization {r['transcribe_diarize_s']:.1f} s "
            f"({r['added_percent']:+.1f} %); the diarization step alone {r['diarize_alone_s']:.1f} s = "
            f"{r['diarize_alone_percent']:.1f} % of transcribe; best of {r['repeats']}, load "
            f"{r['load_avg_1min']:.1f}.")


def memory_line(name: str, r: dict) -> str:
    return (f"Memory ({name}): {r['audio_s'] / 60:.0f} min file (waveform {r['waveform_mb']:.0f} MiB): peak RSS "
            f"above the start while preparing {r['plain_peak_above_start_mb']:.0f} MiB without diarization, "
            f"{r['diarized_peak_above_start_mb']:.0f} MiB with it.")


# The lines under the table: each kind of result file and how one of them reads.
SUMMARY_LINES = (("diarize_tune_*.json", tune_line), ("diarize_overhead_*.json", overhead_line),
                 ("diarize_speed_*.json", speed_line), ("diarize_memory_*.json", memory_line))


def write_summary(results_dir: Path) -> Path:
    """bench/results/diarize.md: a table of every diarize_*.json there, the held-out test set first."""
    rows = []
    paths = sorted(results_dir.glob("diarize_accuracy_*.json"), key=lambda p: ("_tune" in p.name, p.name))
    for path in paths:
        r = json.loads(path.read_text())
        rows.append(f"| {r['source']}{' (count given)' if r['num_speakers_given'] else ''} | {r['split']} "
                    f"| {r['conversations_n']} | {r['audio_s'] / 60:.0f} | {100 * r['der']:.1f} "
                    f"| {100 * r['missed']:.1f} | {100 * r['false_alarm']:.1f} | {100 * r['confusion']:.1f} "
                    f"| {100 * r['count_accuracy']:.1f} | {settings_text(r['settings'])} | {r['date']} |")
    lines = ["# Speaker diarization (`python -m sensevoice.bench.diarize`)", "",
             "Conversations of 2-4 speakers, turns of 3-20 s, pauses of 0.2-1 s. DER by pyannote.metrics (collar "
             "0.25 s, overlap scored); the reference speech is what the FSMN-VAD finds in each speaker's stretch "
             "alone, so missed and false-alarm speech come from the VAD at the joins, confusion from the speakers.",
             "", "**test** rows are held out: the clustering settings were chosen by `tune` on the **tune** "
             "conversations only (another seed, other speaker combinations, vad_example's 0-30 s instead of its "
             "30-60 s; see the module's docstring).", "",
             "| voices | split | conversations | minutes | DER % | missed % | false alarm % | confusion % "
             "| right count % | settings | date |", "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    for pattern, line in SUMMARY_LINES:
        lines += [line(path.name, json.loads(path.read_text())) for path in sorted(results_dir.glob(pattern))]
    summary = results_dir / "diarize.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("accuracy", "tune", "overhead", "speed", "memory", "summary"))
    parser.add_argument("--source", choices=("official", "espeak", "flite"), default="official",
                        help="accuracy/tune: whose voices (official clips, espeak-ng variants, Flite + Festival "
                             "voices)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="accuracy: the held-out test conversations (default) or the tuning ones")
    parser.add_argument("--conversations", type=int, default=DEFAULT_CONVERSATIONS)
    parser.add_argument("--num-speakers", action="store_true", help="accuracy: give the true count")
    parser.add_argument("--minutes", type=float, default=10.0, help="overhead/speed/memory: length of the file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)


def run(args: argparse.Namespace) -> int:
    if args.what == "summary":
        print(write_summary(args.out).read_text())
        return 0
    if args.what == "accuracy":
        record = accuracy(args.source, args.split, args.conversations, args.threads, args.num_speakers)
        name = f"diarize_accuracy_{args.source}_{args.split}{'_known_count' if args.num_speakers else ''}.json"
    elif args.what == "tune":
        record = tune(args.source, args.conversations, args.threads)
        name = f"diarize_tune_{args.source}.json"
    elif args.what == "overhead":
        record = overhead(args.minutes, args.threads, args.repeats)
        name = f"diarize_overhead_{args.minutes:g}min_{args.threads}t.json"
    elif args.what == "speed":
        record = speed(args.minutes, args.threads, args.repeats)
        name = f"diarize_speed_{args.minutes:g}min_{args.threads}t.json"
    else:
        record = memory(args.minutes, args.threads)
        name = f"diarize_memory_{args.minutes:g}min.json"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("conversations", "rows")}, indent=2))
    if args.what != "tune":
        write_summary(args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.diarize", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
