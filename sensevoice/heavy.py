"""The commands' one door to FunASR (and through it torch): ``import_funasr()``, called by every command's ``run``
after its arguments are checked and before anything imports model.py.

FunASR does two things at import time that a command must undo:
- it prints to stdout (without ffmpeg: a four-line "Notice: ffmpeg is not installed ..."), and a command's stdout
  carries results only (``sensevoice transcribe a.flac -f json | python -m json.tool``): the import runs with
  stdout sent to stderr;
- ``funasr/utils/export_utils.py`` calls ``warnings.filterwarnings("ignore")``, which silences every warning of
  the process, ours included (transcribe's "one forward pass" memory warning): our modules' warnings are shown
  again, unless the user chose filters with ``python -W`` or ``PYTHONWARNINGS``.

model.py stays self-contained (FunASR imports it by path) and imports ``funasr.register`` itself; once FunASR is
in ``sys.modules`` that import prints nothing.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

OUR_MODULES = r"(sensevoice|model)(\.|$)"  # warnings raised from these modules stay visible


def import_funasr() -> None:
    """Import FunASR with its import-time prints on stderr, then keep our warnings visible. Idempotent."""
    if "funasr" not in sys.modules:
        with contextlib.redirect_stdout(sys.stderr):
            import funasr  # noqa: F401  (its __init__ imports every model, export_utils included)
    keep_our_warnings()


def keep_our_warnings() -> None:
    """Show warnings raised in our modules (once per place) in front of FunASR's blanket "ignore"."""
    if not sys.warnoptions:  # -W / PYTHONWARNINGS: the user's choice stands
        warnings.filterwarnings("default", module=OUR_MODULES)
