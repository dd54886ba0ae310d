"""Long-audio benchmark: build an N-minute file from clips, transcribe it with VAD + dynamic batching, and record
wall time, real-time factor and peak RSS in bench/results/.

    python -m sensevoice.bench.long --random official --minutes 10     # random official-size weights
    python -m sensevoice.bench.long --model demo --minutes 60

The file is written to data/bench_long/ (git-ignored) one clip at a time, so building it costs no memory; the
transcription holds the waveform (1 h of 16 kHz float32 = 230 MB) and one batch of segments at a time.
"""

from __future__ import annotations

from typing import Sequence

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

from sensevoice import REPO_ROOT
from sensevoice.door import module_main
DATA_DIR = REPO_ROOT / "data" / "bench_long"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
FS = 16000
EXAMPLE_CLIPS = ("enNews.wav", "vad_example.wav", "en.mp3", "zh.mp3", "ja.mp3", "ko.mp3", "yue.mp3")
PAUSE_S = (0.4, 3.0)  # silence between clips, drawn uniformly
TINY_ENCODER = {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2, "tp_blocks": 1}


def rss_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, MiB (Linux /proc)."""
    status = Path("/proc/self/status").read_text()
    return {k: int(v) / 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M)}


def reset_peak_rss() -> None:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so that the next peak belongs to what follows."""
    Path("/proc/self/clear_refs").write_text("5")


