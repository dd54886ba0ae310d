"""The ``sensevoice`` command (also ``python -m sensevoice``): ``sensevoice <command> [options]``.

Every command checks its arguments before the heavy imports (torch, FunASR: seconds and a GB), so a usage error
is quick; each command's ``--help`` ends with its own exit codes.

Adding a command: write a module with ``add_arguments(parser)`` and ``run(args) -> exit code`` (light at the top:
check what the arguments alone decide, raise ``UsageError`` for a bad one, then ``heavy.import_funasr()`` and the
heavy imports inside ``run``) and add a ``Command`` naming it to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from sensevoice import REPO_ROOT, heavy
from sensevoice.door import EXIT_INTERRUPTED, EXIT_USAGE, run_command  # noqa: F401 (the codes EXIT_HELP lists)
from sensevoice.argtypes import (UsageError, add_backend_arguments, add_decoding_arguments, add_model_arguments,
                                 backend_options, check_backend, decoding_options, model_dir_from_args, positive_float,
                                 positive_int)
from sensevoice.argtypes import (add_diarization_arguments, check_output_dir, diarization_options,
                                 require_speaker_encoder, speaker_encoder)
from sensevoice.subtitles import FORMATS  # light: no torch

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_HELP = ("exit status: 0 every input written; 1 some inputs failed (each reported on stderr, the others "
             "written); 2 usage error (bad option, no usable model); 130 interrupted")
PROG = "sensevoice"
STDIN = "-"
STDOUT_MULTI_FORMATS = ("txt", "jsonl")  # formats that can carry several inputs on stdout


@dataclass(frozen=True)
class Command:
    """One ``sensevoice`` command. ``module`` holds its two functions, ``add_arguments(parser)`` and
    ``run(args) -> exit code``; it is imported only when this command runs or shows its help."""

    help: str  # one line, in ``sensevoice --help`` and atop the command's own help
    module: str  # e.g. "sensevoice.export_command"
    exit_help: str  # the end of the command's --help: its exit codes
    add_arguments: str = "add_arguments"  # the functions' names in ``module``
    run: str = "run"

    def load(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.add_arguments), getattr(module, self.run)


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- transcribe
def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help=f"audio files (wav, flac, ogg, mp3; any rate, mono or not); {STDIN} reads audio bytes "
                             "from stdin (a file's bytes, or raw 16 kHz 16-bit PCM)")
    add_model_arguments(parser, default=f"the embedded demo model, {REPO_ROOT / 'demo'}")
    add_decoding_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--vad", action=argparse.BooleanOptionalAction, default=True,
                        help="split the audio into speech segments with the bundled FSMN-VAD (default: on; "
                             "without it a file is one forward pass)")
    parser.add_argument("--batch-size-s", type=positive_float, default=60.0, metavar="SECONDS",
                        help="dynamic batching budget, longest segment x segments per batch (default: 60); it "
                             "changes speed and memory, never the transcript")
    parser.add_argument("--timestamps", action="store_true",
                        help="add per-word and per-token [start_ms, end_ms] to json/jsonl output")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads (default: torch's)")
    parser.add_argument("-f", "--format", choices=FORMATS, default="txt",
                        help="txt: text per segment; json/jsonl: segments, cues with language/emotion/event; "
                             "srt/vtt: subtitles; tsv: cues as start/end ms, tags, text (default: txt)")
    parser.add_argument("-o", "--output-dir", type=Path, default=None, metavar="DIR",
                        help="write DIR/<input name>.<format> per input (default: stdout)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    add_diarization_arguments(parser)  # and --speaker-encoder


def transcribe_options(args: argparse.Namespace):
    """The decoding options the arguments ask for (model.DecodingOptions); UsageError names a bad value."""
    return decoding_options(args, output_timestamp=True)  # subtitles split long segments at word times


def check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name!r}: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name!r}: CUDA is not available here (use --device cpu)")


def input_keys(inputs: Sequence[str]) -> list[str]:
    """A unique name per input (its file stem; 'stdin' for -), used for output files and result keys."""
    keys: list[str] = []
    for item in inputs:
        stem = "stdin" if item == STDIN else Path(item).stem or "audio"
        key, n = stem, 1
        while key in keys:
            n += 1
            key = f"{stem}-{n}"
        keys.append(key)
    return keys


def check_outputs(args: argparse.Namespace) -> None:
    if args.inputs.count(STDIN) > 1:
        raise UsageError(f"{STDIN} (stdin) can be given once")
    if args.output_dir is None and len(args.inputs) > 1 and args.format not in STDOUT_MULTI_FORMATS:
        raise UsageError(f"{len(args.inputs)} inputs as {args.format} need --output-dir (on stdout only "
                         f"{' and '.join(STDOUT_MULTI_FORMATS)} can hold several)")
    if args.output_dir is not None:
        check_output_dir(args.output_dir, "--output-dir")


def load_transcriber(model_dir, args: argparse.Namespace, encoder: str):
    """Load the model; FunASR prints to stdout while loading, so that goes to stderr (stdout is for results)."""
    from sensevoice.pipeline import Transcriber

    print(f"{PROG}: model: {model_dir.identity}; from {model_dir.path}", file=sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return Transcriber(model_dir, backend=backend_options(args), vad=args.vad, device=args.device,
                               threads=args.threads, batch_size_s=args.batch_size_s,
                               speaker_encoder=encoder)
    except (OSError, ValueError, TypeError, RuntimeError) as err:
        raise UsageError(f"--model {str(model_dir.path)!r} cannot be loaded: {err}")


class ProgressBar:
    """One tqdm bar on stderr over the seconds of audio of every input (totals join as inputs are read)."""

    def __init__(self, enabled: bool | None):
        from tqdm import tqdm

        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=0, unit="s", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                        bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
                                   "[{elapsed}<{remaining}]")

    def for_input(self, key: str) -> Callable[[float, float], None]:
        state = {"done": 0.0, "started": False}

        def update(done_s: float, total_s: float) -> None:
            if not state["started"]:
                state["started"] = True
                self.bar.total += total_s
                self.bar.set_description(key)
            self.bar.update(done_s - state["done"])
            state["done"] = done_s

        return update

    def close(self) -> None:
        self.bar.close()


def path_problem(item: str) -> str | None:
    """Why an input path cannot be read, or None."""
    if item == STDIN or Path(item).is_file():
        return None
    return "not a file" if Path(item).exists() else "no such file"


def read_source(item: str) -> Any:
    """A path, or stdin's bytes for -; FileNotFoundError/ValueError name the problem."""
    if item == STDIN:
        data = sys.stdin.buffer.read()
        if not data:
            raise ValueError("no audio bytes received")
        return data
    problem = path_problem(item)
    if problem:
        raise FileNotFoundError(problem)
    return item


