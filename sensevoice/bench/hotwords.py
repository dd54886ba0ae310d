"""Hotword recall: a synthetic set of English sentences with rare names (and as many without), spoken by the
corpus's held-out espeak-ng voices, decoded greedy, with beam search and with biasing towards the names.

    python -m sensevoice.bench.hotwords --model demo --set data/hotwords --out bench/results/hotwords_demo

The set is built once (``--set``: wavs + ``set.jsonl``; needs espeak-ng) and reused. Reports: recall of the names
(a name counts when it appears as a word of the hypothesis), WER of the sentences with and without names, per
decoding. Every sentence is decoded with the whole name list as hotwords (the use case: a list of names known up
front, most absent from any one utterance).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile
from rapidfuzz.distance import Levenshtein

import model as sv
from sensevoice.argtypes import module_main
from sensevoice.bench.evaluate import normalize, report_paths
from sensevoice.pipeline import Transcriber

# Made-up names: rare for the demo model, spelled with its pieces.
NAMES = ("zorbel", "kaltrin", "morvax", "quintella", "brodwick", "tesmar", "valdor", "glimton", "fennick", "drusilla",
         "ostrava", "pellinor", "yarrow", "kessling", "marlowe", "tibbon", "wendric", "corvina", "halvard", "nimbus",
         "ravelle", "sorrento", "thackery", "ulmara", "vexley")
TEMPLATES = ("please call {} tomorrow morning", "my friend {} lives near the station", "we met {} at the park",
             "{} has a new red car", "the letter from {} came yesterday", "do you know where {} went",
             "tell {} that dinner is ready", "i saw {} in the big garden")
FILLERS = ("the doctor", "my sister", "our teacher", "the old man", "your brother", "the driver", "a neighbour",
           "the baker")
TEST_VOICES = ("m7", "caleb", "f4", "steph")  # synth.VOICE_POOLS["test"]: never heard in training


def build(out: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` sentences with a name and ``n`` without, as wavs under ``out`` and rows in ``out/set.jsonl``."""
    from sensevoice.training.data.synth import speak

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(2 * n):
        template = TEMPLATES[i % len(TEMPLATES)]
        name = NAMES[(i // 2) % len(NAMES)] if i % 2 == 0 else None
        text = template.format(name or FILLERS[(i // 2) % len(FILLERS)])
        wave, voice = speak(text, "en", TEST_VOICES[i % len(TEST_VOICES)], "NEUTRAL", rng)
        path = out / f"hw{i:04d}.wav"
        soundfile.write(path, wave, sv.SAMPLE_RATE)
        rows.append({"key": path.stem, "source": str(path), "text": text, "name": name, "voice": voice.name})
    (out / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def score(rows: list[dict[str, Any]], hyps: list[str]) -> dict[str, Any]:
    with_name = [(r, h) for r, h in zip(rows, hyps) if r["name"]]
    without = [(r, h) for r, h in zip(rows, hyps) if not r["name"]]

    def wer(pairs):
        errors = sum(Levenshtein.distance(normalize(r["text"]).split(), normalize(h).split()) for r, h in pairs)
        return errors / max(sum(len(normalize(r["text"]).split()) for r, _ in pairs), 1)

    found = sum(r["name"] in normalize(h).split() for r, h in with_name)
    return {"recall": found / max(len(with_name), 1), "names": len(with_name), "wer_with": wer(with_name),
            "wer_without": wer(without), "sentences_without": len(without)}


DECODINGS = {"greedy": {}, "beam4": {"beam_size": 4}}


def run(args: argparse.Namespace) -> int:
    set_dir = Path(args.set)
    listed = set_dir / "set.jsonl"
    rows = [json.loads(line) for line in listed.open()] if listed.is_file() else build(set_dir, args.n)
    transcriber = Transcriber(args.model, vad=False, threads=args.threads)
    prepared = [transcriber.prepare(r["source"], r["key"]) for r in rows]
    decodings = dict(DECODINGS)
    for weight in args.weights:
        decodings[f"beam4+hotwords w={weight:g}"] = {"beam_size": 4, "hotwords": NAMES, "hotword_weight": weight}
    report: dict[str, Any] = {"model": str(args.model), "set": str(listed), "hotwords": list(NAMES), "results": {}}
    for name, fields in decodings.items():
        start = time.perf_counter()
        results = transcriber.decode(prepared, sv.DecodingOptions(language="en", **fields))
        entry = score(rows, [r["clean_text"] for r in results])
        entry["seconds"] = round(time.perf_counter() - start, 2)
        report["results"][name] = entry
        print(f"{name:28s} recall {100 * entry['recall']:6.2f} %  WER with names {100 * entry['wer_with']:6.2f} %  "
              f"WER without {100 * entry['wer_without']:6.2f} %  ({entry['seconds']} s)")
    if args.out:
        table = ["| decoding | name recall | WER, sentences with names | WER, sentences without | decode s |",
                 "|---|---|---|---|---|"]
        table += [f"| {k} | {100 * v['recall']:.2f} % ({v['names']}) | {100 * v['wer_with']:.2f} % | "
                  f"{100 * v['wer_without']:.2f} % ({v['sentences_without']}) | {v['seconds']} |"
                  for k, v in report["results"].items()]
        md, record = report_paths(Path(args.out))
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(f"### Hotword recall: {args.model} on {listed} (language en, {len(NAMES)} hotwords)\n\n"
                      + "\n".join(table) + "\n")
        record.write_text(json.dumps(report, indent=2))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo", help="model directory")
    parser.add_argument("--set", default="data/hotwords", help="the set's directory (built there if missing)")
    parser.add_argument("--n", type=int, default=120, help="sentences with a name (and as many without) to build")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="hotword weights to try")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write OUT.md and OUT.json")


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.hotwords", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
