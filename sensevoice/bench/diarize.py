"""Speaker diarization benchmark: conversations with known turns, built from real recordings of different people
(the official example clips) or from synthetic voices, scored with pyannote.metrics; and the time and memory that
diarization adds to ``transcribe``.

    python -m sensevoice.bench.diarize accuracy --source official --conversations 40   # real speech
    python -m sensevoice.bench.diarize accuracy --source espeak                         # espeak-ng voices
    python -m sensevoice.bench.diarize accuracy --source flite                          # Flite + Festival voices
    python -m sensevoice.bench.diarize speed --minutes 10 --threads 2                   # added time
    python -m sensevoice.bench.diarize memory --minutes 60                              # peak RSS
    python -m sensevoice.bench.diarize summary                                          # bench/results/diarize.md

A conversation has 2-4 speakers and turns of 3-20 s (as long as a speaker's recording allows) separated by pauses
of 0.2-1.0 s; a turn is a random stretch of one speaker's speech. The reference marks as speech what the FSMN-VAD
finds in that stretch on its own, so the diarization error rate (DER, collar 0.25 s, overlap scored) counts missed
and false speech at the joins, and speaker confusion.

Speakers of the official clips: en, zh, ja, ko, yue (one person each) and vad_example's first 60 s (one person;
its last 7 s are another voice, left out). enNews is left out: it is a news report with several voices whose turns
are not known.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensevoice import REPO_ROOT
from sensevoice.bench.long import DATA_DIR, build_long_file, random_model_dir, reset_peak_rss, rss_mb

RESULTS_DIR = REPO_ROOT / "bench" / "results"
FS = 16000
COLLAR_S = 0.25
TURN_S = (3.0, 20.0)
PAUSE_S = (0.2, 1.0)
OFFICIAL_SPEAKERS = {"en": ("en.mp3", None), "zh": ("zh.mp3", None), "ja": ("ja.mp3", None),
                     "ko": ("ko.mp3", None), "yue": ("yue.mp3", None), "vad_example": ("vad_example.wav", 60_000)}
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


def official_speakers(vad) -> list[Speaker]:
    from sensevoice.audio import load_audio
    from sensevoice.modeldir import official_dir

    folder = official_dir()
    if folder is None:
        raise SystemExit("the official example clips are absent (../shared/official/example)")
    speakers = []
    for name, (clip, keep_ms) in OFFICIAL_SPEAKERS.items():
        wave = load_audio(str(folder / "example" / clip), clip).numpy()
        if keep_ms:
            wave = wave[:keep_ms * FS // 1000]
        speakers.append(Speaker(name, wave, vad_spans(vad, wave)))
    return speakers


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


def conversation(pool: list[Speaker], n_speakers: int, rng: np.random.Generator) -> Conversation:
    """Turns of ``n_speakers`` people of ``pool``, no one twice in a row, everyone at least once."""
    chosen = [pool[i] for i in rng.choice(len(pool), n_speakers, replace=False)]
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
    """VAD and diarization exactly as ``transcribe`` runs them (no recogniser: the turns do not depend on it)."""
    from contextlib import redirect_stdout

    from sensevoice.pipeline import Transcriber

    with redirect_stdout(sys.stderr):
        return Transcriber(REPO_ROOT / "demo", backend=None, threads=threads)


def accuracy(source: str, n: int, seed: int, threads: int, num_speakers: bool) -> dict:
    from sensevoice.diarize import DiarizationOptions

    transcriber = prepare_only_transcriber(threads)
    pool = official_speakers(transcriber.vad) if source == "official" else \
        synthetic_speakers(transcriber.vad, source, seed=seed)
    rng = np.random.default_rng(seed)
    conversations = [conversation(pool, 2 + i % 3, rng) for i in range(n)]
    hypotheses, spent = [], 0.0
    for i, conv in enumerate(conversations):
        options = DiarizationOptions(num_speakers=len(conv.speakers)) if num_speakers else DiarizationOptions()
        t0 = time.perf_counter()
        hypotheses.append(list(transcriber.prepare_wave(conv.wave, f"conv{i}", diarization=options).turns))
        spent += time.perf_counter() - t0
    audio_s = sum(len(c.wave) for c in conversations) / FS
    return {"source": source, "speakers_in_pool": [s.name for s in pool], "conversations_n": n, "seed": seed,
            "num_speakers_given": num_speakers, "collar_s": COLLAR_S, "audio_s": round(audio_s, 1),
            "prepare_wall_s": round(spent, 1), **score(conversations, hypotheses), **machine()}


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
    return {"audio_s": result["duration_ms"] / 1000, "threads": threads, "repeats": repeats,
            "transcribe_s": round(plain, 2), "transcribe_diarize_s": round(diarized, 2),
            "added_percent": round(100 * (diarized - plain) / plain, 1), "diarize_alone_s": round(min(alone), 2),
            "diarize_alone_percent": round(100 * min(alone) / plain, 1), "speakers_found": len(result["speakers"]),
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


def write_summary(results_dir: Path) -> Path:
    """bench/results/diarize.md: a table of every diarize_*.json there."""
    rows = []
    for path in sorted(results_dir.glob("diarize_accuracy_*.json")):
        r = json.loads(path.read_text())
        rows.append(f"| {r['source']}{' (count given)' if r['num_speakers_given'] else ''} | {r['conversations_n']} "
                    f"| {r['audio_s'] / 60:.0f} | {100 * r['der']:.1f} | {100 * r['missed']:.1f} "
                    f"| {100 * r['false_alarm']:.1f} | {100 * r['confusion']:.1f} | {100 * r['count_accuracy']:.0f} "
                    f"| {r['load_avg_1min']:.1f} | {r['date']} |")
    lines = ["# Speaker diarization (`python -m sensevoice.bench.diarize`)", "",
             "Conversations of 2-4 speakers, turns of 3-20 s, pauses of 0.2-1 s. DER by pyannote.metrics (collar "
             "0.25 s, overlap scored); the reference speech is what the FSMN-VAD finds in each speaker's stretch "
             "alone, so missed and false-alarm speech come from the VAD at the joins, confusion from the speakers.",
             "", "| voices | conversations | minutes | DER % | missed % | false alarm % | confusion % "
             "| right count % | load | date |", "|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    for path in sorted(results_dir.glob("diarize_speed_*.json")):
        r = json.loads(path.read_text())
        lines.append(f"Speed ({path.name}): {r['audio_s'] / 60:.0f} min file, {r['threads']} threads, official-size "
                     f"random weights: transcribe {r['transcribe_s']:.1f} s, with diarization "
                     f"{r['transcribe_diarize_s']:.1f} s ({r['added_percent']:+.1f} %); the diarization step alone "
                     f"{r['diarize_alone_s']:.1f} s = {r['diarize_alone_percent']:.1f} % of transcribe; best of "
                     f"{r['repeats']}, load {r['load_avg_1min']:.1f}.")
    for path in sorted(results_dir.glob("diarize_memory_*.json")):
        r = json.loads(path.read_text())
        lines.append(f"Memory ({path.name}): {r['audio_s'] / 60:.0f} min file (waveform {r['waveform_mb']:.0f} MiB): "
                     f"peak RSS above the start while preparing {r['plain_peak_above_start_mb']:.0f} MiB without "
                     f"diarization, {r['diarized_peak_above_start_mb']:.0f} MiB with it.")
    summary = results_dir / "diarize.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.bench.diarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("accuracy", "speed", "memory", "summary"))
    parser.add_argument("--source", choices=("official", "espeak", "flite"), default="official",
                        help="accuracy: whose voices (official clips, espeak-ng variants, Flite + Festival voices)")
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--num-speakers", action="store_true", help="accuracy: give the true count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=10.0, help="speed/memory: length of the file")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.what == "summary":
        print(write_summary(args.out).read_text())
        return 0
    if args.what == "accuracy":
        record = accuracy(args.source, args.conversations, args.seed, args.threads, args.num_speakers)
        name = f"diarize_accuracy_{args.source}{'_known_count' if args.num_speakers else ''}.json"
    elif args.what == "speed":
        record = speed(args.minutes, args.threads, args.repeats)
        name = f"diarize_speed_{args.minutes:g}min_{args.threads}t.json"
    else:
        record = memory(args.minutes, args.threads)
        name = f"diarize_memory_{args.minutes:g}min.json"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "conversations"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
