"""argparse ``type=`` callables shared by the commands: a bad value becomes argparse's usage error (exit code 2)
naming the option, e.g. ``argument --threads: expected a positive integer, got '0'``; and the two decoding options
that transcribe and serve share (evaluate keeps its own ``--blank-penalty``, whose help is about choosing it).

Floats must be finite: ``float("nan")`` and ``float("inf")`` parse, and neither is a sensible batch size, timeout
or penalty.
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    value = int(text)  # ValueError -> argparse's "invalid positive_int value: 'x'"
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = float(text)  # ValueError -> argparse's "invalid positive_float value: 'x'"
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)  # ValueError -> argparse's "invalid non_negative_float value: 'x'"
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_decoding_arguments(parser: argparse.ArgumentParser, scope: str = "") -> None:
    """``--blank-penalty`` and ``--ban-emo-unk``, model.DecodingOptions's two knobs; ``scope`` ends each help
    line (", for every request")."""
    parser.add_argument("--blank-penalty", type=non_negative_float, default=0.0, metavar="X",
                        help=f"subtract X from the CTC blank's score before greedy decoding{scope}: X > 0 trades "
                             "dropped short words for insertions (default: 0, plain greedy CTC as FunASR decodes)")
    parser.add_argument("--ban-emo-unk", action="store_true",
                        help=f"never output <|EMO_UNKNOWN|>{scope}: every speech segment gets one of the emotions")
