"""Hotword recall: a synthetic set of English corpus sentences with rare first names (and as many without), spoken by
the corpus's held-out espeak-ng voices, decoded greedy, with beam search and with biasing towards the names.

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
from sensevoice.door import module_main
from sensevoice.bench.evaluate import normalize, report_paths
from sensevoice.pipeline import Transcriber

N_NAMES = 25  # hotwords: first names the training corpus never used


def rare_names(n: int = N_NAMES) -> tuple[str, ...]:
    """``n`` English first names from Faker that the corpus generator's name pool (its training names) lacks: words
    the model has never heard, spelled with its pieces."""
    from sensevoice.training.data.text import faker_names

    known = {name.lower() for name in faker_names("en_US", "first_name")}
    pool = faker_names("en_US", "first_name", n=400, seed=2024)
    return tuple(name.lower() for name in pool if name.lower() not in known and name.isalpha())[:n]


def build(out: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` corpus sentences whose person is a rare name and ``n`` corpus sentences without one, spoken by the
    corpus's held-out voices as the corpus renders them, as wavs under ``out`` and rows in ``out/set.jsonl``. The
    sentences come from the corpus grammar, so what the model must learn from the hotwords is the name alone."""
    import dataclasses

    from sensevoice.training.data import corpus, synth, text

    rng = np.random.default_rng(seed)
    names = rare_names()
    with_person = tuple(t for t in text.EN_GRAMMAR.plain if "{person}" in t and "{person2}" not in t)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(2 * n):
        name = names[(i // 2) % len(names)] if i % 2 == 0 else None
        if name:
            grammar = dataclasses.replace(text.EN_GRAMMAR, plain=with_person,
                                          slots={**text.EN_GRAMMAR.slots, "person": lambda r, x=name: (x, x)})
        else:
            grammar = text.EN_GRAMMAR
        sentence = text.make_sentence(grammar, rng, numeric=False)
        variants = synth.VOICE_POOLS["test"]  # the corpus's held-out voices, never heard in training
        speech, voice = synth.speak(sentence.say, "en", variants[i % len(variants)], "NEUTRAL", rng)
        wave, _ = corpus.finish_audio(corpus.compose(speech, "Speech", rng, corpus.MAX_CLIP_S)[0], rng)  # as the
        # corpus lays out its clips: pauses around the speech, room, background noise
        path = out / f"hw{i:04d}.wav"
        soundfile.write(path, wave, sv.SAMPLE_RATE)
        rows.append({"key": path.stem, "source": str(path), "text": sentence.spoken, "name": name,
                     "voice": voice.name})
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
    names = tuple(sorted({r["name"] for r in rows if r["name"]}))
    transcriber = Transcriber(args.model, vad=False, threads=args.threads)
    prepared = [transcriber.prepare(r["source"], r["key"]) for r in rows]
    decodings = dict(DECODINGS)
    for weight in args.weights:
        decodings[f"beam4+hotwords w={weight:g}"] = {"beam_size": 4, "hotwords": names, "hotword_weight": weight}
    report: dict[str, Any] = {"model": str(args.model), "set": str(listed), "hotwords": list(names), "results": {}}
    for name, fields in decodings.items():
        start = time.perf_counter()
        results = transcriber.decode(prepared, sv.DecodingOptions(language="en", **fields))
        entry = score(rows, [r.clean_text for r in results])
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
        md.write_text(f"### Hotword recall: {args.model} on {listed} (language en, {len(names)} hotwords)\n\n"
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
