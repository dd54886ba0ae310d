"""``sensevoice download NAME``: a model from a hub, checked, for use here or on a machine without network.

Without ``--local-dir`` the model lands in the hub library's own cache (where FunASR and every ``--model NAME``
look); with it, in a plain folder to copy to an air-gapped machine and pass as ``--model DIR`` (copied from the
cache when the model is there, else downloaded straight into it). Either way the release is checked before the
path is printed: every file its configuration.json names is there, and a SenseVoiceSmall checkpoint loads strictly
(every key, every shape). The folder's path is the only line on stdout: ``MODEL=$(sensevoice download NAME)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensevoice import heavy
from sensevoice import hub as hubs
from sensevoice.argtypes import UsageError, add_hub_arguments, check_output_dir

def hub_name(text: str) -> str:
    if not hubs.is_hub_name(text):
        raise argparse.ArgumentTypeError(f"expected a model name on a hub (owner/name, e.g. "
                                         f"{hubs.OFFICIAL[hubs.DEFAULT_HUB]}, or a short name of FunASR's such as "
                                         f"fsmn-vad), got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    official = ", ".join(f"{name} ({hubs.HUBS[h]})" for h, name in hubs.OFFICIAL.items())
    parser.add_argument("name", type=hub_name, metavar="NAME",
                        help=f"model name on the hub: the official SenseVoiceSmall is {official}; FunASR's short "
                             "names work too (fsmn-vad)")
    parser.add_argument("--local-dir", type=Path, default=None, metavar="DIR",
                        help="put the files in DIR, a plain folder to copy elsewhere (default: the hub's cache)")
    add_hub_arguments(parser)


def check_weights(folder: Path) -> str:
    """A SenseVoiceSmall release's checkpoint read as data and matched strictly against its config.yaml (on the meta
    device, as every door checks a model before its heavy work); other models (the VAD) are checked by their files."""
    from sensevoice.modeldir import ModelDir, read_config

    kind = read_config(folder / "config.yaml").get("model")
    if kind != "SenseVoiceSmall":
        return f"{kind}: files complete (no strict load for models other than SenseVoiceSmall)"
    heavy.import_funasr()
    ModelDir(folder).check_weights()
    return "SenseVoiceSmall: model.pt loads strictly (every key and shape of config.yaml's model, as data only)"


def run(args: argparse.Namespace) -> int:
    if args.local_dir is not None:
        check_output_dir(args.local_dir, "--local-dir")
    try:
        folder, source = hubs.prepare(args.name, args.hub, args.revision, args.local_dir)
    except hubs.HubError as err:
        raise UsageError(str(err))
    try:
        checked = check_weights(folder)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        print(f"sensevoice download: error: {folder}: {err}", file=sys.stderr)
        return 1
    print(f"sensevoice download: {source}: {checked}", file=sys.stderr)
    print(folder.resolve())
    return 0
