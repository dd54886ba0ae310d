"""FunASR's own entry point, timed: ``AutoModel(trust_remote_code=True, backend=..., quantize=...)`` with each of our
backends against FunASR's built-in SenseVoiceSmall, interleaved in one process on the same clip and weights.

    python -m sensevoice.bench.automodel                      # random official-size weights, 10 s of real speech
    python -m sensevoice.bench.automodel --model DIR --reps 10

Writes ``OUT/NAME.json`` and ``OUT/NAME.md`` (default bench/results/automodel_backends): per variant the median
``generate()`` time (file in, text out, batch 1), its speed-up over the built-in class and whether its text equals
the built-in's. FunASR's own classes are put back in its registry while the built-in model is built (our model.py
registers the same names), so the two classes really are FunASR's and ours. The ONNX graphs come from the backends' cache (exported once per
weights; the first run includes a minute or two of export, not counted in the timings).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from sensevoice import REPO_ROOT
from sensevoice.argtypes import UsageError, positive_float, positive_int
from sensevoice.door import module_main

PROG = "python -m sensevoice.bench.automodel"

VARIANTS = {  # name -> AutoModel keyword arguments of ours (None: FunASR's built-in class, the reference)
    "funasr-builtin": None,
    "torch": {},
    "torch-bf16": {"backend": "torch", "precision": "bf16"},
    "torch-int8": {"backend": "torch", "quantize": "int8"},
    "onnxruntime": {"backend": "onnxruntime"},
    "onnxruntime-int8": {"backend": "onnxruntime", "quantize": "int8"},
}
REFERENCE = "funasr-builtin"


def clip_file(work: Path, seconds: float) -> tuple[Path, str]:
    """``seconds`` of real speech (the official English news example) as a 16 kHz wav, else speech-like audio;
    read without importing model.py."""
    import numpy as np
    import soundfile

    from sensevoice.modeldir import official_dir

    path = work / f"clip{seconds:g}s.wav"
    official = official_dir()
    if official is not None:
        wave, fs = soundfile.read(official / "example" / "enNews.wav", dtype="float32", always_2d=True)
        wave = wave.mean(axis=1)
        if fs != 16000:
            from scipy.signal import resample_poly

            wave, fs = resample_poly(wave, 16000, fs).astype(np.float32), 16000
        wave, source = wave[5 * fs:5 * fs + int(seconds * fs)], "official example enNews.wav (real speech)"
    else:
        from sensevoice.bench.speed import synthetic_speech

        wave, source = synthetic_speech(seconds), "synthetic speech-like audio"
    work.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, 16000)
    return path, source


@contextlib.contextmanager
def builtin_registered():
    """FunASR's own SenseVoiceSmall and encoder in its registry for a while (our model.py, once imported, registers
    the same names over them)."""
    from funasr.models.sense_voice import model as builtin
    from funasr.register import tables

    saved = tables.model_classes.get("SenseVoiceSmall"), tables.encoder_classes.get("SenseVoiceEncoderSmall")
    tables.model_classes["SenseVoiceSmall"] = builtin.SenseVoiceSmall
    tables.encoder_classes["SenseVoiceEncoderSmall"] = builtin.SenseVoiceEncoderSmall
    try:
        yield
    finally:
        for table, key, value in ((tables.model_classes, "SenseVoiceSmall", saved[0]),
                                  (tables.encoder_classes, "SenseVoiceEncoderSmall", saved[1])):
            if value is not None:
                table[key] = value


def build(name: str, model_dir: Path, threads: int):
    from funasr import AutoModel

    common = dict(model=str(model_dir), device="cpu", ncpu=threads, disable_update=True, disable_pbar=True,
                  disable_log=True)
    if VARIANTS[name] is None:  # FunASR's built-in class: its loader, its frontend (dither off, as ours)
        with builtin_registered():
            built = AutoModel(**common, trust_remote_code=False, frontend_conf={"dither": 0.0})
        if not type(built.model).__module__.startswith("funasr.models.sense_voice"):
            raise TypeError(f"expected FunASR's built-in SenseVoiceSmall, got {type(built.model).__module__}")
        return built
    built = AutoModel(**common, trust_remote_code=True, remote_code=str(REPO_ROOT / "model.py"), **VARIANTS[name])
    if type(built.model).__module__ != "model":
        raise TypeError(f"FunASR built {type(built.model)} for {name}, not our model.py's class")
    return built


def measure(names: Sequence[str], model_dir: Path, clip: Path, threads: int, warmup: int, reps: int
            ) -> dict[str, Any]:
    models, load_s = {}, {}
    for name in names:
        start = time.perf_counter()
        models[name] = build(name, model_dir, threads)
        models[name].generate(input=str(clip), language="auto", use_itn=True)  # ours: backend built (ONNX export)
        load_s[name] = round(time.perf_counter() - start, 1)
        print(f"[{name}] ready in {load_s[name]} s", flush=True)
    texts, times = {}, {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            texts[name] = models[name].generate(input=str(clip), language="auto", use_itn=True)[0]["text"]
    for rep in range(reps):  # interleaved: machine load drifts over every variant alike
        for name in names:
            start = time.perf_counter()
            texts[name] = models[name].generate(input=str(clip), language="auto", use_itn=True)[0]["text"]
            times[name].append(time.perf_counter() - start)
    reference = statistics.median(times[REFERENCE])
    return {name: {"median_ms": round(1000 * statistics.median(times[name]), 1),
                   "min_ms": round(1000 * min(times[name]), 1),
                   "speedup_vs_builtin": round(reference / statistics.median(times[name]), 2),
                   "same_text_as_builtin": texts[name] == texts[REFERENCE], "text": texts[name],
                   "ready_s": load_s[name]} for name in names}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"### AutoModel backends vs FunASR's built-in SenseVoiceSmall ({report['clip_s']:g} s clip, "
             f"{report['threads']} threads)", "",
             f"Weights: {report['weights']}. Clip: {report['clip_source']}. {report['reps']} interleaved rounds after "
             f"{report['warmup']} warm-up; `generate(input=file, language=\"auto\", use_itn=True)`, file in, text out.",
             f"Machine: {report['machine']}. Command: `{report['command']}`.", "",
             "| variant | median ms | min ms | speed-up vs built-in | same text as built-in |", "|---|---|---|---|---|"]
    for name, r in report["variants"].items():
        lines.append(f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['speedup_vs_builtin']:.2f}x | "
                     f"{'yes' if r['same_text_as_builtin'] else 'no'} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, metavar="DIR",
                        help="model directory (default: random official-size weights, seed 0, built under --work)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)} (the built-in reference always runs)")
    parser.add_argument("--clip-s", type=positive_float, default=10.0, help="clip length (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--warmup", type=positive_int, default=2)
    parser.add_argument("--reps", type=positive_int, default=7)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "exp" / "bench_automodel")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--name", default="automodel_backends")


def run(args: argparse.Namespace) -> int:
    names = [REFERENCE] + [n.strip() for n in args.variants.split(",") if n.strip() and n.strip() != REFERENCE]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UsageError(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    from sensevoice import heavy
    from sensevoice.bench.speed import resolve_model
    from sensevoice.modeldir import ModelDirError

    heavy.import_funasr()
    import torch

    torch.set_num_threads(args.threads)
    try:
        model_dir, weights = resolve_model(args.model, args.work)
    except ModelDirError as err:
        raise UsageError(str(err))
    clip, source = clip_file(args.work, args.clip_s)
    variants = measure(names, model_dir, clip, args.threads, args.warmup, args.reps)
    report = {"clip_s": args.clip_s, "clip_source": source, "weights": weights, "threads": args.threads,
              "warmup": args.warmup, "reps": args.reps, "variants": variants,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
                         f"{os.getloadavg()[0]:.2f}",
              "command": " ".join([PROG, *args.argv]),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(PROG, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
