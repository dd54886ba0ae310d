"""Inference benchmark, every backend on the same weights in one run: ``sensevoice bench``.

Backends (``sensevoice/bench/backends.py``): FunASR's built-in SenseVoiceSmall via AutoModel (the reference),
ours in PyTorch (eager, torch.compile, bf16, fp16 on GPU, dynamic int8), ours on ONNX Runtime (fp32, int8),
and sherpa-onnx and funasr-onnx reading our export. Each runs in a process of its own and is measured on:
- latency at batch 1 for 3, 5, 10, 30 s clips (p50/p90 after warm-up): decode, fbank, model, end to end;
- throughput (x real time) over mixed-length clips in length-sorted batches of ``--batch-size-s`` seconds;
- throughput on a long file through the offline FSMN-VAD and batches of ``--batch-size-s``;
- peak memory (max RSS of the process) and the tokens it decoded, compared with the reference's.

Writes ``bench/results/NAME.json`` and ``NAME.md`` and draws ``fig/inference.png``. The weights default to
random official-size weights built from the official config and tokenizer (../shared/official); pass
``--model DIR`` for a trained model directory (e.g. ``demo/``). Speed-ups are ratios to the reference from the
same run; on a shared machine the absolute numbers are noisy (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sensevoice import heavy
from sensevoice.argtypes import UsageError, add_model_arguments, non_negative_int, positive_float, positive_int
from sensevoice.door import module_main
from sensevoice.bench import backends as bb
from sensevoice.bench.signals import speechlike

from sensevoice import REPO_ROOT
RESULTS_DIR = REPO_ROOT / "bench" / "results"
FIGURE = REPO_ROOT / "fig" / "inference.png"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "sensevoice-bench"

LENGTHS_S = (3, 5, 10, 30)  # batch-1 latency clips
MIXED_S = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30)  # 140 s of mixed-length clips
QUICK_LENGTHS_S = (3, 10)
QUICK_MIXED_S = (2, 4, 7, 10)
QUICK_LONG_S = 35.0  # the long file in --quick (full: the official long examples back to back, ~133 s)
HEADLINE_S = "10"  # the clip length of the headline ratios and targets
BATCH_SIZE_S = 60.0
FAST_PRECISIONS = ("bf16", "fp16", "int8")  # token agreement >= 99 % (fp32 paths: the same tokens)
TARGETS = {"fp32_rtf": 0.04, "fp32_speedup": 1.5, "int8_rtf": 0.015, "agreement": 0.99}


@dataclass(frozen=True)
class Settings:
    quick: bool
    threads: int
    device: str
    warmup: int
    reps: int
    mixed_passes: int
    lengths_s: tuple[int, ...]
    mixed_s: tuple[int, ...]
    long_s: float | None  # None: the full long file
    batch_size_s: float
    omp_wait_policy: str  # OMP_WAIT_POLICY of every worker ("" leaves the environment's)
    ort_spin: bool  # our ONNX Runtime threads spin while idle

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        quick = args.quick
        settings = cls(quick=quick, threads=args.threads or os.cpu_count() or 1, device=args.device,
                       warmup=args.warmup,
                       reps=args.reps or (3 if quick else 5), mixed_passes=1 if quick else 2,
                       lengths_s=QUICK_LENGTHS_S if quick else LENGTHS_S, mixed_s=QUICK_MIXED_S if quick else MIXED_S,
                       long_s=QUICK_LONG_S if quick else None, batch_size_s=args.batch_size_s,
                       omp_wait_policy=args.omp_wait_policy, ort_spin=args.ort_spin)
        if settings.threads <= 0 or settings.reps <= 0 or settings.warmup < 0 or settings.batch_size_s <= 0:
            raise ValueError(f"threads, reps and batch-size-s must be positive, warmup >= 0: {settings}")
        return settings


# ----------------------------------------------------------------------------------------------- inputs
def resolve_model(model: str | Path | None, work: Path, hub: str = "ms", revision: str | None = None
                  ) -> tuple[Path, str]:
    """(model directory, how its weights came about): --model (a folder or a hub name), or random official-size
    weights (cached). ModelDirError says why --model is not a model."""
    from sensevoice import modeldir
    from sensevoice.modeldir import ModelDir, ModelDirError

    if model is not None:
        source = ModelDir.resolve(model, hub=hub, revision=revision)
        if not source.weights.is_file():
            raise ModelDirError(f"--model {model}: no model.pt there")
        return source.path, f"{source.source or model} (its model.pt)"
    official = modeldir.official_dir()
    if official is None:
        raise FileNotFoundError("no --model given and the official release files are absent (../shared/official or "
                                f"${modeldir.OFFICIAL_ENV}); pass --model DIR")
    dst = work / "official-random"
    if not (dst / "model.pt").is_file():
        src = official / "SenseVoiceSmall"
        print(f"building random official-size weights in {dst} ...", flush=True)
        ModelDir.create(dst, src / "chn_jpn_yue_eng_ko_spectok.bpe.model", src / "am.mvn", seed=0)
    return dst, "random official-size weights (seed 0; official config and tokenizer)"


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced-like bursts with pauses (when no real speech is at hand): longer bursts than the tests' clips."""
    return speechlike(seconds, seed, pause_hz=0.4, voiced_above=-0.3)


