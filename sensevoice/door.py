"""What every front door does around its command, once: logging set up (our loggers at the command's level, other
libraries' chatter such as FunASR's and ModelScope's INFO lines held back), a ``UsageError`` reported as one line
with exit code 2, Ctrl-C as exit code 130. The ``sensevoice`` CLI (``cli.main``) and each ``python -m
sensevoice.<module>`` (``module_main``) run their commands through ``run_command``; no command configures logging
or catches UsageError itself.

Light: no torch, no FunASR (a usage error stays quick).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from sensevoice.argtypes import UsageError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
OUR_LOGGERS = ("sensevoice", "model")  # the package's modules and model.py (loaded by FunASR as module "model")
DEFAULT_LEVEL = "info"  # ours, for a command without --log-level: an export's or a training run's progress lines
OTHERS_LEVEL, OTHERS_VERBOSE_LEVEL = "error", "info"  # everyone else's: FunASR logs each checkpoint key at INFO
MODELSCOPE_LOG_LEVEL_ENV = "MODELSCOPE_LOG_LEVEL"  # modelscope.utils.logger's level, read when modelscope is imported
OUR_MODELSCOPE_LEVELS = {str(logging.getLevelName(level.upper())) for level in (OTHERS_LEVEL, OTHERS_VERBOSE_LEVEL)}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes (as logging's last-resort handler does), so a stderr
    redirected or captured after logging was set up still gets the lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.setStream; the stream is always the current stderr
        pass


def configure_logging(level: str = DEFAULT_LEVEL, verbose: bool = False) -> None:
    """Our loggers at ``level`` (debug, info, warning, error); the root logger, so every other library's, at ERROR
    (INFO with ``verbose``, the CLI's -v). One handler on stderr; a second call changes the levels only."""
    root = logging.getLogger()
    if not any(isinstance(handler, StderrHandler) for handler in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    others = (OTHERS_VERBOSE_LEVEL if verbose else OTHERS_LEVEL).upper()
    root.setLevel(others)
    # ModelScope's loggers do not reach the root logger (their own handler, propagate off) and are reset to this
    # switch's level (default INFO) by every get_logger call; one set by the user wins.
    if MODELSCOPE_LOG_LEVEL_ENV not in os.environ or os.environ[MODELSCOPE_LOG_LEVEL_ENV] in OUR_MODELSCOPE_LEVELS:
        os.environ[MODELSCOPE_LOG_LEVEL_ENV] = str(logging.getLevelName(others))
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """``run(args)``'s exit code, with logging set up (``args.log_level`` where the command has that option,
    ``args.verbose`` where it has -v); a UsageError is ``PROG: error: MESSAGE`` on stderr and exit code 2."""
    configure_logging(getattr(args, "log_level", None) or DEFAULT_LEVEL, getattr(args, "verbose", False))
    try:
        return run(args)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def module_main(prog: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int], argv=None) -> int:
    """The ``main(argv)`` of a ``python -m`` module: its parser (first docstring line as description), then ``run``
    through ``run_command``; ``args.argv`` holds the arguments as given (for a report's record of its command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = argv
    return run_command(run, args, prog)
