"""Decodings compared on an official-format test split: greedy, beam search, and restrict_language with each row's
true language forced; plus how well the word confidence is calibrated.

    python -m sensevoice.bench.decoding --model demo --test data/corpus/test.jsonl --out bench/results/decoding_demo

Per decoding: the error rates of ``bench.evaluate.score`` (WER en, CER others) and the outputs holding a character
of a script their language does not use (``decoding.LANGUAGE_SCRIPTS``). Calibration (greedy, language auto): each
hypothesis word is right when the alignment to the reference keeps it unchanged (Levenshtein over words for en,
characters otherwise: a CJK "word" is one character); reported are the error rates of words under 0.5 and from 0.9
up, the expected calibration error over 10 bins, and the bins themselves (``sensevoice.bench.plots`` draws them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rapidfuzz.distance import Levenshtein

import model as sv
from sensevoice import decoding
from sensevoice.door import module_main
from sensevoice.bench.evaluate import WORD_LANGUAGES, normalize, report_paths, score, strip_tag
from sensevoice.pipeline import Transcriber
from sensevoice.datalist import read_jsonl

N_BINS = 10


def decode_rows(transcriber: Transcriber, prepared, rows, forced: bool, **fields) -> list[dict[str, Any]]:
    """Results in row order; rows grouped by (ITN choice, forced language) share decode calls."""
    hyps: list[dict[str, Any]] = [{}] * len(rows)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        language = strip_tag(row["text_language"]) if forced else "auto"
        groups.setdefault((strip_tag(row["with_or_wo_itn"]), language), []).append(i)
    for (itn, language), chosen in groups.items():
        options = sv.DecodingOptions(language=language, textnorm=itn, output_timestamp=True, **fields)
        for i, result in zip(chosen, transcriber.decode([prepared[i] for i in chosen], options)):
            hyps[i] = result.to_dict()
    return hyps


def foreign_script(rows, hyps) -> int:
    """Outputs with a character of a script their (true) language does not use."""
    bad = 0
    for row, hyp in zip(rows, hyps):
        language = strip_tag(row["text_language"])
        if language in decoding.LANGUAGE_SCRIPTS:
            bad += bool(decoding.scripts_of(hyp["clean_text"]) - decoding.LANGUAGE_SCRIPTS[language])
    return bad


def word_correctness(row: dict[str, Any], hyp: dict[str, Any]) -> list[tuple[float, bool]]:
    """(probability, right) per hypothesis word (a CJK word: per character, each with its word's probability)."""
    language = strip_tag(row["text_language"])
    words, probs = hyp.get("words", []), hyp.get("word_probability", [])
    units, unit_probs = [], []
    for word, p in zip(words, probs):
        word = normalize(word)
        if not word:
            continue
        parts = word.split() if language in WORD_LANGUAGES else [c for c in word if not c.isspace()]
        units += parts
        unit_probs += [p] * len(parts)
    ref = normalize(row["target"])
    ref_units = ref.split() if language in WORD_LANGUAGES else [c for c in ref if not c.isspace()]
    right = [False] * len(units)
    for op in Levenshtein.opcodes(units, ref_units):
        if op.tag == "equal":
            for k in range(op.src_start, op.src_end):
                right[k] = True
    return list(zip(unit_probs, right))


def calibration(pairs: list[tuple[float, bool]]) -> dict[str, Any]:
    probs = np.array([p for p, _ in pairs])
    right = np.array([r for _, r in pairs], dtype=float)
    bins = []
    ece = 0.0
    for k in range(N_BINS):
        inside = (probs >= k / N_BINS) & ((probs < (k + 1) / N_BINS) if k < N_BINS - 1 else (probs <= 1))
        if inside.any():
            bins.append({"low": k / N_BINS, "high": (k + 1) / N_BINS, "count": int(inside.sum()),
                         "confidence": float(probs[inside].mean()), "accuracy": float(right[inside].mean())})
            ece += inside.sum() / len(probs) * abs(probs[inside].mean() - right[inside].mean())
    low, high = probs < 0.5, probs >= 0.9
    return {"words": len(pairs), "ece": float(ece), "bins": bins,
            "error_rate_below_0.5": float(1 - right[low].mean()) if low.any() else None, "words_below_0.5": int(low.sum()),
            "error_rate_from_0.9": float(1 - right[high].mean()) if high.any() else None, "words_from_0.9": int(high.sum())}


def run(args: argparse.Namespace) -> int:
    rows = [r for r in read_jsonl(Path(args.test))[: args.limit or None]]
    transcriber = Transcriber(args.model, vad=False, threads=args.threads)
    prepared = [transcriber.prepare(r["source"], r["key"]) for r in rows]
    runs = {"greedy (auto)": (False, {}), f"beam {args.beam} (auto)": (False, {"beam_size": args.beam}),
            "greedy, true language forced": (True, {}),
            "restrict_language, true language forced": (True, {"restrict_language": True}),
            f"beam {args.beam} + restrict_language, forced": (True, {"beam_size": args.beam, "restrict_language": True})}
    report: dict[str, Any] = {"model": str(args.model), "test": str(args.test), "utterances": len(rows), "runs": {}}
    greedy_hyps = None
    for name, (forced, fields) in runs.items():
        hyps = decode_rows(transcriber, prepared, rows, forced, **fields)
        greedy_hyps = greedy_hyps or hyps
        result = score(rows, hyps)
        entry = {"error_rate": {k: v["value"] for k, v in result["error_rate"].items()},
                 "foreign_script_outputs": foreign_script(rows, hyps)}
        report["runs"][name] = entry
        print(name, json.dumps(entry))
    pairs = [pair for row, hyp in zip(rows, greedy_hyps) if strip_tag(row["text_language"]) != "nospeech"
             for pair in word_correctness(row, hyp)]
    report["calibration"] = calibration(pairs)
    c = report["calibration"]
    print(f"calibration: ECE {c['ece']:.4f}; error rate of words < 0.5: {c['error_rate_below_0.5']} "
          f"({c['words_below_0.5']}), >= 0.9: {c['error_rate_from_0.9']} ({c['words_from_0.9']})")
    if args.out:
        languages = sorted({k for e in report["runs"].values() for k in e["error_rate"]})
        lines = [f"### Decodings: {args.model} on {args.test} ({len(rows)} utterances)", "",
                 "| decoding | " + " | ".join(languages) + " | outputs with a foreign script |",
                 "|---" * (len(languages) + 2) + "|"]
        for name, e in report["runs"].items():
            lines.append(f"| {name} | " + " | ".join(f"{100 * e['error_rate'].get(k, float('nan')):.2f} %"
                                                    for k in languages) + f" | {e['foreign_script_outputs']} |")
        lines += ["", f"Word confidence (greedy, auto; a word's probability is the minimum of its pieces'): "
                      f"ECE {c['ece']:.4f} over {c['words']} words; error rate {c['error_rate_below_0.5']:.3f} below "
                      f"0.5 ({c['words_below_0.5']} words) vs {c['error_rate_from_0.9']:.3f} from 0.9 "
                      f"({c['words_from_0.9']} words)."]
        md, record = report_paths(Path(args.out))
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text("\n".join(lines) + "\n")
        record.write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(f"figure: {reliability_figure(record, Path(args.fig))}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo", help="model directory")
    parser.add_argument("--test", default="data/corpus/test.jsonl", help="official-format test jsonl")
    parser.add_argument("--fig", default="fig/confidence_reliability.png", help="reliability figure (with --out)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", help="write OUT.md and OUT.json")


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.decoding", __doc__, add_arguments, run, argv)



def reliability_figure(record: Path, out: Path) -> Path:
    """The reliability diagram of a ``--out`` record: accuracy vs mean confidence per bin, bin sizes below.

        python -c "from sensevoice.bench.decoding import reliability_figure as f; \
f('bench/results/decoding_demo.json', 'fig/confidence_reliability.png')"
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = json.loads(Path(record).read_text())["calibration"]
    centres = [(b["low"] + b["high"]) / 2 for b in c["bins"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5), dpi=120, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    top.bar(centres, [b["accuracy"] for b in c["bins"]], width=1 / N_BINS, edgecolor="k", alpha=0.7,
            label="share of words right")
    top.plot([b["confidence"] for b in c["bins"]], [b["accuracy"] for b in c["bins"]], "o", color="C3",
             label="(mean confidence, accuracy)")
    top.set_ylabel("accuracy")
    top.set_title(f"word confidence, ECE {c['ece']:.3f} ({c['words']} words)")
    top.legend(fontsize=7)
    bottom.bar(centres, [b["count"] for b in c["bins"]], width=1 / N_BINS, edgecolor="k")
    bottom.set_yscale("log")
    bottom.set_xlabel("word probability (minimum of its pieces')")
    bottom.set_ylabel("words")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