def source_speech() -> tuple[np.ndarray, str]:
    """16 kHz speech to cut clips from: the official long examples back to back (real speech), else synthetic."""
    from sensevoice import modeldir
    from sensevoice.audio import load_audio

    official = modeldir.official_dir()
    if official is None:
        return synthetic_speech(140.0), "synthetic speech-like audio"
    names = ("enNews.wav", "vad_example.wav")
    parts = [load_audio(str(official / "example" / n), n).numpy() for n in names]
    gap = np.zeros(bb.SAMPLE_RATE, np.float32)
    return np.concatenate([parts[0], gap, parts[1]]), f"official examples {' + '.join(names)} (real speech)"


def prepare_audio(audio_dir: Path, settings: Settings) -> tuple[dict[str, str], list[str], str, str]:
    """(latency clips by seconds, mixed-length clips, long file, description), written as 16 kHz wavs."""
    import soundfile

    audio_dir.mkdir(parents=True, exist_ok=True)
    speech, origin = source_speech()

    def write(name: str, start_s: float, seconds: float) -> str:
        start = int(start_s * bb.SAMPLE_RATE) % max(1, len(speech) - int(seconds * bb.SAMPLE_RATE))
        path = audio_dir / f"{name}.wav"
        soundfile.write(path, speech[start: start + int(seconds * bb.SAMPLE_RATE)], bb.SAMPLE_RATE)
        return str(path)

    clips = {str(s): write(f"clip_{s}s", 0.0, s) for s in settings.lengths_s}
    mixed, offset = [], 0.0
    for i, s in enumerate(settings.mixed_s):
        mixed.append(write(f"mixed_{i:02d}_{s}s", offset, s))
        offset += s
    long_s = settings.long_s or len(speech) / bb.SAMPLE_RATE
    long = write(f"long_{long_s:.0f}s", len(speech) / bb.SAMPLE_RATE - long_s if settings.long_s else 0.0, long_s)
    return clips, mixed, long, origin


def mixed_batches(paths: list[str], batch_size_s: float) -> list[list[str]]:
    """The project's length-sorted dynamic batching (shortest first, padded size <= batch_size_s)."""
    from sensevoice.pipeline import plan_batches

    return [[paths[i] for i in batch] for batch in plan_batches([int(bb.audio_seconds(p) * 1000) for p in paths],
                                                                batch_size_s)]


def ensure_export(model_dir: Path, onnx_dir: Path) -> Path:
    """``sensevoice export --int8`` of model_dir into onnx_dir, reused while model.pt and the code that builds the
    graph (export.py, model.py) are unchanged."""
    from sensevoice import export

    stamp = {}
    for name, path in (("model", (model_dir / "model.pt").resolve()), ("exporter", Path(export.__file__).resolve()),
                       ("network", (REPO_ROOT / "model.py").resolve())):
        stamp[name] = {"path": str(path), "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns}
    stamp_file = onnx_dir / "source.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return onnx_dir
    print(f"exporting {model_dir} to {onnx_dir} (fp32 + int8) ...", flush=True)
    shutil.rmtree(onnx_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "sensevoice.export_command", "--model", str(model_dir), "--out", str(onnx_dir),
                    "--int8"], check=True, cwd=REPO_ROOT)
    stamp_file.write_text(json.dumps(stamp))
    return onnx_dir


