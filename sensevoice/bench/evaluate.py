"""Evaluate a model directory on an official-format jsonl test set.

    python -m sensevoice.bench.evaluate --model demo --test data/corpus/test.jsonl --out bench/results/demo_eval

Prints and writes (markdown + JSON) CER for zh/yue/ja/ko, WER for en, language-ID accuracy, emotion accuracy,
event accuracy and ITN-form accuracy. Decoding uses ``language="auto"`` so that LID is measured, and each
utterance's own ``with_or_wo_itn`` so that both forms are exercised.

ITN-form accuracy: over utterances whose reference contains a number in either form, the share whose
hypothesis has Arabic digits exactly when the reference does (written form for <|withitn|>, spoken for <|woitn|>).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from rapidfuzz.distance import Levenshtein
from tqdm import tqdm

import model as sv

from sensevoice.pipeline import Transcriber
from sensevoice.argtypes import add_decoding_arguments, decoding_options
from sensevoice.door import module_main
from sensevoice.datalist import read_jsonl

WORD_LANGUAGES = {"en"}  # scored by WER; the others by CER
NUMBER_WORDS = re.compile(r"\d|\b(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                          r"forty|fifty|hundred|thousand)\b|[零一二三四五六七八九十百千万两]", re.IGNORECASE)


def strip_tag(tag: str) -> str:
    return tag[2:-2] if tag.startswith("<|") and tag.endswith("|>") else tag


def normalize(text: str) -> str:
    """Case-folded, punctuation (Unicode P*) replaced by spaces, whitespace collapsed: scores ignore both."""
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text.lower())
    return " ".join(text.split())


def units(text: str, language: str) -> list[str]:
    text = normalize(text)
    return text.split() if language in WORD_LANGUAGES else [c for c in text if not c.isspace()]


def score(rows: Sequence[dict[str, Any]], hyps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate metrics from reference rows and hypothesis results (model.inference dicts)."""
    errors, totals = defaultdict(int), defaultdict(int)
    hits = defaultdict(lambda: [0, 0])
    for row, hyp in zip(rows, hyps):
        language = strip_tag(row["text_language"])
        for field, reference in (("language", language), ("emotion", strip_tag(row["emo_target"])),
                                 ("event", strip_tag(row["event_target"]))):
            hits[field][0] += hyp[field] == reference
            hits[field][1] += 1
        if language != "nospeech":
            ref_units, hyp_units = units(row["target"], language), units(hyp["clean_text"], language)
            errors[language] += Levenshtein.distance(ref_units, hyp_units)
            totals[language] += len(ref_units)
        if NUMBER_WORDS.search(row["target"]):
            hits["itn_form"][0] += bool(re.search(r"\d", hyp["clean_text"])) == bool(re.search(r"\d", row["target"]))
            hits["itn_form"][1] += 1
    result: dict[str, Any] = {"utterances": len(rows), "error_rate": {}, "accuracy": {}}
    for language in sorted(totals):
        result["error_rate"][language] = {"metric": "WER" if language in WORD_LANGUAGES else "CER",
                                          "value": errors[language] / max(totals[language], 1),
                                          "units": totals[language]}
    for field, (right, count) in hits.items():
        result["accuracy"][field] = {"value": right / count if count else float("nan"), "count": count}
    return result


def markdown(result: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "", "| metric | value | over |", "|---|---|---|"]
    for language, entry in result["error_rate"].items():
        lines.append(f"| {entry['metric']} {language} | {100 * entry['value']:.2f} % | {entry['units']} units |")
    names = {"language": "LID accuracy", "emotion": "emotion accuracy", "event": "event accuracy",
             "itn_form": "ITN-form accuracy"}
    for field, entry in result["accuracy"].items():
        lines.append(f"| {names.get(field, field)} | {100 * entry['value']:.2f} % | {entry['count']} utterances |")
    return "\n".join(lines) + "\n"


def decode(model_dir: Path, rows: Sequence[dict[str, Any]], batch: int, threads: int | None,
           base: sv.DecodingOptions = sv.DecodingOptions()) -> list[dict[str, Any]]:
    """Every row's source through the pipeline (whole clips, no VAD: the test sets are short utterances), with
    the ``base`` options, language auto (LID is measured) and the row's own ITN choice."""
    transcriber = Transcriber(model_dir, vad=False, threads=threads, batch_size_s=batch * 10.0)
    hyps: list[dict[str, Any]] = [{}] * len(rows)
    for itn in ("<|woitn|>", "<|withitn|>"):
        options = dataclasses.replace(base, language="auto", textnorm=strip_tag(itn))
        chosen = [i for i, r in enumerate(rows) if r["with_or_wo_itn"] == itn]
        for start in tqdm(range(0, len(chosen), batch), desc=f"decode {strip_tag(itn)}", unit="batch"):
            part = chosen[start: start + batch]
            prepared = [transcriber.prepare(rows[i]["source"], rows[i]["key"]) for i in part]
            for i, result in zip(part, transcriber.decode(prepared, options)):
                hyps[i] = result.to_dict()
    return hyps


def report_paths(out: Path) -> tuple[Path, Path]:
    """OUT.md and OUT.json for ``--out OUT``. Appended, not ``with_suffix``: "val_blank0.5" and "val_blank0" must
    not name the same files."""
    return out.parent / f"{out.name}.md", out.parent / f"{out.name}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--test", required=True, help="official-format test jsonl")
    parser.add_argument("--out", help="write OUT.md and OUT.json")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    # model.DecodingOptions' flags; language and ITN come with each row. Choose a blank penalty (or any decoding
    # option) on a validation split, never on the test split.
    add_decoding_arguments(parser, per_request=True, defaults={})
    parser.add_argument("--limit", type=int, default=0, help="score only the first N utterances")


def run(args: argparse.Namespace) -> int:
    rows = read_jsonl(Path(args.test))[: args.limit or None]
    options = decoding_options(args)
    hyps = decode(Path(args.model), rows, args.batch, args.threads, options)
    result = score(rows, hyps)
    result.update(model=str(args.model), test=str(args.test), blank_penalty=options.blank_penalty,
                  options=json.loads(json.dumps(dataclasses.asdict(options))))
    decoding = f", blank penalty {options.blank_penalty:g}" if options.blank_penalty else ""
    table = markdown(result, f"{args.model} on {args.test} ({len(rows)} utterances{decoding})")
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table_file, record_file = report_paths(out)
        table_file.write_text(table)
        record_file.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        (out.parent / f"{out.name}_hyps.jsonl").write_text(
            "".join(json.dumps({"key": h["key"], "ref": r["target"], "hyp": h["text"]}, ensure_ascii=False) + "\n"
                    for r, h in zip(rows, hyps)))
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.evaluate", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
