"""argparse ``type=`` callables shared by the commands: a bad value becomes argparse's usage error (exit code 2)
naming the option, e.g. ``argument --threads: expected a positive integer, got '0'``.

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
