"""``sensevoice export`` (also ``python -m sensevoice.export_command``): a model directory to ONNX with FunASR's
official I/O, an optional int8 copy and sherpa-onnx's metadata. The export itself is ``sensevoice.export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable

from sensevoice import heavy
from sensevoice.argtypes import (UsageError, add_model_arguments, check_output_dir, loading, model_dir_from_args,
                                 positive_int)
from sensevoice.door import module_main
from sensevoice.export import INT8_NAME, OPSET, destination


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, default=None, required=True)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument("--int8", action="store_true",
                        help=f"also write {INT8_NAME} (dynamic int8 MatMul weights)")
    parser.add_argument("--opset", type=positive_int, default=OPSET, help="ONNX opset (default %(default)s)")
    parser.add_argument("--standard-ops", action="store_true",
                        help="standard ONNX operators only (attention unfused) for runtimes other than ONNX Runtime")


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out, "--out")
    source = model_dir_from_args(args)
    try:
        out_dir = destination(source, args.out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    heavy.import_funasr()
    from sensevoice.export import export_model

    with loading(source):  # a bad model.pt: a usage error
        model = source.load()
    try:
        paths = export_model(model, source, out_dir, int8=args.int8, opset=args.opset,
                             standard_ops=args.standard_ops)
    except (RuntimeError, ValueError, OSError) as err:  # e.g. an --opset torch cannot export: exit 1, one line
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"sensevoice export: error: the export to {args.out} failed (--opset {args.opset}): {first_line}",
              file=sys.stderr)
        return 1
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.export_command", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
