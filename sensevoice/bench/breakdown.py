"""Per-event and per-language breakdown of a model on an official-format test jsonl (beside ``evaluate``, which
reports the totals): event accuracy for each reference event (and what it was taken for), and every metric of
``evaluate.score`` per language.

    python -m sensevoice.bench.breakdown --model demo --test data/open/open.jsonl --out bench/results/demo_breakdown_open
"""

from __future__ import annotations

from typing import Sequence

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from sensevoice.bench.evaluate import decode, score, strip_tag
from sensevoice.door import module_main
from sensevoice.datalist import read_jsonl


def breakdown(rows: list[dict], hyps: list[dict]) -> dict:
    by_event: dict[str, Counter] = defaultdict(Counter)
    for row, hyp in zip(rows, hyps):
        by_event[strip_tag(row["event_target"])][hyp["event"]] += 1
    events = {event: {"n": sum(c.values()), "accuracy": round(100 * c[event] / sum(c.values()), 1),
                      "taken_for": dict(c.most_common())} for event, c in sorted(by_event.items())}
    langs = sorted({strip_tag(r["text_language"]) for r in rows} - {"nospeech"})
    per_lang = {}
    for lang in langs:
        chosen = [i for i, r in enumerate(rows) if strip_tag(r["text_language"]) == lang]
        per_lang[lang] = score([rows[i] for i in chosen], [hyps[i] for i in chosen])
    return {"events": events, "languages": per_lang}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo")
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", help="write OUT.json")
    parser.add_argument("--batch", type=int, default=16)


def run(args: argparse.Namespace) -> int:
    rows = read_jsonl(Path(args.test))
    result = breakdown(rows, decode(Path(args.model), rows, args.batch, None))
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(text + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.breakdown", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
