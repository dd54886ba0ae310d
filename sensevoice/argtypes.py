"""The command line's side of the one options type: argparse ``type=`` callables, and the decoding and backend
options of ``model.DecodingOptions`` / ``model.BackendOptions`` declared once for every command that decodes
(transcribe, serve, evaluate), converted to those types once (``decoding_options``, ``backend_options``).

A bad value becomes argparse's usage error (exit code 2) naming the option, e.g. ``argument --threads: expected a
positive integer, got '0'``. Floats must be finite: ``float("nan")`` and ``float("inf")`` parse, and neither is a
sensible batch size, timeout or penalty. ``UsageError`` is for what argparse cannot check alone (a bad combination,
a busy port): the ``sensevoice`` CLI reports it like argparse's errors, exit code 2.

The choices (languages, their aliases, backends and precisions) are model.py's own constants, read from its source
text: ``--help`` stays fast (no torch import) without a second copy of the lists.
"""

from __future__ import annotations

import argparse
import ast
import functools
import ipaddress
import math
import re
from pathlib import Path
from typing import Any

from sensevoice import REPO_ROOT

HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")  # RFC 1123


class UsageError(Exception):
    """A bad option or argument found after parsing: reported like argparse's errors, exit code 2."""


@functools.cache
def model_constant(name: str) -> Any:
    """A literal constant of model.py (LANGUAGES, LANGUAGE_ALIASES, BACKEND_PRECISIONS …), without importing it."""
    tree = ast.parse((REPO_ROOT / "model.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"model.py defines no literal constant {name}")


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


def language(text: str) -> str:
    """A language of model.LANGUAGES, or an alias of one (model.DecodingOptions maps zn to zh)."""
    languages, aliases = model_constant("LANGUAGES"), model_constant("LANGUAGE_ALIASES")
    if text not in languages and text not in aliases:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(languages)} (or {', '.join(aliases)}), "
                                         f"got {text!r}")
    return text


