"""The Ray Data job behind ``sensevoice batch`` (the door, inputs and output folder are ``sensevoice.batch``)::

    inputs (key, source)                                   ray.data.from_items / read_parquet (bytes)
    -> prepare: decode + FSMN-VAD + features, CPU tasks   Transcriber(backend=None).prepare: one row per segment
       (+ speaker turns with --diarize)                   (the file's turns ride on each of its rows)
    -> decode: map_batches on an actor pool                Transcriber.decode: each actor holds one model,
                                                          length-bucketed model calls within its batch
    -> driver: a file's segments -> its row                pipeline.input_result: its Transcript's fields,
                                                          shards written whole

Everything that transcribes is the one pipeline (``sensevoice.pipeline``): this module only moves its inputs and
outputs between Ray stages. A file travels as one row per speech segment, so a long file is never resident in full
past the prepare task that cut it, and the actors' batches mix segments of many files. Features cross the object
store as raw float32 bytes in an Arrow binary column (no pickling; about as large as the 16-bit audio itself:
560 floats per 60 ms); failed files travel as rows with ``error`` set, never as exceptions.

A model actor that dies (killed, out of memory) is restarted by Ray and its in-flight batch retried (Ray Data's
defaults for actor pools: max_restarts=-1, max_task_retries=-1); a file's row is written only once all of its
segments are back, so each input reaches the output once.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict
from typing import Any, Iterator

import numpy as np
import ray
import ray.data

from sensevoice import REPO_ROOT, heavy
from sensevoice.argtypes import backend_options
from sensevoice.batchio import Input, Store

LOCAL_OBJECT_STORE_BYTES = 1 << 30  # 1 GiB for an embedded local Ray (the default, 30 % of RAM, is a laptop's lot)
SEGMENTS_PER_BLOCK = 64  # a prepare task emits a long file's segments in blocks of this many rows
PREPARE_RETRIES = 3  # a prepare task whose worker died is run again (a bad file is a failure row, not a retry)
FLUSH_EVERY_S = 60.0  # a shard is written at least this often (besides every --shard-rows files)
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- prepare (CPU)
@functools.cache
def preparer(model: str, vad: bool, speaker_encoder: str):
    """One prepare-only Transcriber per worker process (FSMN-VAD, the frontend and the speaker encoder, loaded when
    a file asks for speakers; no network)."""
    import torch

    heavy.import_funasr()
    from sensevoice.pipeline import Transcriber

    torch.set_num_threads(1)  # one CPU per task: Ray runs as many tasks as it has CPUs
    with contextlib.redirect_stdout(sys.stderr):
        return Transcriber(model, backend=None, vad=vad, threads=1, speaker_encoder=speaker_encoder)


def segment_rows(key: str, source: str, duration_ms: int, spans, feats, error: str = "", turns: str = ""
                 ) -> dict[str, np.ndarray]:
    """A file's segments (or its failure, or its lack of speech: one row with index -1) as a block of columns;
    ``turns``: the file's speaker turns as JSON ``[[start_ms, end_ms, speaker], ...]`` ("" when not diarized)."""
    n = len(spans)
    rows = range(n) if n else [-1]
    return {"key": np.array([key] * len(rows), dtype=object), "source": np.array([source] * len(rows), dtype=object),
            "duration_ms": np.full(len(rows), duration_ms, np.int64), "n_segments": np.full(len(rows), n, np.int64),
            "index": np.array(list(rows), np.int64),
            "start_ms": np.array([s for s, _ in spans] or [0], np.int64),
            "end_ms": np.array([e for _, e in spans] or [0], np.int64),
            "frames": np.array([len(f) for f in feats] or [0], np.int64),
            "feats": np.array([f.numpy().astype(np.float32).tobytes() for f in feats] or [b""], dtype=object),
            "error": np.array([error] * len(rows), dtype=object),
            "turns": np.array([turns] * len(rows), dtype=object)}


