"""``sensevoice batch``: a corpus (a folder or glob of audio files, a wav.scp, a jsonl list, a Parquet file of paths
or bytes) transcribed on Ray Data into a folder of JSONL or Parquet shards, one row per file, plus a failures table
(key, error): a bad file is a row there, never a lost batch.

This module is the door; light (no Ray, no torch): every usage error (a bad input path, an unknown input format,
a bad ``--address``, a bad option value, options that differ from the output's earlier runs) is found here before
``sensevoice.raybatch`` imports Ray. The input lists and the output folder are ``sensevoice.batchio``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from sensevoice import heavy
from sensevoice.argtypes import (UsageError, add_backend_arguments, add_decoding_arguments, add_model_arguments,
                                 backend_options, check_backend, check_output_dir, check_weights, decoding_options,
                                 model_dir_from_args, positive_float, positive_int)
from sensevoice.argtypes import add_diarization_arguments, diarization_options, require_speaker_encoder, speaker_encoder
from sensevoice.batchio import INPUT_FORMATS, OUTPUT_FORMATS, Input, Store, list_inputs, pending
from sensevoice.result import SPEAKERS, TAG_PROBS, TIMESTAMPS

RAY_CLIENT = re.compile(r"ray://[A-Za-z0-9.\-\[\]:]+:\d{1,5}")
GCS_ADDRESS = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}")


# ----------------------------------------------------------------------------------------------- arguments
def ray_address(text: str) -> str:
    """``auto`` (the cluster this machine belongs to), ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT`` (GCS)."""
    if text == "auto" or RAY_CLIENT.fullmatch(text) or GCS_ADDRESS.fullmatch(text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, ray://HOST:PORT (e.g. ray://head:10001) or HOST:PORT, "
                                     f"got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a folder or a glob of audio files, a wav.scp (key path per line), a jsonl "
                                      "list (the official format's source, or key + path) or a Parquet file "
                                      "(key + path, or key + bytes)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="output folder: results/ and failures/ shards; a rerun skips the keys already there")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                        help="default: from the path (a folder, glob characters, .scp, .jsonl, .parquet)")
    parser.add_argument("-f", "--format", choices=OUTPUT_FORMATS, default="jsonl", help="shard format (default: jsonl)")
    add_model_arguments(parser, default="the embedded demo model; a directory as seen by every worker: shared "
                                "storage, or relative to the job's working_dir; a hub name is looked up on this "
                                "machine, so on a cluster its cache must be on shared storage")
    add_decoding_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument("--vad", action=argparse.BooleanOptionalAction, default=True,
                        help="split files at pauses with the bundled FSMN-VAD (default: on)")
    parser.add_argument("--timestamps", action="store_true", help="add per-word [start_ms, end_ms] (words, timestamp)")
    parser.add_argument("--batch-size-s", type=positive_float, default=60.0, metavar="SECONDS",
                        help="padded seconds of audio per model call (default: 60), as `transcribe --batch-size-s`")
    parser.add_argument("--segments-per-batch", type=positive_int, default=64, metavar="N",
                        help="speech segments an actor takes at once, its in-flight batch (default: 64); its model "
                             "calls are length-bucketed inside it")
    parser.add_argument("--address", type=ray_address, default=None,
                        help="Ray cluster to join: auto, ray://HOST:10001 or HOST:6379 (default: start a local Ray "
                             "on this machine for this job)")
    parser.add_argument("--actors", type=positive_int, default=None, metavar="N",
                        help="model actors (each holds one model; default: one per GPU, else one per 2 CPUs)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="actors' device (default: cuda with one GPU each when the cluster has GPUs, else cpu)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch threads per CPU actor (default: the CPUs divided among the actors)")
    parser.add_argument("--shard-rows", type=positive_int, default=1000, metavar="N",
                        help="files per output shard (default: 1000); a shard is also written every 60 s")
    parser.add_argument("--working-dir", type=Path, default=None, metavar="DIR",
                        help="with --address: ship DIR to the workers (Ray runtime_env working_dir), e.g. a checkout "
                             "with the model inside it")
    parser.add_argument("--progress-every-s", type=positive_float, default=10.0, metavar="SECONDS",
                        help="print progress, throughput and ETA this often (default: 10)")
    add_diarization_arguments(parser)  # in the prepare tasks: a speaker per segment (and word, with --timestamps)


# ----------------------------------------------------------------------------------------------- output folder
def settings(args: argparse.Namespace, options, diarization=None) -> dict[str, Any]:
    """What decides the transcripts: a rerun into the same output must use the same. Every field of the decoding
    options (``options``: model.DecodingOptions, so a new field is compared with no edit here) and of the
    diarization options (``diarization``: sensevoice.diarize.DiarizationOptions, or None), the speaker encoder
    that labels them and the library's clustering settings (re-tuned between releases: a rerun after that is
    refused rather than mixing speakers found two ways), as JSON holds them."""
    door = {"model": str(args.model_dir.path), "model_id": args.model_dir.identity.id, "backend": args.backend,
            "precision": args.precision, "vad": args.vad, "timestamps": args.timestamps,
            "diarization": None, "speaker_encoder": None, "clustering": None}
    if diarization is not None:
        from sensevoice.diarize import DEFAULT_CLUSTERING

        door.update(diarization=dataclasses.asdict(diarization), speaker_encoder=args.speaker_encoder,
                    clustering=dataclasses.asdict(DEFAULT_CLUSTERING))
    return json.loads(json.dumps({**door, **dataclasses.asdict(options)}))  # tuples as lists, as read back


def result_parts(args: argparse.Namespace, options, diarization) -> tuple[str, ...]:
    """The optional parts of sensevoice.result that this run's rows hold (and its Parquet schema declares)."""
    asked = {TIMESTAMPS: args.timestamps, TAG_PROBS: options.tag_topk > 0, SPEAKERS: diarization is not None}
    return tuple(part for part, on in asked.items() if on)


