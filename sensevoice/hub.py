"""Model names on a hub -> a local model directory, as FunASR resolves them, offline first.

``iic/SenseVoiceSmall`` (ModelScope, FunASR's default hub ``ms``) or ``FunAudioLLM/SenseVoiceSmall`` (Hugging Face,
``hf``), and the short names of FunASR's name maps (``fsmn-vad`` …), are looked up with the libraries FunASR uses,
in their own caches, so a model FunASR already downloaded is found and not fetched again:

- ModelScope: ``modelscope.hub.snapshot_download`` (FunASR's own call), cache ``$MODELSCOPE_CACHE`` (default
  ``~/.cache/modelscope``): ``models/<owner>--<name>/snapshots/<revision>/`` as modelscope >= 1.38 writes it, and
  the older layouts it still reads (``hub/models/<owner>/<name>/``, what FunASR downloads with older versions).
- Hugging Face: ``huggingface_hub.snapshot_download``, cache ``$HF_HOME/hub`` (``models--<owner>--<name>/``
  with ``blobs/``, ``refs/<branch>`` and ``snapshots/<commit>/``).

The cache is read first with ``local_files_only=True`` (no network). Only when the model is not there, or lacks a
file of its release, is the hub asked, after a quick reachability probe (``PROBE_TIMEOUT_S``): offline, ModelScope's
own retries take tens of seconds before they fail, and a machine with no network should hear why at once. ``SENSEVOICE_OFFLINE=1``
(both hubs) and ``HF_HUB_OFFLINE=1`` (Hugging Face) skip the hub altogether.

A release is complete when ``configuration.json`` and every file its ``file_path_metas`` names are there (for
SenseVoiceSmall: model.pt, config.yaml, the tokenizer and am.mvn), the files FunASR reads from it.

Light at import (no torch, no hub library): the command line checks names with it before anything heavy loads.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import shutil
import ssl
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

HUBS = {"ms": "ModelScope", "hf": "Hugging Face"}  # FunASR's hub= values
DEFAULT_HUB = "ms"  # FunASR's default
OFFICIAL = {"ms": "iic/SenseVoiceSmall", "hf": "FunAudioLLM/SenseVoiceSmall"}  # the official release on each hub
OFFLINE_ENV = "SENSEVOICE_OFFLINE"  # "1": never ask a hub, use only what is cached
HF_OFFLINE_ENV = "HF_HUB_OFFLINE"  # huggingface_hub's own switch, honoured for --hub hf
PROBE_TIMEOUT_S = 5.0  # connect + answer time granted to a hub before it counts as unreachable
# owner/name as both hubs spell repository ids: letters, digits, '-', '_', '.'; no leading '.' or '-'
REPO_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*")
CACHE_LEFTOVERS = ("._____temp", ".msc", ".mv", ".mdl", ".lock")  # ModelScope's bookkeeping inside a snapshot


class HubError(ValueError):
    """A hub name that cannot be made a local model directory; the message (one line) says what was tried and
    what to do."""


@dataclass(frozen=True)
class HubSource:
    """Where a model directory came from: for a record of which weights produced a result."""

    hub: str  # "ms" (ModelScope) or "hf" (Hugging Face)
    name: str  # the repository id on that hub, after FunASR's name maps ("fsmn-vad" -> "iic/speech_fsmn_vad_…")
    revision: str | None  # the revision asked for; None: the hub's default branch (ModelScope master, HF main)
    commit: str | None  # the commit the files are of, where the cache records it (Hugging Face snapshots)

    def __str__(self) -> str:
        at = f"@{self.commit or self.revision}" if (self.commit or self.revision) else ""
        return f"{self.name}{at} ({HUBS[self.hub]})"


# ----------------------------------------------------------------------------------------------- names
@functools.cache
def funasr_name_maps() -> dict[str, dict[str, str]]:
    """FunASR's short names per hub (``name_maps_ms`` / ``name_maps_hf`` of funasr/download/name_maps_from_hub.py),
    read from its source: importing funasr takes seconds and a GB. Empty when FunASR is not installed."""
    spec = importlib.util.find_spec("funasr")  # a top-level package: located, not imported
    if spec is None or not spec.submodule_search_locations:
        return {"ms": {}, "hf": {}}
    source = Path(list(spec.submodule_search_locations)[0]) / "download" / "name_maps_from_hub.py"
    maps: dict[str, dict[str, str]] = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            maps[node.targets[0].id] = ast.literal_eval(node.value)
    return {"ms": maps.get("name_maps_ms", {}), "hf": maps.get("name_maps_hf", {})}


def is_hub_name(text: str) -> bool:
    """Whether ``text`` can name a model on a hub: owner/name, or a short name of FunASR's (e.g. fsmn-vad)."""
    return bool(REPO_ID.fullmatch(text)) or any(text in names for names in funasr_name_maps().values())


