"""CLI: ``python -m sensevoice.training.data --out data/corpus --n-train 6000 --n-val 300 --n-test 600 --seed 0 --jobs 2``
writes the corpus; ``python -m sensevoice.training.data examples --out examples`` writes the README demo clips;
``python -m sensevoice.training.data testset --split open --out data/open --n-per-lang 60`` writes a
generalisation test split (``open``: held-out text sources and voices; ``cross``: also held-out engines);
``python -m sensevoice.training.data text --out data/tokenizer.txt`` writes tokenizer training text."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from sensevoice.argtypes import UsageError
from sensevoice.door import run_command
from sensevoice.training.data.corpus import (ACOUSTICS, EVENT_SETS, MAX_WARP, OPEN_SPLITS, make_corpus, make_examples,
                                             make_testset, training_text)
from sensevoice.training.data.engines import EngineMissing
from sensevoice.training.data.synth import ESPEAK
from sensevoice.training.data.voices import MAX_RANDOM_VARIANTS


def corpus_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.training.data", description=__doc__,
                                     epilog="Subcommand: 'examples --out DIR' writes the README demo clips.")
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. data/corpus)")
    parser.add_argument("--n-train", type=int, default=6000, help="train clips (wav files)")
    parser.add_argument("--n-val", type=int, default=300, help="validation clips")
    parser.add_argument("--n-test", type=int, default=600, help="test clips (held-out sentences and voices)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--warp", type=float, default=0.0,
                        help="speed/vocal-tract perturbation: each rendering's pitch and formants are scaled by a "
                             "factor drawn from [1 - W, 1 + W], its duration by the inverse (default 0: none)")
    parser.add_argument("--random-voices", type=int, default=0, metavar="N",
                        help="add N random espeak-ng voice variants to the train split's pool (default 0)")
    parser.add_argument("--open-text", type=float, default=0.0, metavar="P",
                        help="share of train speech clips whose sentence comes from the train-side open-vocabulary "
                             "sources (sensevoice.training.data.opentext; default 0: templates only)")
    parser.add_argument("--engines", type=float, default=0.0, metavar="P",
                        help="share of train English clips spoken by Festival instead of espeak-ng (default 0)")
    parser.add_argument("--pauses", type=float, default=0.0, metavar="P",
                        help="share of train espeak-ng clips spoken word by word with pauses between (default 0)")
    add_variety_options(parser)
    return parser


def add_variety_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", choices=EVENT_SETS, default="base",
                        help="base: BGM, applause, laughter; extended: also crying, coughing, sneezing, breathing "
                             "and music in several styles (default base)")
    parser.add_argument("--acoustics", choices=ACOUSTICS, default="base",
                        help="base: light room, 20-40 dB SNR; wide: room impulses RT60 0.2-1 s and 0-30 dB SNR "
                             "with babble (default base)")


def testset_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.training.data testset",
                                     description="Write a generalisation test split (see corpus.make_testset).")
    parser.add_argument("--split", choices=OPEN_SPLITS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. data/open)")
    parser.add_argument("--n-per-lang", type=int, default=60, help="speech clips per language")
    parser.add_argument("--n-events-alone", type=int, default=0, help="clips of each event alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    add_variety_options(parser)
    return parser


def examples_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.training.data examples",
                                     description="Write one short demo clip per language plus labels.jsonl.")
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. examples)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def text_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.training.data text",
                                     description="Write tokenizer training text (see corpus.training_text).")
    parser.add_argument("--out", type=Path, required=True, help="output text file, a sentence a line")
    parser.add_argument("--per-lang", type=int, default=30000, help="train-side opentext sentences per language")
    parser.add_argument("--templates", type=int, default=5000, help="template sentences per language")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parsers = {"text": text_parser, "examples": examples_parser, "testset": testset_parser}
    step = argv[0] if argv[:1] and argv[0] in parsers else "corpus"
    parser = parsers[step]() if step in parsers else corpus_parser()
    args = parser.parse_args(argv[1:] if step in parsers else argv)
    args.step = step
    return run_command(run, args, parser.prog)


def run(args: argparse.Namespace) -> int:
    if args.step == "text":
        lines = training_text(args.per_lang, args.templates, args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        print(json.dumps({"out": str(args.out.resolve()), "lines": len(lines)}))
        return 0
    if args.step == "testset" and (args.n_per_lang < 0 or args.n_events_alone < 0 or args.jobs < 1):
        raise UsageError("--n-per-lang and --n-events-alone must be >= 0, --jobs >= 1")
    if args.step == "corpus":
        check_corpus_arguments(args)
    if shutil.which(ESPEAK) is None:
        sys.exit(f"{ESPEAK} not found: run scripts/install_system_deps.sh")
    if args.step == "testset":
        start = time.perf_counter()
        try:
            summary = make_testset(args.out, args.split, args.n_per_lang, args.n_events_alone, seed=args.seed,
                                   jobs=args.jobs, events=args.events, acoustics=args.acoustics)
        except EngineMissing as error:
            sys.exit(str(error))
        print(json.dumps({"out": str(args.out.resolve()), "clips": summary["clips"], "rows": summary["rows"],
                          "seconds": round(time.perf_counter() - start, 1)}))
        return 0
    if args.step == "examples":
        args.out.mkdir(parents=True, exist_ok=True)
        for label in make_examples(args.out, args.seed):
            print(f"{label['file']}\t{label['rich']}")
        return 0
    start = time.perf_counter()
    summary = make_corpus(args.out, args.n_train, args.n_val, args.n_test, seed=args.seed, jobs=args.jobs,
                          warp=args.warp, random_voices=args.random_voices, open_text=args.open_text,
                          engines_p=args.engines, events=args.events, acoustics=args.acoustics, pauses=args.pauses)
    print(json.dumps({"out": str(args.out.resolve()), "clips": summary["clips"], "rows": summary["rows"],
                      "seconds": round(time.perf_counter() - start, 1)}))
    return 0


def check_corpus_arguments(args: argparse.Namespace) -> None:
    """The corpus options' ranges (UsageError), before espeak-ng is looked for."""
    for name in ("n_train", "n_val", "n_test"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')}={getattr(args, name)}; expected >= 0")
    if args.jobs < 1:
        raise UsageError(f"--jobs={args.jobs}; expected >= 1")
    if not 0.0 <= args.warp <= MAX_WARP:
        raise UsageError(f"--warp={args.warp}; expected 0 <= W <= {MAX_WARP}")
    for name in ("open_text", "engines", "pauses"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')}={getattr(args, name)}; expected 0 <= P <= 1")
    if not 0 <= args.random_voices <= MAX_RANDOM_VARIANTS:
        raise UsageError(f"--random-voices={args.random_voices}; expected 0 <= N <= {MAX_RANDOM_VARIANTS} "
                         "(espeak-ng lists at most 349 voices)")


if __name__ == "__main__":
    sys.exit(main())
