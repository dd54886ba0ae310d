"""README command 1: transcribe the bundled example clips and print rich and clean text.

    python -m sensevoice.demo [--model DIR|NAME [--hub ms|hf] [--revision REV]] [FILES...]

Defaults to the embedded demo model (``demo/``, trained by our recipe on synthetic espeak-ng speech) and the
clips in ``examples/``. ``--model iic/SenseVoiceSmall`` (ModelScope; ``--hub hf --model FunAudioLLM/SenseVoiceSmall``
for Hugging Face) uses the official weights, from the hub's cache or downloaded once; ``--model DIR`` a directory
holding the official release (model.pt, config.yaml, configuration.json, tokenizer, am.mvn).
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
from sensevoice.argtypes import (UsageError, add_decoding_arguments, add_model_arguments, decoding_options,
                                 model_dir_from_args)
from sensevoice.door import module_main
from sensevoice.hub import OFFICIAL

EXAMPLES = modeldir.REPO_ROOT / "examples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, help="audio files (default: examples/*.flac)")
    add_model_arguments(parser, default="demo/")
    add_decoding_arguments(parser, defaults={})  # ITN off by default: the examples' labels are spoken form first


def run(args: argparse.Namespace) -> int:
    files = args.files or sorted(EXAMPLES.glob("*.flac"))
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    model_dir = model_dir_from_args(args)
    print(f"model: {model_dir.identity}; from {model_dir.path}")
    print(f"official weights: python -m sensevoice.demo --model {OFFICIAL['ms']}  (ModelScope; or --hub hf --model "
          f"{OFFICIAL['hf']}; or --model DIR with model.pt + its files)\n")
    heavy.import_funasr()
    options = decoding_options(args)
    with contextlib.redirect_stdout(sys.stderr):  # FunASR prints while loading; stdout is for the transcripts
        automodel = model_dir.automodel(ncpu=None)
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


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.demo", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