def prepare_file(batch: dict[str, np.ndarray], model: str, vad: bool, fs: int, bytes_column: str | None,
                 diarization: dict[str, Any] | None, speaker_encoder: str) -> Iterator[dict[str, np.ndarray]]:
    """One input file (a batch of one row) -> its segments' rows, in blocks of SEGMENTS_PER_BLOCK; with
    ``diarization`` (DiarizationOptions' fields) its speaker turns, found with ``speaker_encoder`` (a name of
    diarize.SPEAKER_ENCODERS), ride on every row."""
    from sensevoice.diarize import DiarizationOptions

    key, source = str(batch["key"][0]), str(batch["source"][0])
    audio = bytes(batch[bytes_column][0]) if bytes_column else source
    options = DiarizationOptions(**diarization) if diarization is not None else None
    try:
        prepared = preparer(model, vad, speaker_encoder).prepare(audio, key, fs, diarization=options)
    except (OSError, ValueError, RuntimeError) as err:  # AudioInputError is a ValueError (and too many speakers)
        yield segment_rows(key, source, 0, (), (), str(err).removeprefix(f"{key}: ") or type(err).__name__)
        return
    turns = "" if prepared.turns is None else json.dumps([[t.start_ms, t.end_ms, t.speaker] for t in prepared.turns])
    for start in range(0, max(len(prepared.spans), 1), SEGMENTS_PER_BLOCK):
        stop = start + SEGMENTS_PER_BLOCK
        rows = segment_rows(key, source, prepared.duration_ms, prepared.spans[start:stop], prepared.feats[start:stop],
                            turns=turns)
        if prepared.spans:
            rows["index"] += start
        yield rows