def select_backends(names: Iterable[str] | None, settings: Settings) -> tuple[list[str], dict[str, str]]:
    """(backends to run, {backend: why it is not measured})."""
    import importlib.util

    requested = list(names) if names else [n for n, b in bb.BACKENDS.items() if b.in_quick or not settings.quick]
    unknown = [n for n in requested if n not in bb.BACKENDS]
    if unknown:
        raise ValueError(f"unknown backends {unknown}; known: {list(bb.BACKENDS)}")
    run, skipped = [], {}
    device_kind = "cuda" if settings.device.startswith("cuda") else "cpu"
    for name, backend in bb.BACKENDS.items():
        if name not in requested:
            skipped[name] = "not selected" + (" (--quick)" if settings.quick and not backend.in_quick else "")
        elif device_kind not in backend.devices:
            skipped[name] = f"runs on {'/'.join(backend.devices)} only; this run is on {settings.device}"
        elif backend.package and importlib.util.find_spec(backend.package) is None:
            skipped[name] = f"package {backend.package} is not installed"
        else:
            run.append(name)
    if bb.REFERENCE not in run:
        raise ValueError(f"the reference backend {bb.REFERENCE!r} must run: ratios are taken against it")
    return run, skipped


# ----------------------------------------------------------------------------------------------- running
def run_backend(name: str, plan_file: Path, work: Path, settings: Settings, timeout_s: float) -> dict[str, Any]:
    """One worker process; returns its measurements or {"error": ...}."""
    (work / "logs").mkdir(exist_ok=True)
    result_file, log_file = work / "workers" / f"{name}.json", work / "logs" / f"{name}.log"
    result_file.parent.mkdir(exist_ok=True)
    result_file.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads)}
    if settings.omp_wait_policy:  # read once, when torch's OpenMP runtime loads: set before the process starts
        env["OMP_WAIT_POLICY"] = settings.omp_wait_policy
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log_file, "w") as log:
        try:
            proc = subprocess.run([sys.executable, "-m", "sensevoice.bench", "--worker", name, "--plan",
                                   str(plan_file), "--result", str(result_file)], cwd=REPO_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
            failed = proc.returncode != 0 and f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            failed = f"timed out after {timeout_s:.0f} s"
    wall = round(time.perf_counter() - start, 1)
    if failed or not result_file.is_file():
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        return {"error": f"{failed or 'no result'}: {' | '.join(tail)} (log: {log_file})", "worker_s": wall}
    result = json.loads(result_file.read_text())
    result.update(worker_s=wall, loadavg=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return result


def run_all(names: list[str], plan_file: Path, work: Path, settings: Settings) -> dict[str, Any]:
    """Every backend, the reference first, then each compared with it (tokens, speed-ups)."""
    timeout_s = 900 if settings.quick else 3600
    backends: dict[str, Any] = {}
    for n in [bb.REFERENCE] + [n for n in names if n != bb.REFERENCE]:
        print(f"[{n}] ...", end=" ", flush=True)
        r = backends[n] = run_backend(n, plan_file, work, settings, timeout_s)
        print(r["error"] if "error" in r else f"{r['latency'][HEADLINE_S]['rtf']:.4f} RTF ({HEADLINE_S} s clip), "
              f"mixed {r['mixed']['x_rt']:.1f}x RT, peak {r['peak_rss_mb']:.0f} MB ({r['worker_s']:.0f} s)", flush=True)
    reference = backends[bb.REFERENCE]
    if "error" in reference:
        raise RuntimeError(f"the reference failed: {reference['error']}")
    for r in backends.values():
        if "error" not in r:
            r.update(agreement=agreement(r, reference), vs_reference=ratios(r, reference))
    for r in backends.values():
        drop_hypotheses(r)  # compared; the workers' own files under --work keep them
    return backends


def worker_main(name: str, plan_file: str, result_file: str) -> int:
    plan = bb.load_plan(plan_file)
    result = bb.run_worker(name, plan)
    Path(result_file).write_text(json.dumps(result, ensure_ascii=False))
    return 0


# ----------------------------------------------------------------------------------------------- comparing
def agreement(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Token agreement with the reference over every batch-1 and mixed-batch utterance (sherpa-onnx reports the
    first four tokens as fields: compared without them), and character agreement on the long file's text."""
    from sensevoice.bench.agreement import edit_distance, token_agreement

    def hyps(r):
        return [v["hyp"] for v in r["latency"].values()] + r["mixed"]["hyps"]

    pairs = list(zip(hyps(result), hyps(reference)))
    hyp_tokens = [h["tokens"] for h, _ in pairs]
    ref_tokens = [ref["tokens"][tag_offset(h):] for h, ref in pairs]
    long_hyp, long_ref = bb.strip_text(result["long"]["text"]), bb.strip_text(reference["long"]["text"])
    long_agree = 1 - edit_distance(list(long_hyp), list(long_ref)) / max(1, len(long_ref))
    return {"tokens": round(token_agreement(hyp_tokens, ref_tokens), 4),
            "exact_utterances": round(sum(h == r for h, r in zip(hyp_tokens, ref_tokens)) / len(pairs), 3),
            "long_text": round(long_agree, 4)}


def drop_hypotheses(result: dict[str, Any]) -> None:
    for clip in result.get("latency", {}).values():
        clip.pop("hyp", None)
    result.get("mixed", {}).pop("hyps", None)
    result.get("long", {}).pop("text", None)


def tag_offset(hyp: dict[str, Any]) -> int:
    return 4 if hyp.get("skips_tags") else 0


def ratios(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Speed-up over the reference (> 1: faster) for every clip length, the mixed batch and the long file."""
    out = {f"e2e_{k}s": round(reference["latency"][k]["e2e_ms"]["p50"] / v["e2e_ms"]["p50"], 2)
           for k, v in result["latency"].items()}
    out.update(mixed=round(result["mixed"]["x_rt"] / reference["mixed"]["x_rt"], 2),
               long=round(result["long"]["x_rt"] / reference["long"]["x_rt"], 2),
               peak_rss=round(result["peak_rss_mb"] / reference["peak_rss_mb"], 2))
    return out


def machine_info(settings: Settings) -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in cpuinfo)}  # last CPU's
    cpu, flags = field.get("model name", platform.processor()), set(field.get("flags", "").split())
    versions = {}
    for package in ("torch", "onnxruntime", "funasr", "sherpa-onnx", "funasr-onnx", "onnx", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": settings.threads, "device": settings.device,
            "gpu": gpu, "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
            "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                                         "avx512_fp16"}), "versions": versions}


def targets(backends: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #6's targets, each with the measured figure and met/missed."""
    ok = {n: r for n, r in backends.items() if "error" not in r and "skipped" not in r}
    ours = {n: r for n, r in ok.items() if bb.BACKENDS[n].runner in ("torch", "ort")}

    def rtf(n):
        return ok[n]["latency"][HEADLINE_S]["rtf"]

    def best(precision):
        names = [n for n, r in ours.items() if bb.BACKENDS[n].precision == precision]
        return min(names, key=rtf) if names else None

    rows = []
    fp32, int8 = best("fp32"), best("int8")
    if fp32:
        rows.append({"target": f"best fp32 path: RTF <= {TARGETS['fp32_rtf']} (10 s clip, batch 1, end to end)",
                     "measured": f"{fp32}: {rtf(fp32):.4f}", "met": rtf(fp32) <= TARGETS["fp32_rtf"]})
        speedup = ok[fp32]["vs_reference"][f"e2e_{HEADLINE_S}s"]
        rows.append({"target": f"best fp32 path >= {TARGETS['fp32_speedup']}x faster than FunASR's built-in",
                     "measured": f"{fp32}: {speedup:.2f}x", "met": speedup >= TARGETS["fp32_speedup"]})
    if int8:
        rows.append({"target": f"int8: RTF <= {TARGETS['int8_rtf']}", "measured": f"{int8}: {rtf(int8):.4f}",
                     "met": rtf(int8) <= TARGETS["int8_rtf"]})
    for mine, theirs in ((fp32, "sherpa-onnx"), (int8, "sherpa-onnx-int8")):
        if mine and theirs in ok:
            rows.append({"target": f"{mine} at least as fast as {theirs} (10 s clip, end to end)",
                         "measured": f"{rtf(mine):.4f} vs {rtf(theirs):.4f}", "met": rtf(mine) <= rtf(theirs)})
    for n, r in ours.items():
        precision = bb.BACKENDS[n].precision
        need = TARGETS["agreement"] if precision in FAST_PRECISIONS else 1.0
        rows.append({"target": f"{n} ({precision}) tokens vs reference >= {need:.0%}",
                     "measured": f"{r['agreement']['tokens']:.2%}", "met": r["agreement"]["tokens"] >= need})
    return rows


# ----------------------------------------------------------------------------------------------- reporting
def markdown(report: dict[str, Any]) -> str:
    m, s, backends = report["machine"], report["settings"], report["backends"]
    ok = {n: r for n, r in backends.items() if "error" not in r and "skipped" not in r}
    lengths = [str(x) for x in s["lengths_s"]]
    lines = [f"# SenseVoiceSmall inference benchmark: {report['name']}", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}), {m['memory_gb']} GB RAM, "
             f"GPU: {m['gpu'] or 'none'}; {m['threads']} thread(s) per backend, device {m['device']}, "
             f"OMP_WAIT_POLICY={s['omp_wait_policy'] or 'unset'}, our ONNX Runtime threads "
             f"{'spin while a run is in progress' if s.get('ort_spin') else 'do not spin'}.",
             f"- Load average {report['loadavg'][0]} at the start, {report['loadavg'][1]} at the end "
             "(a shared machine: absolute timings are noisy; ratios to the reference are from the same run).",
             f"- Weights: {report['weights']}; the same model.pt (and its export) for every backend.",
             f"- Audio: {report['audio']}. Latency: batch 1, {s['warmup']} warm-up + {s['reps']} runs "
             f"(p50/p90). Mixed: {len(s['mixed_s'])} clips, {sum(s['mixed_s'])} s, length-sorted batches of "
             f"<= {s['batch_size_s']:g} s. Long: FSMN-VAD + batches of <= {s['batch_size_s']:g} s "
             "(FunASR's built-in decodes segments one by one on CPU: its own rule).",
             f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items() if v)}; {report['date']}.",
             "", "## Speed-up over FunASR's built-in (same run; > 1 is faster)", "",
             f"| backend | precision | e2e {HEADLINE_S} s clip | mixed batch | long file (VAD) | tokens = ref | "
             "long text = ref |", "|---|---|---|---|---|---|---|"]
    for n, r in ok.items():
        v, a = r["vs_reference"], r["agreement"]
        lines.append(f"| {n} | {bb.BACKENDS[n].precision} | {v.get(f'e2e_{HEADLINE_S}s', float('nan')):.2f}x | "
                     f"{v['mixed']:.2f}x | {v['long']:.2f}x | {a['tokens']:.2%} | {a['long_text']:.2%} |")
    lines += ["", "## Latency, batch 1, end to end (file -> text), ms p50 / p90", "",
              "| backend | " + " | ".join(f"{x} s" for x in lengths) + f" | RTF ({HEADLINE_S} s) |",
              "|---|" + "---|" * (len(lengths) + 1)]
    for n, r in ok.items():
        cells = [f"{r['latency'][x]['e2e_ms']['p50']:.0f} / {r['latency'][x]['e2e_ms']['p90']:.0f}" for x in lengths]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {r['latency'][HEADLINE_S]['rtf']:.4f} |")
    lines += ["", f"## Where the time goes ({HEADLINE_S} s clip, batch 1, ms p50)", "",
              "| backend | decode file | fbank+LFR+CMVN | model+greedy+text | sum | end to end p50 / p90 |",
              "|---|---|---|---|---|---|"]
    for n, r in ok.items():
        x = r["latency"][HEADLINE_S]
        parts = [x[f"{k}_ms"]["p50"] for k in ("load", "fbank", "model")]
        lines.append(f"| {n} | {parts[0]:.1f} | {parts[1]:.1f} | {parts[2]:.1f} | {sum(parts):.1f} | "
                     f"{x['e2e_ms']['p50']:.1f} / {x['e2e_ms']['p90']:.1f} |")
    lines += ["", "## Throughput and memory", "",
              "| backend | load s | first batch s | mixed batch x RT | long file x RT (segments) | peak RSS MB | "
              "load avg before-after |", "|---|---|---|---|---|---|---|"]
    for n, r in ok.items():
        first = f"{r['first_batch_s']:.1f}" if "first_batch_s" in r else "-"
        lines.append(f"| {n} | {r['load_s']:.1f} | {first} | {r['mixed']['x_rt']:.1f} | {r['long']['x_rt']:.1f} "
                     f"({r['long']['segments']}) | {r['peak_rss_mb']:.0f} | {r['loadavg'][0]}-{r['loadavg'][1]} |")
    lines += ["", "## Targets (issue #6)", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'met' if t['met'] else '**missed**'} |" for t in report["targets"]]
    if report["weights"].startswith("random"):
        lines += ["", "Random weights put near-ties between the top logits on most frames, so any rounding (bf16, "
                  "int8, another fbank implementation) flips some of them: agreement on them says little about a "
                  "trained model, on which tests/test_backends.py and tests/test_export.py require >= 99 %."]
    lines += ["", "## Backends", ""] + [f"- {n}: {bb.BACKENDS[n].description}" for n in backends]
    others = {n: r.get("skipped") or r.get("error") for n, r in backends.items() if n not in ok}
    if others:
        lines += ["", "## Not measured", ""] + [f"- {n}: {why}" for n, why in others.items()]
    return "\n".join(lines) + "\n"