def emit(result, args: argparse.Namespace, several: bool) -> None:
    """Write one sensevoice.result.Transcript in the asked format, to its file or stdout."""
    from sensevoice import subtitles

    text = subtitles.render(result, args.format, timestamps=args.timestamps)
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = args.output_dir / f"{result.key}.{args.format}"
        path.write_text(text, encoding="utf-8")
        print(f"{PROG}: wrote {path}", file=sys.stderr)
        return
    if several and args.format == "txt":
        text = f"==> {result.key} <==\n{text}"
    sys.stdout.write(text)
    sys.stdout.flush()


def run_transcribe(args: argparse.Namespace) -> int:
    check_outputs(args)  # what the arguments alone decide, before torch and FunASR are imported
    check_backend(args)
    model_dir = model_dir_from_args(args)
    problems = [(item, path_problem(item)) for item in args.inputs]
    if all(problem for _, problem in problems):  # nothing to do: say so without loading the model
        for item, problem in problems:
            error(f"{item}: {problem}")
        return EXIT_FAILED
    heavy.import_funasr()
    options = transcribe_options(args)
    diarization = diarization_options(args)  # UsageError names a bad count
    encoder = speaker_encoder(args, diarization)  # UsageError: given without --diarize
    check_device(args.device)
    transcriber = load_transcriber(model_dir, args, encoder)
    if diarization is not None:  # a missing speaker encoder is the command's problem, not each input's
        require_speaker_encoder(transcriber.diarizer)
    failed = 0
    progress = ProgressBar(args.progress)
    try:
        for item, key in zip(args.inputs, input_keys(args.inputs)):
            try:
                result = transcriber.transcribe(read_source(item), key, options, progress.for_input(key),
                                                diarization=diarization)
                emit(result, args, several=len(args.inputs) > 1)
            except (OSError, ValueError, RuntimeError) as err:  # one bad input must not stop the others
                progress.bar.clear()
                error(f"{item}: {str(err).removeprefix(f'{key}: ').removeprefix(f'{item}: ')}")
                failed += 1
    finally:
        progress.close()
    if failed:
        error(f"{failed} of {len(args.inputs)} inputs failed")
    return EXIT_FAILED if failed else EXIT_OK


