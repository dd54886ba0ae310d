"""README command 1: transcribe the bundled example clips and print rich and clean text.

    python -m sensevoice.demo [--model DIR] [FILES...]

Defaults to the embedded demo model (``demo/``, trained by our recipe on synthetic espeak-ng speech) and the
clips in ``examples/``. Point ``--model`` at a directory holding the official SenseVoiceSmall release
(model.pt, config.yaml, configuration.json, tokenizer, am.mvn) to use the official weights instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

from sensevoice import heavy, modeldir
from sensevoice.argtypes import UsageError, add_decoding_arguments, decoding_options
from sensevoice.modeldir import DEMO_DIR, ModelDir

EXAMPLES = modeldir.REPO_ROOT / "examples"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensevoice.demo", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="audio files (default: examples/*.flac)")
    parser.add_argument("--model", type=Path, default=DEMO_DIR, help="model directory (default: demo/)")
    add_decoding_arguments(parser, defaults={})  # ITN off by default: the examples' labels are spoken form first
    args = parser.parse_args(argv)

    files = args.files or sorted(EXAMPLES.glob("*.flac"))
    which = ("the embedded DEMO model (small, trained on synthetic espeak-ng speech; not the official weights)"
             if args.model.resolve() == DEMO_DIR.resolve() else "the model directory you gave")
    print(f"model: {args.model} — {which}")
    print("official weights: python -m sensevoice.demo --model /path/to/SenseVoiceSmall  (model.pt + its files)\n")
    heavy.import_funasr()
    try:
        options = decoding_options(args)
    except UsageError as err:
        parser.error(str(err))
    with contextlib.redirect_stdout(sys.stderr):  # FunASR prints while loading; stdout is for the transcripts
        automodel = ModelDir(args.model).automodel(ncpu=None)
    labels = {}  # (file name, itn tag) -> the rich transcript the example was generated from
    if (EXAMPLES / "labels.jsonl").is_file():
        for line in (EXAMPLES / "labels.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            labels[row["file"], row["with_or_wo_itn"]] = row["rich"]
    itn_tag = f"<|{options.textnorm}|>"
    for path in files:  # AutoModel's kwargs are the options' fields by name (DecodingOptions.from_kwargs)
        result = automodel.generate(input=str(path), **dataclasses.asdict(options), disable_pbar=True)[0]
        print(f"{path.name}")
        print(f"  rich : {result['text']}")
        print(f"  clean: {result['clean_text']}")
        print(f"  tags : language={result['language']} emotion={result['emotion']} event={result['event']}")
        if (path.name, itn_tag) in labels:
            print(f"  label: {labels[path.name, itn_tag]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