def synthetic_clip(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like audio (voiced harmonics with syllable-rate pauses), for machines without the example clips."""
    t = np.arange(int(seconds * FS)) / FS
    f0 = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / FS
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)) > -0.2
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def clip_source(source: str, rng: np.random.Generator):
    """An endless stream of 16 kHz clips: the official examples in turn, or synthetic ones."""
    if source == "official":
        from sensevoice.audio import load_audio
        from sensevoice.modeldir import official_dir

        folder = official_dir()
        if folder is None:
            raise SystemExit("the official example clips are absent; use --source synthetic")
        clips = [load_audio(str(folder / "example" / name), name).numpy() for name in EXAMPLE_CLIPS]
        while True:
            yield from clips
    while True:
        yield synthetic_clip(rng.uniform(2, 25), rng)


def build_long_file(path: Path, minutes: float, source: str, seed: int = 0) -> Path:
    """Write ``minutes`` of clips separated by pauses to ``path`` (16-bit PCM), clip by clip."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    target, written = int(minutes * 60 * FS), 0
    tmp = path.with_suffix(".tmp.wav")
    with soundfile.SoundFile(tmp, "w", samplerate=FS, channels=1, subtype="PCM_16") as out:
        for clip in clip_source(source, rng):
            pause = np.zeros(int(rng.uniform(*PAUSE_S) * FS), np.float32)
            for part in (pause, clip):
                part = part[:target - written]
                out.write(part)
                written += len(part)
            if written >= target:
                break
    tmp.rename(path)
    return path


def random_model_dir(kind: str) -> Path:
    """A model directory with random weights: 'official' (official size, tokenizer, am.mvn) or 'tiny'."""
    from sensevoice import modeldir
    from sensevoice.modeldir import ModelDir

    dst = DATA_DIR / f"random_{kind}"
    if (dst / "model.pt").is_file():
        return dst
    if kind == "official":
        folder = modeldir.official_dir()
        if folder is None:
            raise SystemExit("--random official needs the official release files (../shared/official)")
        src = folder / "SenseVoiceSmall"
        return ModelDir.create(dst, src / "chn_jpn_yue_eng_ko_spectok.bpe.model", src / "am.mvn", seed=0).path
    from sensevoice.training.tokenizer import train_tokenizer

    words = "the a cat dog sat on mat hello world one two three four five six seven eight nine ten".split()
    rng = np.random.default_rng(0)
    bpe = train_tokenizer([" ".join(rng.choice(words, size=8)) for _ in range(400)], dst / "tiny.bpe.model", 200)
    cmvn = modeldir.write_cmvn(dst / "am.mvn", np.full(560, 10.0), np.full(560, 3.0))
    return ModelDir.create(dst, bpe, cmvn, TINY_ENCODER, seed=0).path


def run(model_dir: Path, audio: Path, batch_size_s: float, threads: int) -> dict:
    """Load, transcribe with a progress bar, and measure."""
    from contextlib import redirect_stdout

    from tqdm import tqdm

    import model as sv
    from sensevoice.pipeline import Transcriber

    reset_peak_rss()
    before = rss_mb()
    t0 = time.perf_counter()
    with redirect_stdout(sys.stderr):
        transcriber = Transcriber(model_dir, device="cpu", threads=threads, batch_size_s=batch_size_s)
    load_s = time.perf_counter() - t0
    loaded = rss_mb()
    reset_peak_rss()
    bar = tqdm(total=0, unit="s", file=sys.stderr, dynamic_ncols=True, desc=f"{audio.name}: ",
               bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")

    def progress(done_s: float, total_s: float) -> None:
        bar.total = total_s
        bar.update(done_s - bar.n)

    t0 = time.perf_counter()
    result = transcriber.transcribe(audio, audio.stem, sv.DecodingOptions(), progress)
    wall_s = time.perf_counter() - t0
    bar.close()
    audio_s = result.duration_ms / 1000
    dims = transcriber.backend.model.dims
    return {
        "model_dir": str(model_dir), "d_model": dims.d_model, "blocks": dims.n_blocks + dims.n_tp_blocks,
        "audio": str(audio), "audio_s": audio_s, "segments": len(result.segments),
        "speech_s": sum(s.duration_ms for s in result.segments) / 1000,
        "batch_size_s": batch_size_s, "threads": threads, "load_s": round(load_s, 2), "wall_s": round(wall_s, 2),
        "rtf": round(wall_s / audio_s, 4), "waveform_mb": round(audio_s * FS * 4 / 2**20, 1),
        "rss_before_load_mb": round(before["VmRSS"], 1), "peak_rss_load_mb": round(loaded["VmHWM"], 1),
        "rss_after_load_mb": round(loaded["VmRSS"], 1), "peak_rss_run_mb": round(rss_mb()["VmHWM"], 1),
        "rss_after_run_mb": round(rss_mb()["VmRSS"], 1),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_summary(results_dir: Path) -> Path:
    """bench/results/long_audio.md: one row per long_*.json."""
    rows = []
    for path in sorted(results_dir.glob("long_*.json")):
        r = json.loads(path.read_text())
        rows.append(f"| {Path(r['model_dir']).name} (d {r['d_model']}, {r['blocks']} blocks) | {r['audio_s'] / 60:.1f} "
                    f"| {r['segments']} | {r['batch_size_s']:g} | {r['threads']} | {r['wall_s']:.1f} | {r['rtf']:.4f} "
                    f"| {r['waveform_mb']:.0f} | {r['peak_rss_load_mb']:.0f} | {r['rss_after_load_mb']:.0f} "
                    f"| {r['peak_rss_run_mb']:.0f} | {r['load_avg_1min']:.1f} | {r['date']} |")
    summary = results_dir / "long_audio.md"
    summary.write_text(
        "# Long-audio transcription (`python -m sensevoice.bench.long`)\n\n"
        "CPU only, VAD (bundled FSMN-VAD, 30 s max segment) + dynamic batching. RTF = wall / audio duration "
        "(transcription only, model loading excluded). Memory in MiB: the waveform (float32), peak RSS while "
        "loading the model, RSS once loaded, peak RSS while transcribing (VmHWM, reset after loading). `load` is "
        "the machine's 1-minute load average at the end: above the thread count, other jobs shared the CPU and "
        "the times are upper bounds.\n\n"
        "| model | audio min | segments | batch s | threads | wall s | RTF | waveform | peak load | RSS loaded "
        "| peak run | load | date |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", type=Path, help="model directory")
    model.add_argument("--random", choices=("tiny", "official"), help="random weights of this size (data/bench_long/)")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the file (default: 60)")
    parser.add_argument("--source", choices=("official", "synthetic"), default="official",
                        help="clips: the official examples (default) or synthetic speech-like audio")
    parser.add_argument("--batch-size-s", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default: bench/results)")


def run_and_write(args: argparse.Namespace) -> int:
    model_dir = args.model or random_model_dir(args.random)
    audio = build_long_file(DATA_DIR / f"{args.source}_{args.minutes:g}min.wav", args.minutes, args.source)
    record = run(model_dir.resolve(), audio, args.batch_size_s, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"long_{model_dir.resolve().name}_{args.minutes:g}min_{args.threads}t.json"
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    print(f"wrote {args.out / name} and {write_summary(args.out)}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.long", __doc__, add_arguments, run_and_write, argv)


if __name__ == "__main__":
    sys.exit(main())
