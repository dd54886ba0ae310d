"""Where ONNX Runtime's time goes: its own profiler over an exported graph, summed per operator type.

    python -m sensevoice.bench.ort_profile --model exp/bench_automodel/official-random --precision fp32

The graph is the model directory's own export or the backends' cache entry for its weights (exported once, as
AutoModel's ``backend="onnxruntime"`` does); the input is ``--clip-s`` seconds of the official English news example
(speech-like audio without it). Prints milliseconds per run and the share of each operator type.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path
from typing import Iterable

from sensevoice.argtypes import existing_dir, positive_float, positive_int
from sensevoice.door import module_main


def profile(model_dir: Path, precision: str, clip_s: float, threads: int, runs: int) -> dict[str, float]:
    """{operator type: ms per run}, most expensive first."""
    import numpy as np
    import onnxruntime as ort

    import model as sv
    from sensevoice import backends, export
    from sensevoice.bench.automodel import clip_file
    from sensevoice.modeldir import ModelDir

    source = ModelDir(model_dir)
    path = backends.onnx_file(source.load(), source, precision)
    clip, _ = clip_file(Path(model_dir) / "profile", clip_s)
    feats, lens = sv.SenseVoiceSmall.extract_features([str(clip)], ["clip"], source.frontend(), sv.SAMPLE_RATE)
    rows = [np.array([sv.PROMPT_ROWS[name]], np.int32) for name in ("auto", "withitn")]
    inputs = dict(zip(export.INPUT_NAMES, (feats.numpy(), lens.numpy().astype(np.int32), *rows)))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = threads, True
    scratch = tempfile.TemporaryDirectory(prefix="ort-profile-")  # ONNX Runtime writes its trace (~6 MB) here
    options.profile_file_prefix = str(Path(scratch.name) / "trace")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as OrtBackend runs it
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, inputs)
    by_op: collections.Counter = collections.Counter()
    with scratch:
        for event in json.loads(Path(session.end_profiling()).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"]
    return {op: us / runs / 1000 for op, us in by_op.most_common()}


def run(args: argparse.Namespace) -> int:
    from sensevoice import heavy

    heavy.import_funasr()
    by_op = profile(args.model, args.precision, args.clip_s, args.threads, args.runs)
    total = sum(by_op.values())
    print(f"{args.precision}: {total:.1f} ms of kernels per run ({args.clip_s:g} s clip, {args.threads} threads)")
    for op, ms in by_op.items():
        print(f"{op:28s} {ms:8.1f} ms  {100 * ms / total:5.1f} %")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=existing_dir, required=True, metavar="DIR", help="model directory")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--clip-s", type=positive_float, default=10.0)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--runs", type=positive_int, default=4)


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.ort_profile", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
