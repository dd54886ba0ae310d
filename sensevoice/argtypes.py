"""argparse ``type=`` callables shared by the commands: a bad value becomes argparse's usage error (exit code 2)
naming the option, e.g. ``argument --threads: expected a positive integer, got '0'``; and the two decoding options
that transcribe and serve share (evaluate keeps its own ``--blank-penalty``, whose help is about choosing it).

Floats must be finite: ``float("nan")`` and ``float("inf")`` parse, and neither is a sensible batch size, timeout
or penalty. ``UsageError`` is for what argparse cannot check alone (a bad combination, a busy port): the
``sensevoice`` CLI reports it like argparse's errors, exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from pathlib import Path

HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")  # RFC 1123


class UsageError(Exception):
    """A bad option or argument found after parsing: reported like argparse's errors, exit code 2."""


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


def non_negative_int(text: str) -> int:
    value = int(text)  # ValueError -> argparse's "invalid non_negative_int value: 'x'"
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def port_number(text: str) -> int:
    value = int(text)  # ValueError -> argparse's "invalid port_number value: 'x'"
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535 (or 0: any free port), got {text!r}")
    return value


def host_address(text: str) -> str:
    """An IP address (v4 or v6) or a host name; whether it is this machine's is for bind() to say."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if len(text) > 253 or not HOST_NAME.fullmatch(text):
            raise argparse.ArgumentTypeError(f"expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name, "
                                             f"got {text!r}")
    return text


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory" if path.exists() else
                                         f"no such directory: {text!r}")
    return path


def add_decoding_arguments(parser: argparse.ArgumentParser, scope: str = "") -> None:
    """``--blank-penalty`` and ``--ban-emo-unk``, model.DecodingOptions's two knobs; ``scope`` ends each help
    line (", for every request")."""
    parser.add_argument("--blank-penalty", type=non_negative_float, default=0.0, metavar="X",
                        help=f"subtract X from the CTC blank's score before greedy decoding{scope}: X > 0 trades "
                             "dropped short words for insertions (default: 0, plain greedy CTC as FunASR decodes)")
    parser.add_argument("--ban-emo-unk", action="store_true",
                        help=f"never output <|EMO_UNKNOWN|>{scope}: every speech segment gets one of the emotions")
