"""The command line's side of the one options type: argparse ``type=`` callables, and the decoding and backend
options of ``model.DecodingOptions`` / ``model.BackendOptions`` as flags of every command that decodes (transcribe,
serve, batch), converted to those types once (``decoding_options``, ``backend_options``). The decoding flags are
generated from DecodingOptions' field declarations (``sensevoice.optionspec``): their spelling, help, range and
choices are model.py's, and a new field is a new flag with no edit here.

A bad value becomes argparse's usage error (exit code 2) naming the option, e.g. ``argument --threads: expected a
positive integer, got '0'``. Floats must be finite: ``float("nan")`` and ``float("inf")`` parse, and neither is a
sensible batch size, timeout or penalty. ``UsageError`` is for what argparse cannot check alone (a bad combination,
a busy port): every front door reports it as one line, exit code 2 (``sensevoice.door``).

The choices (languages, their aliases, backends and precisions) and the option declarations are model.py's own,
read from its source text: ``--help`` and the value checks stay fast (no torch import) without a second copy.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from sensevoice import optionspec
from sensevoice.optionspec import Option, model_constant

HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")  # RFC 1123


class UsageError(Exception):
    """A bad option or argument found after parsing: reported like argparse's errors, exit code 2."""


def bounded(kind: type, low: float, high: float | None = None, above: bool = False,
            name: str | None = None) -> Callable[[str], Any]:
    """An argparse type: an int, or a finite float, in [low, high] (high None: no upper bound; ``above``: > low)."""
    noun = "an integer" if kind is int else "a number"
    if high is not None:
        expected = f"{noun} from {low:g} to {high:g}"
    elif (kind is int and low == 1) or (above and low == 0):
        expected = f"a positive {noun.split()[1]}"
    else:
        expected = f"{noun} {'>' if above else '>='} {low:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:  # "1.5" for an int, "x"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (kind is float and not math.isfinite(value)) or value < low or (above and value == low) \
                or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name or f"{kind.__name__}_in_range"
    return parse


positive_int = bounded(int, 1, name="positive_int")
non_negative_int = bounded(int, 0, name="non_negative_int")
positive_float = bounded(float, 0, above=True, name="positive_float")
non_negative_float = bounded(float, 0, name="non_negative_float")


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


def model_argument(text: str) -> str:
    """--model: a model folder, or a model name on a hub (owner/name, or a short name of FunASR's) that
    ``ModelDir`` looks up in the hub library's cache (sensevoice/hub.py). Only the spelling is checked here."""
    from sensevoice import hub

    if not Path(text).exists() and not hub.is_hub_name(text):
        raise argparse.ArgumentTypeError(f"{text}: not a directory, nor a model name on a hub (owner/name, e.g. "
                                         f"{hub.OFFICIAL[hub.DEFAULT_HUB]})")
    return text


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None, required: bool = False) -> None:
    """--model DIR|NAME with --hub and --revision, for every command that loads a model. ``default`` ends the help
    of --model (what is used without it); None with ``required``."""
    from sensevoice import hub

    official = " or ".join(f"{name} on {hub.HUBS[h]} (--hub {h})" for h, name in hub.OFFICIAL.items())
    parser.add_argument("--model", type=model_argument, required=required, default=None, metavar="DIR|NAME",
                        help="model directory (model.pt, config.yaml, configuration.json, tokenizer, am.mvn), or a "
                             f"model name on a hub: the official release is {official}; taken from that hub's cache "
                             "(where FunASR keeps it) with no network call, else downloaded"
                             + (f" (default: {default})" if default else ""))
    add_hub_arguments(parser)


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """--hub and --revision: where and at which revision a model name is looked up (sensevoice/hub.py)."""
    from sensevoice import hub

    parser.add_argument("--hub", choices=list(hub.HUBS), default=hub.DEFAULT_HUB,
                        help=f"where a model name is looked up: {', '.join(f'{k} = {v}' for k, v in hub.HUBS.items())} "
                             f"(default: {hub.DEFAULT_HUB}, as FunASR)")
    parser.add_argument("--revision", default=None, metavar="REV",
                        help="branch, tag or commit of a hub model (default: the hub's default branch)")


def model_dir_from_args(args: argparse.Namespace, option: str = "--model"):
    """The ``ModelDir`` of --model/--hub/--revision (the demo model without --model); UsageError says why not."""
    from sensevoice.modeldir import ModelDir, ModelDirError

    try:
        return ModelDir.resolve(args.model, option, hub=args.hub, revision=args.revision)
    except ModelDirError as err:
        raise UsageError(str(err))


def check_output_dir(path: Path, option: str) -> None:
    """A folder a command will create or write into, checked before any work and without creating it: UsageError
    when a file stands at it or above it, or when the nearest existing folder is not writable."""
    existing = next(p for p in (path, *path.parents) if p.exists())  # a relative path's last parent is "."
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {str(existing)!r} is a file"
        raise UsageError(f"{option} {str(path)!r} {where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {str(path)!r}: {str(existing)!r} is not writable")


