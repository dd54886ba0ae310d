"""The batch job's inputs and output folder (``sensevoice batch``'s door is ``sensevoice.batch``, its Ray job
``sensevoice.raybatch``; both use this module, which imports neither): the input lists (a folder or glob of audio
files, a wav.scp, a jsonl list, a Parquet file of paths or bytes) and the folder of resumable JSONL or Parquet
shards. Light: no Ray, no torch.

The output folder::

    OUT/manifest.json              format and settings of the run that created it (a rerun must match them),
                                   the model's id among them (ModelDir.identity: demo, official or custom, with
                                   its weights hash), and the model's identity in full
    OUT/results/part-<run>-<n>.<jsonl|parquet>    key, source, duration_s, then every field of the file's
                                                  sensevoice.result.Transcript as ``transcribe -f json`` writes it
                                                  (duration_ms, text, clean_text, tags, segments with absolute
                                                  times and confidence, [word lists], [speakers, turns]), model
                                                  (the model's id), options
    OUT/failures/part-<run>-<n>.<jsonl|parquet>   key, source, error

Each shard is written whole (a temporary name, then a rename), so a run stopped at any point leaves only complete
shards; a rerun skips every key already in one of them (a result or a failure), so the folder ends up with each
input exactly once.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from sensevoice.argtypes import UsageError
from sensevoice.result import Transcript, field_names

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".webm", ".mp4", ".pcm")
INPUT_FORMATS = ("auto", "folder", "glob", "scp", "jsonl", "parquet")
OUTPUT_FORMATS = ("jsonl", "parquet")
SOURCE_FIELDS = ("source", "path", "wav", "audio_path")  # a jsonl/Parquet row's audio path (official: source)
BYTES_FIELDS = ("bytes", "audio", "audio_bytes")  # a Parquet row's audio file bytes
TABLES = ("results", "failures")
TMP_PREFIX = ".tmp-"  # a shard being written; never read, removed by the next run


@dataclass(frozen=True)
class Input:
    """One file to transcribe: its key (unique in the job) and its source (a path, or ``file.parquet[key]``)."""

    key: str
    source: str


# ----------------------------------------------------------------------------------------------- inputs
def input_format(text: str, chosen: str) -> str:
    if chosen != "auto":
        return chosen
    path = Path(text)
    if path.is_dir():
        return "folder"
    if globlib.has_magic(text):
        return "glob"
    if not path.exists():
        raise UsageError(f"input {text!r}: no such file or directory")
    formats = {".scp": "scp", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
    if path.suffix.lower() not in formats:
        raise UsageError(f"input {text!r}: unknown input format {path.suffix or '(no suffix)'!r}; expected a folder, "
                         f"a glob, .scp, .jsonl or .parquet (or --input-format)")
    return formats[path.suffix.lower()]


def files_as_inputs(paths: Sequence[Path], root: Path) -> list[Input]:
    """Audio files -> inputs keyed by their path under ``root`` without suffix (``a/b.wav`` -> ``a/b``)."""
    return [Input(path.relative_to(root).with_suffix("").as_posix(), str(path)) for path in paths]


def list_folder(text: str) -> list[Input]:
    root = Path(text)
    if not root.is_dir():
        raise UsageError(f"input {text!r}: not a folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return files_as_inputs(paths, root)


def list_glob(text: str) -> list[Input]:
    paths = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
    if not paths:
        return []
    root = Path(os.path.commonpath([p.parent for p in paths]))
    return files_as_inputs(paths, root)


def list_scp(text: str) -> list[Input]:
    inputs = []
    for n, line in enumerate(Path(text).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise UsageError(f"input {text!r} line {n}: expected 'key path', got {line!r}")
            inputs.append(Input(parts[0], parts[1].strip()))
    return inputs


def row_input(row: dict[str, Any], where: str) -> Input:
    source = next((row[f] for f in SOURCE_FIELDS if isinstance(row.get(f), str)), None)
    if source is None:
        raise UsageError(f"{where}: no audio path (one of {', '.join(SOURCE_FIELDS)})")
    return Input(str(row.get("key") or Path(source).stem), source)


def list_jsonl(text: str) -> list[Input]:
    inputs = []
    for n, line in enumerate(Path(text).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"input {text!r} line {n}: not JSON ({err})")
            if not isinstance(row, dict):
                raise UsageError(f"input {text!r} line {n}: expected an object, got {line[:60]!r}")
            inputs.append(row_input(row, f"input {text!r} line {n}"))
    return inputs


def parquet_columns(text: str) -> tuple[list[str], str | None]:
    """(the file's column names, its audio-bytes column or None)."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(text).names
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError …
        raise UsageError(f"input {text!r}: not a Parquet file ({err})")
    return names, next((f for f in BYTES_FIELDS if f in names), None)


def list_parquet(text: str) -> list[Input]:
    """Keys and paths from a Parquet file; with a bytes column only its keys are read here (Ray reads the audio)."""
    import pyarrow.parquet as pq

    names, bytes_column = parquet_columns(text)
    if bytes_column is not None:
        if "key" not in names:
            raise UsageError(f"input {text!r}: a bytes column ({bytes_column}) needs a key column")
        return [Input(str(k), f"{text}[{k}]") for k in pq.read_table(text, columns=["key"]).column("key").to_pylist()]
    columns = [c for c in ("key", *SOURCE_FIELDS) if c in names]
    rows = pq.read_table(text, columns=columns).to_pylist()
    return [row_input(row, f"input {text!r} row {n}") for n, row in enumerate(rows)]


LISTERS = {"folder": list_folder, "glob": list_glob, "scp": list_scp, "jsonl": list_jsonl, "parquet": list_parquet}


def list_inputs(text: str, chosen: str = "auto") -> list[Input]:
    """Every input of the job, in order; UsageError for an unreadable list, no inputs or a duplicate key."""
    fmt = input_format(text, chosen)
    if fmt in ("scp", "jsonl", "parquet") and not Path(text).is_file():
        raise UsageError(f"input {text!r}: no such file")
    inputs = LISTERS[fmt](text)
    if not inputs:
        raise UsageError(f"input {text!r}: no audio files ({fmt})")
    seen: set[str] = set()
    for item in inputs:
        if item.key in seen:
            raise UsageError(f"input {text!r}: key {item.key!r} appears twice (each key must be one file)")
        seen.add(item.key)
    return inputs


# ----------------------------------------------------------------------------------------------- output folder
class Store:
    """The output folder: ``results/`` and ``failures/`` shards, each written whole (temporary name, then rename)."""

    def __init__(self, root: Path, fmt: str, parts: Sequence[str] = ()):
        """``parts``: the optional parts of the results (sensevoice.result.PARTS) that this run writes."""
        self.root, self.fmt, self.parts = root, fmt, tuple(parts)
        self.run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        self.written = 0

    def check_manifest(self, wanted: dict[str, Any], model: dict[str, Any] | None = None) -> None:
        """Create manifest.json (``model``: the model's identity, for people), or check that this run matches its
        settings (UsageError names what differs)."""
        path = self.root / "manifest.json"
        manifest = {"format": self.fmt, "settings": wanted, **({"model": model} if model is not None else {})}
        if path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old["format"] != self.fmt:
                raise UsageError(f"--output {str(self.root)!r} holds {old['format']} shards; rerun with -f "
                                 f"{old['format']} or use another folder")
            diff = {k: (old["settings"].get(k), v) for k, v in wanted.items() if old["settings"].get(k) != v}
            if diff:
                raise UsageError(f"--output {str(self.root)!r} was written with other settings ("
                                 + ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())
                                 + "); use the same or another folder")
            return
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"--output {str(self.root)!r} is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

    def shards(self, table: str) -> list[Path]:
        folder = self.root / table
        return sorted(p for p in folder.glob(f"*.{self.fmt}") if not p.name.startswith(TMP_PREFIX)) \
            if folder.is_dir() else []

    def done_keys(self) -> set[str]:
        """Keys already written (results and failures); leftover temporary shards of a killed run are removed."""
        for table in TABLES:
            for leftover in (self.root / table).glob(f"{TMP_PREFIX}*") if (self.root / table).is_dir() else []:
                leftover.unlink()
        return {row["key"] for table in TABLES for shard in self.shards(table)
                for row in read_shard(shard, columns=["key"])}

    def write(self, table: str, rows: list[dict[str, Any]]) -> Path | None:
        if not rows:
            return None
        folder = self.root / table
        folder.mkdir(parents=True, exist_ok=True)
        self.written += 1
        path = folder / f"part-{self.run_id}-{self.written:05d}.{self.fmt}"
        tmp = folder / f"{TMP_PREFIX}{path.name}"
        if self.fmt == "jsonl":
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows, schema=schema(table, self.parts)), tmp)
        os.replace(tmp, path)
        return path


