"""Live-stream benchmark: ``sensevoice serve`` in a subprocess, N WebSocket streams (FunASR's protocol, 2pass) of a
recording sent at real time in fixed chunks, all starting together (``--spread-s 0``, the worst case: every stream
reaches every endpoint at the same moment) or spread evenly over ``--spread-s`` seconds; then one long stream of
``--memory-minutes`` minutes sent at ``--memory-speed`` x real time while the server's RSS is sampled.

    python -m sensevoice.bench.stream --model demo --streams 1 16 --spread-s 0 4 --memory-minutes 30
    python -m sensevoice.bench.stream --model random-official --streams 1 --memory-minutes 0

Per stream and segment, from the client's clock (the audio at stream time t was due at start + t):
- first partial: its arrival - the time the segment's start (VAD, stream time) was sent;
- final after endpoint: the final's arrival - the time the audio at which the VAD closed the segment was sent
  (``endpoint_ms``); "after end" adds the VAD's trailing silence (the segment's ``end_ms``);
- lag: any result's arrival - the time the audio it covers was sent (how far behind real time the stream is).
``random-official`` serves random official-size weights (``bench.speed.resolve_model``). Writes ``<name>.json`` and
``<name>.md`` to ``--out``. No assertions: a measuring tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile
from websockets.asyncio.client import connect

from sensevoice import REPO_ROOT
from sensevoice.argtypes import UsageError
from sensevoice.door import module_main
from sensevoice.bench.loadtest import machine, start_server
from sensevoice.bench.speed import DEFAULT_WORK, resolve_model

RATE = 16000


async def one_stream(url: str, pcm: bytes, chunk_ms: int, speed: float | None, name: str, delay_s: float = 0.0
                     ) -> dict[str, Any]:
    """After ``delay_s``, send ``pcm`` in chunks at ``speed`` x real time (None: as fast as the server reads);
    every answer with its arrival time, relative to the stream's start."""
    await asyncio.sleep(delay_s)
    step = RATE * 2 * chunk_ms // 1000
    answers: list[tuple[float, dict]] = []
    async with connect(url, subprotocols=["binary"], max_size=None) as ws:
        await ws.send(json.dumps({"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": name,
                                  "wav_format": "pcm", "audio_fs": RATE, "is_speaking": True, "itn": True}))
        started = time.monotonic()

        async def receive() -> None:
            async for message in ws:
                answers.append((time.monotonic() - started, json.loads(message)))
                if answers[-1][1].get("is_end"):
                    return

        receiver = asyncio.create_task(receive())
        for n, begin in enumerate(range(0, len(pcm), step)):
            if speed:
                await asyncio.sleep(max(0.0, started + n * chunk_ms / 1000 / speed - time.monotonic()))
            await ws.send(pcm[begin:begin + step])
        sent_s = time.monotonic() - started
        await ws.send(json.dumps({"is_speaking": False}))
        await asyncio.wait_for(receiver, 600)
    return {"answers": answers, "sent_s": sent_s}


def stream_stats(run: dict[str, Any]) -> dict[str, list[float]]:
    answers = run["answers"]
    finals = [(t, a) for t, a in answers if a.get("segment_final")]
    partials = [(t, a) for t, a in answers if a.get("mode") == "2pass-online"]
    first_partial = []
    for _, final in finals:
        mine = [t - final["start_ms"] / 1000 for t, a in partials if a["start_ms"] == final["start_ms"]]
        if mine:
            first_partial.append(min(mine))
    return {"first_partial_s": first_partial,
            "final_after_endpoint_s": [t - a["endpoint_ms"] / 1000 for t, a in finals if not a.get("is_end")],
            "final_after_end_s": [t - a["end_ms"] / 1000 for t, a in finals if not a.get("is_end")],
            "lag_s": [t - a["end_ms"] / 1000 for t, a in partials] + [t - a["endpoint_ms"] / 1000 for t, a in finals
                                                                        if not a.get("is_end")],
            "warnings": [1.0 for _, a in answers if "warning" in a], "errors": [1.0 for _, a in answers if "error" in a]}


