"""End-to-end time of one 10 s clip (features, encoder, search) with greedy, beam 4, and beam 4 + 100 hotwords.

    python -m sensevoice.bench.decoding_speed --threads 2 --out bench/results/decoding_speed

Models: the demo model and random official-size weights (``bench.speed.resolve_model(None, work)``). The clip is
the five example clips joined and cut to 10 s. Prints the median of ``--reps`` runs per decoding and its ratio to
greedy, and writes OUT.md + OUT.json. No assertion: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Iterable

import numpy as np

import model as sv
from sensevoice.audio import load_audio
from sensevoice import REPO_ROOT
from sensevoice.modeldir import DEMO_DIR
from sensevoice.door import module_main
from sensevoice.bench.evaluate import report_paths
from sensevoice.bench.hotwords import rare_names
from sensevoice.bench.speed import DEFAULT_WORK, resolve_model
from sensevoice.pipeline import Transcriber

CLIP_S = 10
SYLLABLES = ("ka", "lo", "ver", "min", "tra", "sel", "bor", "dun", "qui", "zan")


def hotwords(n: int) -> tuple[str, ...]:
    """``n`` hotwords: the hotword set's rare first names, then made-up three-syllable ones."""
    made = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("n", "x", "l")]
    return tuple((list(rare_names()) + made)[:n])


def clip() -> np.ndarray:
    waves = [load_audio(str(p), p.name).numpy() for p in sorted((REPO_ROOT / "examples").glob("*.flac"))]
    wave = np.concatenate(waves * 4)
    return wave[: CLIP_S * sv.SAMPLE_RATE]


def time_decodings(model_dir: Path, threads: int, reps: int) -> dict[str, float]:
    transcriber = Transcriber(model_dir, vad=False, threads=threads)
    wave = clip()
    decodings = {"greedy": sv.DecodingOptions(), "beam 4": sv.DecodingOptions(beam_size=4),
                 "beam 4 + 100 hotwords": sv.DecodingOptions(beam_size=4, hotwords=hotwords(100))}
    times = {}
    for name, options in decodings.items():
        transcriber.decode([transcriber.prepare_wave(wave, "warmup")], options)
        runs = []
        for _ in range(reps):
            start = time.perf_counter()
            transcriber.decode([transcriber.prepare_wave(wave, "clip")], options)
            runs.append(time.perf_counter() - start)
        times[name] = statistics.median(runs)
    return times


def run(args: argparse.Namespace) -> int:
    models = {"demo": Path(args.demo), "official-size (random weights)": resolve_model(None, Path(args.work))[0]}
    report = {"clip_s": CLIP_S, "threads": args.threads, "reps": args.reps, "models": {}}
    lines = [f"### End-to-end time of a {CLIP_S} s clip, {args.threads} threads, median of {args.reps}", "",
             "| model | decoding | seconds | x greedy |", "|---|---|---|---|"]
    for label, path in models.items():
        times = time_decodings(path, args.threads, args.reps)
        report["models"][label] = times
        for name, seconds in times.items():
            ratio = seconds / times["greedy"]
            lines.append(f"| {label} | {name} | {seconds:.3f} | {ratio:.2f} |")
            print(f"{label:32s} {name:24s} {seconds:.3f} s  x{ratio:.2f}", flush=True)
    if args.out:
        md, record = report_paths(Path(args.out))
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text("\n".join(lines) + "\n")
        record.write_text(json.dumps(report, indent=2))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", default=str(DEMO_DIR))
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="where random official-size weights are cached")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", help="write OUT.md and OUT.json")


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.decoding_speed", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