# ----------------------------------------------------------------------------------------------- decode (actors)
class Decoder:
    """A model actor: one Transcriber (the pipeline's backend on this actor's device) decoding segment rows."""

    def __init__(self, model: str, backend: dict[str, str], options: dict[str, Any], device: str, threads: int,
                 batch_size_s: float):
        heavy.import_funasr()
        import model as sv
        from sensevoice.pipeline import Transcriber

        with contextlib.redirect_stdout(sys.stderr):
            self.transcriber = Transcriber(model, backend=sv.BackendOptions(**backend), vad=False, device=device,
                                           threads=threads, batch_size_s=batch_size_s)
        self.options = sv.DecodingOptions(**options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from sensevoice.pipeline import Prepared

        speech = [i for i in range(len(batch["key"])) if not batch["error"][i] and batch["index"][i] >= 0]
        items = []
        for i in speech:
            flat = np.frombuffer(batch["feats"][i], dtype=np.float32)
            feats = torch.from_numpy(flat.reshape(int(batch["frames"][i]), -1).copy())  # (T, n_input)
            span = (int(batch["start_ms"][i]), int(batch["end_ms"][i]))
            items.append(Prepared(str(batch["key"][i]), int(batch["duration_ms"][i]), (span,), (feats,)))
        segments = [""] * len(batch["key"])
        for i, result in zip(speech, self.transcriber.decode(items, self.options)):
            segments[i] = json.dumps(result.segments[0].to_dict(), ensure_ascii=False)
        passed = ("key", "source", "duration_ms", "n_segments", "index", "error", "turns")
        return {name: batch[name] for name in passed} | {"segment": np.array(segments, dtype=object)}


# ----------------------------------------------------------------------------------------------- driver
class Assembler:
    """Segment results -> one row per file (its Transcript's fields), once all of a file's segments are back."""

    def __init__(self, model: str, options: str, timestamps: bool):
        from sensevoice.pipeline import input_result

        self.input_result, self.model, self.options, self.timestamps = input_result, model, options, timestamps
        self.partial: dict[str, dict[int, dict[str, Any]]] = {}

    def add(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """("results" | "failures", the file's row) when ``row`` completes its file, else None."""
        key, source = row["key"], row["source"]
        if row["error"]:
            return "failures", {"key": key, "source": source, "error": row["error"]}
        parts = self.partial.setdefault(key, {})
        if row["index"] >= 0:
            parts[int(row["index"])] = json.loads(row["segment"])
        if len(parts) < row["n_segments"]:
            return None
        del self.partial[key]
        from sensevoice.diarize import Turn
        from sensevoice.result import Segment

        segments = [Segment.from_dict(parts[i]) for i in sorted(parts)]
        turns = [Turn(*t) for t in json.loads(row["turns"])] if row["turns"] else None
        result = self.input_result(key, int(row["duration_ms"]), segments, self.timestamps, turns).to_dict()
        del result["key"]
        return "results", {"key": key, "source": source, "duration_s": row["duration_ms"] / 1000, **result,
                           "model": self.model, "options": self.options}


class Report:
    """Progress lines on stderr: files done of total, failures, audio hours, files/s, audio-h/h, ETA."""

    def __init__(self, total: int, every_s: float):
        self.total, self.every_s = total, every_s
        self.start = self.last = time.monotonic()
        self.files = self.failed = 0
        self.audio_s = 0.0

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.files += 1
        self.failed += table == "failures"
        self.audio_s += row.get("duration_s", 0.0)
        if time.monotonic() - self.last >= self.every_s:
            self.print()

    def stats(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return {"files": self.files, "failed": self.failed, "audio_s": self.audio_s, "wall_s": elapsed,
                "files_per_s": self.files / elapsed, "audio_h_per_h": self.audio_s / elapsed}

    def print(self, final: bool = False) -> None:
        self.last = time.monotonic()
        s = self.stats()
        eta = (self.total - self.files) / s["files_per_s"] if s["files_per_s"] else float("inf")
        print(f"sensevoice batch: {'done: ' if final else ''}{self.files}/{self.total} files ({self.failed} failed), "
              f"{self.audio_s / 3600:.3f} h audio in {s['wall_s']:.0f} s: {s['files_per_s']:.2f} files/s, "
              f"{s['audio_h_per_h']:.0f} audio-h/h" + ("" if final else f", ETA {eta:.0f} s"), file=sys.stderr)


def start_ray(args: argparse.Namespace) -> bool:
    """Join ``--address``, or start a local Ray for this job (True: this call started it, and stops it)."""
    if ray.is_initialized():  # already in a Ray driver (a notebook, the tests): use that one
        return False
    if args.address is None:
        cpus = os.cpu_count() or 1
        # Model actors take one logical CPU each on top of the machine's: the prepare tasks keep a CPU apiece.
        # The local Ray's processes import model and sensevoice from here; this process's own environment is left
        # as it was (a batch run inside a notebook or the tests must not change what later subprocesses import).
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), old]))
        try:
            ray.init(address="local", num_cpus=cpus + (args.actors or max(1, cpus // 2)), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=args.verbose, logging_level="ERROR")
        finally:
            os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)
    else:
        runtime_env = {"working_dir": str(args.working_dir)} if args.working_dir else None
        ray.init(address=args.address, runtime_env=runtime_env, log_to_driver=args.verbose, logging_level="ERROR")
    return True


def plan_actors(args: argparse.Namespace) -> tuple[str, int, int]:
    """(device, actors, torch threads per actor) from the options and the cluster's resources."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    device = args.device or ("cuda" if gpus else "cpu")
    machine_cpus = cpus if args.address else os.cpu_count() or 1  # a local Ray counts the actors' CPUs on top
    actors = args.actors or (max(gpus, 1) if device == "cuda" else max(1, machine_cpus // 2))
    threads = args.threads or max(1, min(machine_cpus, os.cpu_count() or 1) // actors)
    return device, actors, threads


def build_dataset(args: argparse.Namespace, todo: list[Input], options, device: str, actors: int, threads: int,
                  diarization=None):
    from sensevoice.batchio import parquet_columns

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = args.verbose
    if not args.verbose:  # our progress lines say what Ray Data's INFO lines say, once per --progress-every-s
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    bytes_column = parquet_columns(args.input)[1] if args.input.endswith(".parquet") else None
    if bytes_column:  # the audio bytes stay in the Parquet file until a prepare task reads its row
        wanted = {item.key: item.source for item in todo}
        ds = ray.data.read_parquet(args.input).select_columns(["key", bytes_column]).filter(
            lambda row: row["key"] in wanted).map(lambda row: {**row, "source": wanted[row["key"]]})
    else:
        ds = ray.data.from_items([{"key": item.key, "source": item.source} for item in todo])
    # Tasks of their own, never fused into the model actors (their remote args differ: max_retries), so a GPU
    # actor does not sit idle while audio is decoded and cut; a task lost with its worker is retried.
    with warnings.catch_warnings():  # max_retries has no named parameter yet ("ray_remote_args is deprecated")
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(prepare_file, batch_size=1, batch_format="numpy", num_cpus=1, max_retries=PREPARE_RETRIES,
                            fn_kwargs={"model": str(args.model_dir.path), "vad": args.vad, "fs": options.fs,
                                       "bytes_column": bytes_column,
                                       "diarization": asdict(diarization) if diarization is not None else None,
                                       "speaker_encoder": args.speaker_encoder})
    from sensevoice.pipeline import with_word_times  # the Decoder's items carry no turns (the Assembler applies them)

    options = with_word_times(options, diarization is not None)  # kept in the rows only with --timestamps
    return ds.map_batches(Decoder, batch_size=args.segments_per_batch, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=actors),
                          num_cpus=1, num_gpus=1 if device == "cuda" else 0,
                          fn_constructor_kwargs={"model": str(args.model_dir.path),
                                                 "backend": asdict(backend_options(args)),
                                                 "options": asdict(options), "device": device,
                                                 "threads": threads, "batch_size_s": args.batch_size_s})


def options_text(args: argparse.Namespace, options, diarization=None) -> str:
    return json.dumps({**asdict(options), **asdict(backend_options(args)), "vad": args.vad,
                       "batch_size_s": args.batch_size_s,
                       "diarization": asdict(diarization) if diarization is not None else None,
                       "speaker_encoder": args.speaker_encoder if diarization is not None else None}, sort_keys=True)


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_job(args: argparse.Namespace, todo: list[Input], store: Store, options, diarization=None) -> int:
    """Run the job on Ray for the inputs still to do; ``options``: the model.DecodingOptions the door checked;
    ``diarization``: its sensevoice.diarize.DiarizationOptions, or None."""
    heavy.import_funasr()
    started = start_ray(args)
    if threading_main():
        signal.signal(signal.SIGTERM, raise_interrupt)  # a scheduler's stop: write what is finished, then exit
    device, actors, threads = plan_actors(args)
    print(f"sensevoice batch: Ray {ray.__version__} at {args.address or 'local'}; {actors} model actor(s) on "
          f"{device}, {threads} thread(s) each", file=sys.stderr)
    assembler = Assembler(args.model_dir.identity.id, options_text(args, options, diarization), args.timestamps)
    report = Report(len(todo), args.progress_every_s)
    buffers: dict[str, list[dict[str, Any]]] = {"results": [], "failures": []}
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        for table, rows in buffers.items():
            store.write(table, rows)
            rows.clear()
        last_flush = time.monotonic()

    try:
        for row in build_dataset(args, todo, options, device, actors, threads, diarization).iter_rows():
            done = assembler.add(row)
            if done is None:
                continue
            buffers[done[0]].append(done[1])
            report.add(*done)
            if sum(map(len, buffers.values())) >= args.shard_rows or time.monotonic() - last_flush > FLUSH_EVERY_S:
                flush()
        flush()
        report.print(final=True)
        return 0
    except KeyboardInterrupt:
        flush()
        report.print(final=True)
        print("sensevoice batch: interrupted; rerun the same command to go on", file=sys.stderr)
        return 130
    except ray.exceptions.RayError as err:
        flush()
        print(f"sensevoice batch: error: {err}", file=sys.stderr)
        return 1
    finally:
        if started:
            ray.shutdown()


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