def summary(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    x = np.asarray(values)
    return {"n": int(x.size), "p50": round(float(np.percentile(x, 50)), 3),
            "p95": round(float(np.percentile(x, 95)), 3), "p99": round(float(np.percentile(x, 99)), 3),
            "max": round(float(x.max()), 3)}


async def phase(url: str, pcm: bytes, streams: int, chunk_ms: int, spread_s: float) -> dict[str, Any]:
    started = time.monotonic()
    runs = await asyncio.gather(*(one_stream(url, pcm, chunk_ms, 1.0, f"s{i}", i * spread_s / streams)
                                  for i in range(streams)))
    wall_s = time.monotonic() - started
    merged: dict[str, list[float]] = {}
    for run in runs:
        for key, values in stream_stats(run).items():
            merged.setdefault(key, []).extend(values)
    result = {key: summary(values) for key, values in merged.items() if key not in ("warnings", "errors")}
    finals = len(merged["final_after_end_s"])
    result.update(streams=streams, chunk_ms=chunk_ms, spread_s=spread_s, wall_s=round(wall_s, 2), finals=finals,
                  finals_per_s=round(finals / wall_s, 2), warnings=len(merged["warnings"]),
                  errors=len(merged["errors"]),
                  max_lag_per_stream_s=[round(max(stream_stats(r)["lag_s"], default=0.0), 3) for r in runs])
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def memory_phase(url: str, pcm: bytes, minutes: float, speed: float, pid: int, chunk_ms: int
                       ) -> dict[str, Any]:
    """One stream of ``minutes`` of audio (the recording repeated) at ``speed`` x real time; the server's RSS every
    second and its growth per hour of audio (a least-squares line over all but the first tenth, the warm-up)."""
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    async def sample() -> None:
        while True:
            samples.append((round(time.monotonic() - started, 1), round(rss_mb(pid), 1)))
            await asyncio.sleep(1.0)

    repeats = -(-int(minutes * 60 * RATE * 2) // len(pcm))
    audio = (pcm * repeats)[:int(minutes * 60 * RATE) * 2]
    sampler = asyncio.create_task(sample())
    run = await one_stream(url, audio, chunk_ms, speed, "long")
    sampler.cancel()
    wall = np.array([t for t, _ in samples])
    rss = np.array([m for _, m in samples])
    steady = wall >= wall[-1] / 10
    audio_h = wall[steady] * speed / 3600  # audio hours sent by each sample
    slope = float(np.polyfit(audio_h, rss[steady], 1)[0]) if steady.sum() >= 3 else float("nan")
    third = max(1, len(rss) // 3)
    return {"audio_s": round(len(audio) / 2 / RATE, 1), "speed": speed, "wall_s": round(time.monotonic() - started, 1),
            "segments": sum(1 for _, a in run["answers"] if a.get("segment_final")),
            "rss_mb_start": float(rss[0]), "rss_mb_first_third_max": float(rss[:third].max()),
            "rss_mb_last_third_max": float(rss[-third:].max()), "rss_mb_max": float(rss.max()),
            "rss_mb_end": float(rss[-1]), "rss_mb_per_audio_hour": round(slope, 1), "rss_mb_samples": samples}


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# Live streams: {report['name']}", "", f"- command: `{report['command']}`",
             f"- machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores",
             f"- model: {report['model']}, audio: {report['audio']} ({report['audio_s']} s), 2pass, real time; "
             f"endpoint: {report['endpoint']}",
             f"- load average at start: {m['load_average_1m_at_start']:.2f}", "",
             "| streams | starts spread over s | chunk ms | first partial after onset p50/p95 s "
             "| final after endpoint p50/p95 s | final after segment end p50 s | lag p95/max s | warnings | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in report["phases"]:
        lines.append(f"| {p['streams']} | {p['spread_s']:g} | {p['chunk_ms']} | {p['first_partial_s'].get('p50')} / "
                     f"{p['first_partial_s'].get('p95')} | {p['final_after_endpoint_s'].get('p50')} / "
                     f"{p['final_after_endpoint_s'].get('p95')} | {p['final_after_end_s'].get('p50')} | "
                     f"{p['lag_s'].get('p95')} / {p['lag_s'].get('max')} | {p['warnings']} | {p['errors']} |")
    if report.get("memory"):
        mem = report["memory"]
        lines += ["", f"Memory: one stream of {mem['audio_s'] / 60:.1f} min (the recording repeated) sent at "
                      f"{mem['speed']:g}x real time in {mem['wall_s']} s, {mem['segments']} segments: server RSS "
                      f"{mem['rss_mb_start']} MB at the start, {mem['rss_mb_end']} MB at the end (max "
                      f"{mem['rss_mb_max']}; first third max {mem['rss_mb_first_third_max']}, last third max "
                      f"{mem['rss_mb_last_third_max']}); trend after the first tenth "
                      f"{mem['rss_mb_per_audio_hour']} MB per hour of audio."]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="demo", help="a model directory, demo, or random-official (random "
                        "official-size weights)")
    parser.add_argument("--audio", type=Path, default=REPO_ROOT.parent / "shared/official/example/enNews.wav")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--spread-s", type=float, nargs="+", default=[0.0],
                        help="starts of the streams spread evenly over this many seconds (0: all at once); each "
                        "value is a phase of its own for every --streams value above 1")
    parser.add_argument("--chunk-ms", type=int, default=80)
    parser.add_argument("--endpoint-silence-ms", type=int, default=None,
                        help="the server's --endpoint-silence-ms (default: its own, FunASR's dynamic schedule)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--server-args", default="", help="more options for sensevoice serve, e.g. '--backend "
                        "onnxruntime --precision int8'")
    parser.add_argument("--memory-minutes", type=float, default=30.0, help="0: skip the memory phase")
    parser.add_argument("--memory-speed", type=float, default=8.0, help="the memory stream's pace, x real time")
    parser.add_argument("--name", default="stream_demo")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")


def run(args: argparse.Namespace) -> int:
    wave, fs = soundfile.read(args.audio, dtype="int16")
    if fs != RATE or wave.ndim != 1:
        raise UsageError(f"--audio {args.audio}: need 16 kHz mono")
    pcm = wave.astype("<i2").tobytes()
    model = str(resolve_model(None, DEFAULT_WORK)[0]) if args.model == "random-official" else args.model
    plan = [(n, spread) for n in args.streams for spread in (args.spread_s if n > 1 else [0.0])]
    machine_at_start = machine()
    server_args = ["--max-streams", str(max(args.streams) + 1)]
    if args.endpoint_silence_ms:
        server_args += ["--endpoint-silence-ms", str(args.endpoint_silence_ms)]
    server_args += shlex.split(args.server_args)
    server, port = start_server(model, args.threads, server_args)
    url = f"ws://127.0.0.1:{port}/"
    try:
        phases = [asyncio.run(phase(url, pcm, n, args.chunk_ms, spread)) for n, spread in plan]
        memory = asyncio.run(memory_phase(url, pcm, args.memory_minutes, args.memory_speed, server.pid,
                                          args.chunk_ms)) if args.memory_minutes > 0 else None
    finally:
        server.terminate()
        server.wait(30)
    command = "python -m sensevoice.bench.stream " + shlex.join(args.argv)
    endpoint = f"{args.endpoint_silence_ms} ms of silence" if args.endpoint_silence_ms \
        else "FunASR's dynamic silence schedule"
    endpoint += f"; server options: {args.server_args}" if args.server_args else ""
    report = {"name": args.name, "command": command, "machine": machine_at_start, "endpoint": endpoint,
              "model": args.model, "audio": args.audio.name, "audio_s": round(len(wave) / fs, 1), "phases": phases,
              "memory": memory}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.stream", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