# ----------------------------------------------------------------------------------------------- main
SERVE_EXIT_HELP = ("exit status: 0 stopped (Ctrl-C, SIGTERM); 1 the server failed to start; 2 usage error (bad "
                   "option, port in use, host not of this machine, no usable model)")
EXPORT_EXIT_HELP = ("exit status: 0 exported and checked against PyTorch; 1 the export failed (the error on "
                    "stderr); 2 usage error (bad option, no such model directory); 130 interrupted")
BENCH_EXIT_HELP = ("exit status: 0 results written (a backend that failed is reported in them); 1 the benchmark "
                   "failed (the error on stderr); 2 usage error (bad option); 130 interrupted")
BATCH_EXIT_HELP = ("exit status: 0 every input has a row (results or failures); 1 the job failed (the error on "
                   "stderr; finished shards stay, a rerun goes on from them); 2 usage error (bad input, format, "
                   "address, options that differ from the output's earlier runs); 130 interrupted (finished files "
                   "written; rerun to go on)")
DOWNLOAD_EXIT_HELP = ("exit status: 0 downloaded (or found in the cache) and checked, its folder on stdout; 1 the "
                      "files are there but the checkpoint does not load; 2 usage error (a bad name, not cached and "
                      "the hub cannot be reached, a failed download); 130 interrupted")
COMMANDS: dict[str, Command] = {
    "transcribe": Command("transcribe audio files (any length) to text, subtitles or JSON", "sensevoice.cli",
                          EXIT_HELP, add_arguments="add_transcribe_arguments", run="run_transcribe"),
    "serve": Command("serve the model over HTTP (OpenAI-compatible and SenseVoice API routes, a browser page)",
                     "sensevoice.serve.command", SERVE_EXIT_HELP),
    "export": Command("export a model directory to ONNX (official I/O names, sherpa-onnx metadata, optional int8)",
                      "sensevoice.export_command", EXPORT_EXIT_HELP),
    "batch": Command("transcribe a corpus on Ray Data (a laptop or a cluster) into resumable JSONL/Parquet shards",
                     "sensevoice.batch", BATCH_EXIT_HELP),
    "bench": Command("benchmark backends (FunASR built-in, ours eager/fast/ONNX, sherpa-onnx, funasr-onnx)",
                     "sensevoice.bench.speed", BENCH_EXIT_HELP),
    "download": Command("download a model from ModelScope or Hugging Face into their cache or a folder, and check it",
                        "sensevoice.download", DOWNLOAD_EXIT_HELP),
}


def command_name(argv: Sequence[str]) -> str | None:
    """The command in ``argv``: its first word that is not an option (the global options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` command's module is imported, to add its arguments (the others are
    listed by name and help line)."""
    from sensevoice import __version__

    parser = argparse.ArgumentParser(prog=PROG, description="SenseVoiceSmall: speech recognition with language, "
                                     "emotion and audio-event tags.",
                                     epilog="exit status: see each command's --help; 2 usage error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the INFO log lines of the libraries underneath (FunASR, ModelScope); default: "
                             "their errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help, epilog=command.exit_help)
        if name == selected:
            add_arguments, run = command.load()
            add_arguments(sub)
            sub.set_defaults(run=run, subparser=sub)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but a command's files may also follow its options (``transcribe a.wav --model m b.wav``):
    argparse leaves such positionals over, so the command's own parser reads its arguments again, intermixed."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        rest = argv[argv.index(args.command) + 1:]
        args = argparse.Namespace(**{**vars(args), **vars(args.subparser.parse_intermixed_args(rest))})
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(command_name(argv))
        args = parse(parser, argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exit_.code or 0)
    return run_command(args.run, args, f"{PROG} {args.command}")