@contextlib.contextmanager
def loading(model_dir) -> Iterator[None]:
    """Reading ``model_dir``'s weights (a check or the load itself): FileNotFoundError and ValueError (a bad
    model.pt: model.CheckpointError) as a UsageError that names the folder and the fault."""
    try:
        yield
    except (FileNotFoundError, ValueError) as err:  # model.CheckpointError is a ValueError
        raise UsageError(f"--model {str(model_dir.path)!r} cannot be loaded: {err}") from None


def check_weights(model_dir, backend) -> None:
    """The weights ``backend`` (model.BackendOptions) will load from ``model_dir``, read as data only and matched
    against its config.yaml, before a command's heavy work (Ray, a server); UsageError names the file and the
    fault. Imports FunASR (and torch)."""
    from sensevoice import heavy

    heavy.import_funasr()
    from sensevoice import backends

    with loading(model_dir):
        backends.check_dir(model_dir, backend)


def choice(choices: Sequence[str], aliases: Mapping[str, str]) -> Callable[[str], str]:
    """An argparse type: one of ``choices`` or an alias of one (the options type maps aliases, e.g. zn to zh)."""
    def parse(text: str) -> str:
        if text not in choices and text not in aliases:
            also = f" (or {', '.join(aliases)})" if aliases else ""
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}{also}, got {text!r}")
        return text

    parse.__name__ = "choice"
    return parse


# The command line transcribes for reading: ITN on (DecodingOptions' own default is off, as FunASR's).
CLI_DEFAULTS = {"textnorm": "withitn"}


def option_help(option: Option, default: Any, scope: str) -> str:
    """The declared help line with ``scope`` after its first clause (before a ": " or " ("), the choices and the
    default."""
    cut = min((i for i in (option.help.find(": "), option.help.find(" (")) if i >= 0), default=len(option.help))
    text = option.help[:cut] + scope + option.help[cut:]
    choices, aliases = option.spec.get("choices"), option.spec.get("aliases", {})
    if "as_flag" in option.spec or option.kind == "bool":
        on = option.as_flag(default) if "as_flag" in option.spec else default
        return text + (f" (default: {'on' if on else 'off'})" if on or "as_flag" in option.spec else "")
    if choices:
        text += f"; one of {', '.join(choices)}" + "".join(f", {a} = {v}" for a, v in aliases.items())
    if option.kind in ("int", "float"):
        low, high = option.spec["range"]
        if default is None:  # optional: the help line says what not giving it means
            return text + f" ({low:g} to {high:g})" if high is not None else text
        return text + f" (default: {default:g}" + (f"; {low:g} to {high:g})" if high is not None else ")")
    return text + f" (default: {default or 'none'})"


def add_decoding_arguments(parser: argparse.ArgumentParser, scope: str = "", per_request: bool = False,
                           defaults: Mapping[str, Any] = CLI_DEFAULTS,
                           options: Sequence[Option] | None = None) -> None:
    """The fields of model.DecodingOptions as options (``options``: default, model.py's declared ones), each
    with its declared spelling, range, choices and help. ``scope`` goes after each help line's first clause
    (", for every request"); with ``per_request`` (the service) the per-request ones (language, ITN) are left to
    each request; ``defaults`` are this door's own defaults where they differ from the type's."""
    for option in options or optionspec.declared():
        if not option.exposed or (per_request and option.per_request):
            continue
        default = defaults.get(option.name, option.default)
        common = {"dest": option.name, "help": option_help(option, default, scope)}
        flag = option.spelled("cli")
        if "as_flag" in option.spec:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=option.as_flag(default), **common)
        elif option.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction if default else "store_true",
                                default=default, **common)
        else:
            parser.add_argument(flag, type=option_type(option), default=None if option.kind == "tuple" else default,
                                metavar=option.spec.get("metavar"), **common)