def repo_id(name: str, hub: str) -> str:
    """The repository id ``name`` stands for on ``hub``, as FunASR maps it (``fsmn-vad`` -> its full id)."""
    check_hub(hub)
    repo = funasr_name_maps()[hub].get(name, name)
    if not REPO_ID.fullmatch(repo):
        raise HubError(f"{name}: not a model name on {HUBS[hub]} (expected owner/name, e.g. {OFFICIAL[hub]}, or one "
                       f"of FunASR's short names: {', '.join(sorted(funasr_name_maps()[hub])) or 'none installed'})")
    return repo


def check_hub(hub: str) -> None:
    if hub not in HUBS:
        raise HubError(f"hub {hub!r}: expected one of {', '.join(HUBS)} ({', '.join(HUBS.values())})")


# ----------------------------------------------------------------------------------------------- files
def release_files(folder: Path) -> list[str]:
    """configuration.json and the files its ``file_path_metas`` names: what FunASR reads from a model folder."""
    try:
        metas = json.loads((folder / "configuration.json").read_text(encoding="utf-8")).get("file_path_metas", {})
    except (OSError, ValueError, AttributeError):
        return ["configuration.json"]

    def names(node: Any) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from names(value)

    return ["configuration.json", *names(metas)]


def missing_files(folder: Path) -> list[str]:
    return [name for name in release_files(folder) if not (folder / name).is_file()]


# ----------------------------------------------------------------------------------------------- caches
def cache_root(hub: str) -> str:
    """The cache a hub's library reads, as that library computes it (for messages)."""
    if hub == "ms":
        from modelscope_hub.config import get_default_config

        return str(get_default_config().cache_dir)
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def endpoint(hub: str) -> str:
    """The URL a hub's library downloads from (``MODELSCOPE_ENDPOINT`` / ``HF_ENDPOINT`` change it)."""
    if hub == "ms":
        from modelscope_hub.config import get_default_config

        return get_default_config().endpoint
    from huggingface_hub import constants

    return constants.ENDPOINT


def cached_snapshot(repo: str, hub: str, revision: str | None) -> Path | None:
    """The model's folder in the hub library's cache, found by the library itself with no network; None if absent."""
    if hub == "ms":
        from modelscope.hub.snapshot_download import snapshot_download  # FunASR's call (imports torch)
        from modelscope_hub.errors import HubError as MsHubError

        try:
            return Path(snapshot_download(repo, revision=revision, local_files_only=True))
        except (MsHubError, OSError, ValueError):  # CacheNotFound when absent
            return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def offline_reason(hub: str) -> str | None:
    """Why the hub must not be asked (an environment switch), or None."""
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]}"
    if hub == "hf":
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return f"{HF_OFFLINE_ENV}={os.environ.get(HF_OFFLINE_ENV) or os.environ.get('TRANSFORMERS_OFFLINE')}"
    return None


def unreachable_reason(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url`` cannot be reached (no name, no route, refused, no answer within ``timeout_s``), or None when
    anything answers (any HTTP status will do). Honours the proxy environment variables, as the hub libraries do.
    Runs in a thread that is given up on after ``timeout_s``: a socket timeout does not bound a name lookup, which
    a machine whose DNS server cannot be reached retries for tens of seconds."""
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # it answered
        except urllib.error.URLError as err:
            # an SSL error means something answered; whether its certificate passes is for the hub library to say
            outcome.append(None if isinstance(err.reason, ssl.SSLError) else str(err.reason))
        except Exception as err:  # timeouts, resets, a malformed answer: no traceback from a background thread
            outcome.append(str(err) or type(err).__name__)

    worker = threading.Thread(target=probe, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g} s"


def fetch(repo: str, hub: str, revision: str | None, local_dir: Path | None) -> Path:
    """Download the repository with the hub's library (progress bars on stderr), into its cache or ``local_dir``."""
    if hub == "ms":
        from modelscope.hub.snapshot_download import snapshot_download
        from modelscope_hub import TqdmCallback

        return Path(snapshot_download(repo, revision=revision, local_dir=str(local_dir) if local_dir else None,
                                      progress_callbacks=[TqdmCallback]))
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, revision=revision, local_dir=local_dir))


# ----------------------------------------------------------------------------------------------- resolving
def source_of(folder: Path, hub: str, repo: str, revision: str | None) -> HubSource:
    # A Hugging Face cache snapshot is named by its commit; ModelScope's by the revision asked for.
    commit = folder.name if hub == "hf" and re.fullmatch(r"[0-9a-f]{40}", folder.name) else None
    return HubSource(hub=hub, name=repo, revision=revision, commit=commit)