def schema(table: str, parts: Sequence[str] = ()):
    """The Parquet schema of a table (JSONL rows hold the same fields): a result row is the key, source and
    duration_s, the fields of sensevoice.result.Transcript that ``parts`` bring (typed as the Transcript declares
    them), the model and the options."""
    import pyarrow as pa

    if table == "failures":
        return pa.schema([("key", pa.string()), ("source", pa.string()), ("error", pa.string())])
    transcript = arrow_type(Transcript, parts)
    return pa.schema([("key", pa.string()), ("source", pa.string()), ("duration_s", pa.float64()),
                      *((f.name, f.type) for f in transcript if f.name != "key"),
                      ("model", pa.string()), ("options", pa.string())])


def arrow_type(hint: Any, parts: Sequence[str]):
    """The Arrow type of a result type's annotation: int, float, str, lists, dicts (maps), optional (nullable)
    and result dataclasses (structs of the fields that ``parts`` bring)."""
    import dataclasses
    import types
    import typing

    import pyarrow as pa

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None: nullable, as every Arrow field is
        [hint] = [a for a in args if a is not type(None)]
        return arrow_type(hint, parts)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return pa.struct([(name, arrow_type(hints[name], parts)) for name in field_names(hint, parts)])
    if origin is list:
        return pa.list_(arrow_type(args[0], parts))
    if origin is dict:
        return pa.map_(arrow_type(args[0], parts), arrow_type(args[1], parts))
    scalars = {int: pa.int64(), float: pa.float64(), str: pa.string()}
    if hint not in scalars:
        raise TypeError(f"no Arrow type for a result field of type {hint!r}")
    return scalars[hint]


def read_shard(path: Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=list(columns) if columns else None).to_pylist(maps_as_pydicts="strict")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [{c: r[c] for c in columns} for r in rows] if columns else rows


def read_output(root: str | os.PathLike, table: str = "results") -> list[dict[str, Any]]:
    """Every row of an output folder's table (JSONL or Parquet: the same dicts), sorted by key."""
    fmt = json.loads((Path(root) / "manifest.json").read_text(encoding="utf-8"))["format"]
    shards = Store(Path(root), fmt).shards(table)
    return sorted((row for shard in shards for row in read_shard(shard)), key=lambda r: r["key"])


def pending(inputs: Iterable[Input], done: set[str]) -> list[Input]:
    return [item for item in inputs if item.key not in done]