# ----------------------------------------------------------------------------------------------- run
def check_arguments(args: argparse.Namespace) -> list[Input]:
    """Everything the arguments alone decide (UsageError), before Ray, torch and FunASR are imported."""
    check_backend(args)
    check_output_dir(args.output, "--output")
    if args.working_dir is not None and args.address is None:
        raise UsageError("--working-dir ships code to a cluster's workers: it needs --address")
    if args.working_dir is not None and not args.working_dir.is_dir():
        raise UsageError(f"--working-dir {str(args.working_dir)!r}: not a folder")
    inputs = list_inputs(args.input, args.input_format)
    args.model_dir = model_dir_from_args(args)  # its path (resolved) and identity are the job's model from here on
    return inputs


def run(args: argparse.Namespace) -> int:
    inputs = check_arguments(args)
    heavy.import_funasr()  # model.py's options type checks the rest (hotwords files) before Ray starts
    options = decoding_options(args, output_timestamp=args.timestamps)
    diarization = diarization_options(args)  # a UsageError names a bad speaker count
    args.speaker_encoder = speaker_encoder(args, diarization)  # the name the workers load (UsageError: no --diarize)
    check_weights(args.model_dir, backend_options(args))  # before anything is written into the output folder
    store = Store(args.output, args.format, result_parts(args, options, diarization))
    store.check_manifest(settings(args, options, diarization), args.model_dir.identity.as_dict())
    print(f"sensevoice batch: model: {args.model_dir.identity}; from {args.model_dir.path}", file=sys.stderr)
    todo = pending(inputs, store.done_keys())
    print(f"sensevoice batch: {len(inputs)} inputs, {len(inputs) - len(todo)} already in {args.output}, "
          f"{len(todo)} to do", file=sys.stderr)
    if not todo:
        return 0
    if diarization is not None:
        from sensevoice.diarize import Diarizer

        require_speaker_encoder(Diarizer(args.speaker_encoder))  # before Ray starts
    from sensevoice import raybatch  # Ray from here on

    return raybatch.run_job(args, todo, store, options, diarization)