def other_hub_hint(name: str, hub: str) -> str:
    """A hint when ``name`` is the official release's name on the other hub."""
    other = next((h for h, official in OFFICIAL.items() if official == name and h != hub), None)
    if other is None:
        return ""
    return f" (on {HUBS[hub]} the official release is {OFFICIAL[hub]}; {name} is its {HUBS[other]} name)"


def not_available(name: str, hub: str, revision: str | None, reason: str, cached: Path | None) -> HubError:
    """The one line for a model that is neither cached (complete) nor downloadable here: what was tried, and how
    to get it."""
    hint = other_hub_hint(name, hub)
    wanted = OFFICIAL[hub] if hint else name
    where = (f"only an incomplete copy in the {HUBS[hub]} cache ({cached}, lacking {missing_files(cached)})"
             if cached is not None else f"not in the {HUBS[hub]} cache ({cache_root(hub)})")
    options = (f" --hub {hub}" if hub != DEFAULT_HUB else "") + (f" --revision {revision}" if revision else "")
    folder = wanted.rsplit("/", 1)[-1]
    return HubError(f"{name}: {where} and {reason}{hint}. On a connected machine run `sensevoice download "
                    f"{wanted}{options} --local-dir {folder}`, copy that folder here and pass --model {folder} (or "
                    "copy that machine's cache here)")


def why_not_downloadable(hub: str) -> str | None:
    """Why the hub cannot be asked now: an offline switch, or no answer to the probe; None when it can."""
    blocked = offline_reason(hub)
    if blocked:
        return f"the hub is off: {blocked}"
    unreachable = unreachable_reason(endpoint(hub))
    return f"{HUBS[hub]} ({endpoint(hub)}) cannot be reached: {unreachable}" if unreachable else None


def lookup(name: str, hub: str, revision: str | None) -> tuple[str, Path | None]:
    """The repository id ``name`` stands for on ``hub`` and its complete folder in the hub library's cache (no
    network call), or None there when the hub can be asked for it. HubError (one line) when it is neither cached
    complete nor downloadable now."""
    repo = repo_id(name, hub)
    cached = cached_snapshot(repo, hub, revision)
    if cached is not None and not missing_files(cached):
        return repo, cached
    reason = why_not_downloadable(hub)
    if reason:
        raise not_available(repo, hub, revision, reason, cached)
    return repo, None


def snapshot(name: str, hub: str = DEFAULT_HUB, revision: str | None = None) -> tuple[Path, HubSource]:
    """The local folder of a hub model and where it came from: from the hub library's cache with no network call
    when it is there and complete, else downloaded into that cache (progress on stderr) and checked.
    HubError (one line) when neither can be done."""
    repo, cached = lookup(name, hub, revision)
    if cached is None:
        return download(repo, hub, revision)
    return cached, source_of(cached, hub, repo, revision)


def download(name: str, hub: str = DEFAULT_HUB, revision: str | None = None,
             local_dir: Path | None = None) -> tuple[Path, HubSource]:
    """Fetch a hub model (into the library's cache, or ``local_dir``) and check that its release is complete."""
    repo = repo_id(name, hub)
    print(f"sensevoice: downloading {repo} from {HUBS[hub]} ({endpoint(hub)}) into "
          f"{local_dir or cache_root(hub)}", file=sys.stderr)
    try:
        folder = fetch(repo, hub, revision, local_dir)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # each library has its own error types; the message is what matters here
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise HubError(f"{repo}: downloading from {HUBS[hub]} ({endpoint(hub)}) failed: {first_line}"
                       f"{other_hub_hint(repo, hub)}") from err
    missing = missing_files(folder)
    if missing:
        raise HubError(f"{repo}: the download ({folder}) lacks {missing}, files its configuration.json names")
    return folder, source_of(folder, hub, repo, revision)


def copy_release(src: Path, dst: Path) -> Path:
    """A cached snapshot as a plain folder: every file (links followed, as copies), without the cache's
    bookkeeping."""
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*CACHE_LEFTOVERS))
    return dst


def prepare(name: str, hub: str = DEFAULT_HUB, revision: str | None = None,
            local_dir: Path | None = None) -> tuple[Path, HubSource]:
    """``sensevoice download``: the model in the hub library's cache (from there when complete, else downloaded),
    or in ``local_dir`` as a plain folder to carry to a machine without network (copied from the cache when it is
    there, else downloaded straight into it)."""
    if local_dir is None:
        return snapshot(name, hub, revision)
    repo, cached = lookup(name, hub, revision)
    if cached is None:
        return download(repo, hub, revision, Path(local_dir))
    print(f"sensevoice: copying {repo} from the {HUBS[hub]} cache ({cached}) to {local_dir}", file=sys.stderr)
    return copy_release(cached, Path(local_dir)), source_of(cached, hub, repo, revision)