def draw_figure(report: dict[str, Any], path: Path) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {n: r for n, r in report["backends"].items() if "error" not in r and "skipped" not in r}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
    palette = plt.get_cmap("tab20").colors
    for i, (n, r) in enumerate(ok.items()):
        xs = sorted(r["latency"], key=float)
        style = {"color": "black", "linewidth": 2.5} if n == bb.REFERENCE else {"color": palette[(2 * i) % 20]}
        left.plot([float(x) for x in xs], [r["latency"][x]["e2e_ms"]["p50"] for x in xs], marker="o", label=n,
                  linestyle="--" if bb.BACKENDS[n].runner in ("sherpa", "funasr-onnx") else "-", **style)
    left.set(xscale="log", yscale="log", xlabel="audio length (s)", ylabel="end-to-end latency, p50 (ms)",
             title="Batch 1, file -> text")
    left.set_xticks([float(x) for x in report["settings"]["lengths_s"]],
                    labels=[str(x) for x in report["settings"]["lengths_s"]])
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    names = list(ok)
    y = np.arange(len(names))
    right.barh(y - 0.2, [ok[n]["mixed"]["x_rt"] for n in names], height=0.4, label="mixed clips, sorted batches")
    right.barh(y + 0.2, [ok[n]["long"]["x_rt"] for n in names], height=0.4, label="long file, VAD + batches")
    right.set_yticks(y, labels=names, fontsize=8)
    right.invert_yaxis()
    right.set(xlabel="throughput (x real time)", title="Throughput")
    right.grid(True, axis="x", alpha=0.3)
    right.legend(fontsize=8)
    m = report["machine"]
    fig.suptitle(f"SenseVoiceSmall on {m['cpu']} ({m['threads']} thread(s) per backend, GPU: {m['gpu'] or 'none'}); "
                 f"load avg {report['loadavg'][0]}-{report['loadavg'][1]} (shared, noisy)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, default="random official-size weights from ../shared/official")
    parser.add_argument("--onnx", type=Path, default=None, metavar="DIR",
                        help="an existing `sensevoice export --int8` of --model (default: exported into --work)")
    parser.add_argument("--backends", default=None,
                        help=f"comma-separated subset of: {', '.join(bb.BACKENDS)} (default: all that can run here)")
    parser.add_argument("--threads", type=positive_int, default=None, help="threads per backend (default: CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{len(QUICK_LENGTHS_S)} clip lengths, 3 runs, {len(QUICK_MIXED_S)} mixed clips, a "
                             f"{QUICK_LONG_S:g} s long file, no torch.compile: a few minutes on 2 cores")
    parser.add_argument("--reps", type=positive_int, default=None, help="timed runs per clip (default 5; --quick 3)")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="warm-up runs per clip (default %(default)s)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", ""),
                        help="OMP_WAIT_POLICY of every backend's process (default %(default)s: idle OpenMP threads "
                             "sleep instead of spinning, which on a busy machine is many times faster with > 1 "
                             "thread; '' keeps the environment's)")
    parser.add_argument("--ort-spin", action="store_true",
                        help="let our ONNX Runtime sessions' waiting threads spin while a run is in progress, as "
                             "funasr-onnx and sherpa-onnx do (they also spin between runs; ours stop when a run "
                             "returns): faster on an idle machine, many times slower on a busy one (default: no "
                             "spinning)")
    parser.add_argument("--batch-size-s", type=positive_float, default=BATCH_SIZE_S,
                        help="seconds of audio per batch, mixed clips and long file (default %(default)s)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="scratch directory: weights, export (~1.2 GB), audio, worker logs (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default %(default)s)")
    parser.add_argument("--name", default=None, help="results file name (default: DEVICE-Nt[-quick])")
    parser.add_argument("--fig", type=Path, default=FIGURE, help="figure path (default %(default)s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.worker:  # a backend's own process: it imports what that backend needs, nothing more (peak RSS)
        return worker_main(args.worker, args.plan, args.result)
    heavy.import_funasr()
    settings = Settings.from_args(args)
    names, skipped = select_backends(args.backends.split(",") if args.backends else None, settings)
    work = Path(args.work)
    from sensevoice.modeldir import ModelDirError

    try:  # before --work is created: a mistyped --model leaves nothing behind
        model_dir, weights = resolve_model(args.model, work, args.hub, args.revision)
    except ModelDirError as err:
        raise UsageError(str(err))
    work.mkdir(parents=True, exist_ok=True)
    clips, mixed, long, origin = prepare_audio(work / "audio", settings)
    needs_onnx = any(bb.BACKENDS[n].runner in ("ort", "sherpa", "funasr-onnx") for n in names)
    onnx_dir = args.onnx or (ensure_export(model_dir, work / "onnx") if needs_onnx else work / "onnx")
    from sensevoice.vad import fsmn_vad_dir

    plan = bb.Plan(model_dir=str(model_dir.resolve()), onnx_dir=str(Path(onnx_dir).resolve()),
                   vad_dir=str(fsmn_vad_dir()), threads=settings.threads, device=settings.device, clips=clips,
                   mixed_batches=mixed_batches(mixed, settings.batch_size_s), long=long, warmup=settings.warmup,
                   reps=settings.reps, mixed_passes=settings.mixed_passes, batch_size_s=settings.batch_size_s,
                   warm_batch=not settings.quick, ort_spin=settings.ort_spin)
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(asdict(plan), indent=1))
    name = args.name or f"{settings.device.replace(':', '')}-{settings.threads}t{'-quick' if settings.quick else ''}"
    report: dict[str, Any] = {"name": name, "date": time.strftime("%Y-%m-%d %H:%M"), "weights": weights,
                              "audio": origin, "settings": asdict(settings), "machine": machine_info(settings)}
    load_start = os.getloadavg()[0]
    backends = run_all(names, plan_file, work, settings)
    backends.update({n: {"skipped": why} for n, why in skipped.items()})
    report.update(loadavg=[round(load_start, 2), round(os.getloadavg()[0], 2)], backends=backends,
                  targets=targets(backends))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    table = markdown(report)
    (out / f"{name}.md").write_text(table)
    draw_figure(report, Path(args.fig))
    print(table)
    print(f"wrote {out / (name + '.json')}, {out / (name + '.md')}, {args.fig}")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