def option_type(option: Option) -> Callable[[str], Any]:
    """The argparse ``type=`` of a valued option: its declared choices or range."""
    return {"str": lambda: choice(option.spec["choices"], option.spec.get("aliases", {})),
            "tuple": lambda: str,  # phrases: read (a file or words) when converted
            "int": lambda: bounded(int, *option.spec["range"]),
            "float": lambda: bounded(float, *option.spec["range"])}[option.kind]()


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The fields of model.BackendOptions as options (their combination is checked by ``backend_options``)."""
    precisions = model_constant("BACKEND_PRECISIONS")
    parser.add_argument("--backend", choices=list(precisions), default="torch",
                        help="what computes the network: torch (default; fp32 decodes exactly as FunASR) or "
                             "onnxruntime (the model directory's model.onnx, else exported once into a cache)")
    parser.add_argument("--precision", default="fp32", metavar="P",
                        help="; ".join(f"{b}: {', '.join(p)}" for b, p in precisions.items())
                             + " (default: fp32; int8 = dynamic int8 weights, CPU)")


def decoding_options(args: argparse.Namespace, cls: type | None = None, **fields: Any):
    """model.DecodingOptions (or ``cls``, a copy of it) from the parsed arguments, plus ``fields``: the door's own
    (timestamps, ...). UsageError names a bad value."""
    import model as sv
    from sensevoice import decoding

    cls = cls or sv.DecodingOptions
    values = {}
    for option in optionspec.of_type(cls):
        if not option.exposed or not hasattr(args, option.name):  # not a flag of this command
            continue
        value = getattr(args, option.name)
        if "as_flag" in option.spec:
            value = option.from_flag(value)
        elif option.kind == "tuple":  # phrases: a file, or space-separated words (as FunASR's hotword=)
            value = decoding.read_hotwords(value) if value else ()
        values[option.name] = value
    try:
        return cls(**{**values, **fields})
    except (TypeError, ValueError) as err:  # names the field and what is accepted
        raise UsageError(str(err)) from None


def backend_options(args: argparse.Namespace):
    """model.BackendOptions from ``--backend``/``--precision``; ValueError names a combination that does not exist."""
    import model as sv

    return sv.BackendOptions(backend=args.backend, precision=args.precision)


def check_backend(args: argparse.Namespace) -> None:
    """The --backend/--precision combination, checked without importing torch (a UsageError up front)."""
    precisions = model_constant("BACKEND_PRECISIONS")[args.backend]
    if args.precision not in precisions:
        raise UsageError(f"--precision {args.precision!r} is not available with --backend {args.backend}; "
                         f"expected one of {', '.join(precisions)}")


def add_diarization_arguments(parser: argparse.ArgumentParser, cls: type | None = None,
                              per_request: bool = False) -> None:
    """The fields of sensevoice.diarize.DiarizationOptions (or ``cls``, a copy of it) as options, generated from
    their declarations as the decoding flags are, and its switch (--diarize); any of its options implies the
    switch. Without ``cls`` the declarations are read from diarize.py's source (no torch import). Then
    --speaker-encoder, the encoder that embeds the voices; with ``per_request`` (the service: each request and
    stream asks for speakers itself) only that one, server-wide."""
    if not per_request:
        switch = optionspec.switch_of(cls) if cls else optionspec.declared_switch(*optionspec.DIARIZATION)
        flag = switch.spelled("cli")
        parser.add_argument(flag, dest=switch.name, action="store_true", help=switch.help)
        for option in optionspec.of_type(cls) if cls else optionspec.declared(*optionspec.DIARIZATION):
            common = {"dest": option.name, "default": None,  # None: not given (then the type's default)
                      "help": option_help(option, option.default, "") + f"; implies {flag}"}
            # every field is a count (DiarizationOptions checks it: a field of another kind cannot be built)
            parser.add_argument(option.spelled("cli"), type=option_type(option), metavar=option.spec.get("metavar"),
                                **common)
    encoders = optionspec.constant("SPEAKER_ENCODERS", optionspec.DIARIZATION[0])
    default = optionspec.constant("DEFAULT_SPEAKER_ENCODER", optionspec.DIARIZATION[0])
    when = ("for the requests and streams that ask for speakers; a chosen one must load when the server starts"
            if per_request else "with --diarize")
    parser.add_argument("--speaker-encoder", type=choice(encoders, {}), default=None, metavar="NAME",
                        help=f"{when}: {default} (default; GE2E weights shipped in its wheel) or cam++ (FunASR's "
                             "CAM++ from the ModelScope or Hugging Face cache: sensevoice download cam++)")


def speaker_encoder(args: argparse.Namespace, diarization=None) -> str:
    """The speaker encoder's name (--speaker-encoder, else diarize.DEFAULT_SPEAKER_ENCODER). A command with
    --diarize refuses it when speakers were not asked for (``diarization`` None): UsageError."""
    switch = optionspec.declared_switch(*optionspec.DIARIZATION)
    if args.speaker_encoder is not None and diarization is None and hasattr(args, switch.name):
        raise UsageError(f"--speaker-encoder {args.speaker_encoder} labels speakers only with "
                         f"{switch.spelled('cli')} (or a speaker count)")
    return args.speaker_encoder or optionspec.constant("DEFAULT_SPEAKER_ENCODER", optionspec.DIARIZATION[0])


def diarization_options(args: argparse.Namespace, cls: type | None = None):
    """sensevoice.diarize.DiarizationOptions (or ``cls``) from the parsed arguments, or None (neither the switch
    nor any of its options given); UsageError names a bad combination as this command spells it
    (``--min-speakers=3 is more than --max-speakers=2``)."""
    if cls is None:
        from sensevoice.diarize import DiarizationOptions as cls
    switch = optionspec.switch_of(cls)
    options = optionspec.of_type(cls)
    values = {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}
    if not getattr(args, switch.name, False) and not values:
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        message = str(err)
        for option in options:  # "min_speakers=3" -> "--min-speakers=3"
            message = re.sub(rf"\b{option.name}\b", option.spelled("cli"), message)
        raise UsageError(message) from None


def require_speaker_encoder(diarizer, option: str = "--diarize") -> None:
    """Load a ``sensevoice.diarize.Diarizer``'s speaker encoder now: a missing one is the command's problem (exit 2,
    one line after ``option`` naming what to fetch), found before any input is read, Ray starts or a server
    listens."""
    try:
        diarizer.encoder
    except (OSError, ValueError) as err:
        raise UsageError(f"{option}: {err}") from None