def add_decoding_arguments(parser: argparse.ArgumentParser, scope: str = "", itn_default: bool = True,
                           per_request: bool = False) -> None:
    """The fields of model.DecodingOptions as options. ``scope`` ends each help line (", for every request");
    with ``per_request`` (the service) the language and ITN choice come with each request instead."""
    languages, aliases = model_constant("LANGUAGES"), model_constant("LANGUAGE_ALIASES")
    if not per_request:
        parser.add_argument("--language", type=language, default="auto", metavar="LANG",
                            help=f"forced language: {', '.join(languages)} "
                                 f"({', '.join(f'{a} = {t}' for a, t in aliases.items())}); default: auto, detected "
                                 "per segment")
        parser.add_argument("--itn", action=argparse.BooleanOptionalAction, default=itn_default,
                            help=f"inverse text normalisation: digits and punctuation (default: "
                                 f"{'on' if itn_default else 'off'})")
    parser.add_argument("--blank-penalty", type=non_negative_float, default=0.0, metavar="X",
                        help=f"subtract X from the CTC blank's score before greedy decoding{scope}: X > 0 trades "
                             "dropped short words for insertions (default: 0, plain greedy CTC as FunASR decodes)")
    parser.add_argument("--ban-emo-unk", action="store_true",
                        help=f"never output <|EMO_UNKNOWN|>{scope}: every speech segment gets one of the emotions")
    parser.add_argument("--beam-size", type=positive_int, default=1, metavar="N",
                        help=f"CTC prefix beam search with N prefixes{scope} (default: 1, greedy as FunASR decodes)")
    parser.add_argument("--hotwords", default=None, metavar="FILE|WORDS",
                        help=f"bias decoding towards these words{scope}: a file with one phrase per line (a trailing "
                             "number is its weight) or space-separated words; searches with a beam of at least 4")
    parser.add_argument("--hotword-weight", type=non_negative_float, default=2.0, metavar="X",
                        help="bonus in nats per matched piece of a hotword (default: 2)")
    parser.add_argument("--restrict-language", action="store_true",
                        help=f"output only the scripts of the forced (or detected) language{scope} (zh/yue keep Latin)")
    parser.add_argument("--tag-topk", type=non_negative_int, default=0, metavar="K",
                        help=f"add the K most likely languages, emotions and events with probabilities{scope}")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The fields of model.BackendOptions as options (their combination is checked by ``backend_options``)."""
    precisions = model_constant("BACKEND_PRECISIONS")
    parser.add_argument("--backend", choices=list(precisions), default="torch",
                        help="what computes the network: torch (default; fp32 decodes exactly as FunASR) or "
                             "onnxruntime (the model directory's model.onnx, else exported once into a cache)")
    parser.add_argument("--precision", default="fp32", metavar="P",
                        help="; ".join(f"{b}: {', '.join(p)}" for b, p in precisions.items())
                             + " (default: fp32; int8 = dynamic int8 weights, CPU)")


def decoding_options(args: argparse.Namespace, **fields: Any):
    """model.DecodingOptions from the parsed arguments (plus ``fields``: per-call ones such as timestamps)."""
    import model as sv

    from_args = {"ban_emo_unk": args.ban_emo_unk, "blank_penalty": args.blank_penalty, "beam_size": args.beam_size,
                 "hotwords": sv.read_hotwords(args.hotwords) if args.hotwords else (),
                 "hotword_weight": args.hotword_weight, "restrict_language": args.restrict_language,
                 "tag_topk": args.tag_topk}
    if hasattr(args, "language"):
        from_args.update(language=args.language, textnorm="withitn" if args.itn else "woitn")
    return sv.DecodingOptions(**{**from_args, **fields})


def backend_options(args: argparse.Namespace):
    """model.BackendOptions from ``--backend``/``--precision``; ValueError names a combination that does not exist."""
    import model as sv

    return sv.BackendOptions(backend=args.backend, precision=args.precision)


def check_backend(args: argparse.Namespace) -> None:
    """The --backend/--precision combination, checked without importing torch (for usage errors up front)."""
    precisions = model_constant("BACKEND_PRECISIONS")[args.backend]
    if args.precision not in precisions:
        raise ValueError(f"--precision {args.precision!r} is not available with --backend {args.backend}; "
                         f"expected one of {', '.join(precisions)}")


def module_main(prog: str, doc: str | None, add_arguments, run, argv=None) -> int:
    """The ``main(argv)`` of a ``python -m`` module: its parser (first docstring line as description), then ``run``."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_diarization_arguments(parser: argparse.ArgumentParser) -> None:
    """The fields of sensevoice.diarize.DiarizationOptions as options; a speaker count implies --diarize."""
    parser.add_argument("--diarize", action="store_true",
                        help="label who speaks when (speaker turns S1, S2, ...: txt 'S1: ', srt '[S1] ', vtt voice "
                             "spans, a tsv column, json 'speaker' per segment and word)")
    parser.add_argument("--num-speakers", type=positive_int, default=None, metavar="N",
                        help="exactly N speakers (default: estimated); implies --diarize")
    parser.add_argument("--min-speakers", type=positive_int, default=None, metavar="N",
                        help="at least N speakers when estimating (default: 1); implies --diarize")
    parser.add_argument("--max-speakers", type=positive_int, default=None, metavar="N",
                        help="at most N speakers when estimating; implies --diarize")


def diarization_options(args: argparse.Namespace):
    """sensevoice.diarize.DiarizationOptions from the parsed arguments, or None (no diarization asked for);
    ValueError names a bad combination (--min-speakers 3 --max-speakers 2)."""
    counts = {"num_speakers": args.num_speakers, "min_speakers": args.min_speakers,
              "max_speakers": args.max_speakers}
    if not args.diarize and all(v is None for v in counts.values()):
        return None
    from sensevoice.diarize import DiarizationOptions

    try:
        return DiarizationOptions(**{k: v for k, v in counts.items() if v is not None})
    except ValueError as err:  # the options' names, as this command spells them
        raise ValueError(str(err).replace("num_speakers", "--num-speakers").replace("min_speakers", "--min-speakers")
                         .replace("max_speakers", "--max-speakers"))
