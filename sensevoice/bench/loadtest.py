"""Load test of the HTTP service: N concurrent clients on loopback for a bounded time, against one client at a time.

    python -m sensevoice.bench.loadtest --model DIR [--clients 64] [--duration-s 20] [--sequential-s 10]

Starts ``python -m sensevoice.serve`` on a free loopback port (or uses ``--url``), uploads the clips round-robin
(default: examples/*.flac) to ``POST /v1/audio/transcriptions``, first from one client (sequential), then from
``--clients`` concurrent ones. Reports throughput (seconds of audio transcribed per wall-clock second), p50/p99
latency, errors, the server's mean batch size, and the batching gain (concurrent / sequential throughput);
writes ``<name>.json`` and ``<name>.md`` to ``--out`` (bench/results) with the machine described. A benchmark,
not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import httpx
import numpy as np
import soundfile
import yaml

from sensevoice import REPO_ROOT
from sensevoice.door import module_main
from sensevoice.serve.command import default_threads

ROUTE = "/v1/audio/transcriptions"
REQUEST_TIMEOUT_S = 120.0
STARTUP_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    seconds: float


@dataclass(frozen=True)
class PhaseResult:
    """One phase: ``clients`` clients posting back to back until the deadline, then draining."""

    name: str
    clients: int
    requests: int
    errors: int
    error_kinds: dict[str, int]
    wall_s: float
    audio_s: float  # of successful requests
    throughput: float  # audio seconds per wall second
    requests_per_s: float
    latency_p50_s: float
    latency_p99_s: float
    mean_batch_requests: float | None  # from the server's /metrics, over this phase
    model_busy: float  # fraction of the wall time the model worker was decoding (server /metrics)


def load_clips(paths: Sequence[Path]) -> list[Clip]:
    if not paths:
        raise SystemExit("no audio clips: pass --audio FILE ... (default examples/*.flac)")
    return [Clip(p.name, p.read_bytes(), soundfile.info(str(p)).duration) for p in paths]


def machine() -> dict[str, Any]:
    """What ran the test (the load generator and the server share it)."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import torch

    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "load_average_1m_at_start": os.getloadavg()[0], "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__}


def batch_stats(metrics_text: str) -> tuple[float, float, float]:
    """Requests batched, batches, and seconds the model worked, from the server's /metrics."""
    values = dict(re.findall(r"^(sensevoice_batch_\w+_(?:sum|count)) (\S+)$", metrics_text, re.M))
    return tuple(float(values.get(name, 0)) for name in (
        "sensevoice_batch_requests_sum", "sensevoice_batch_requests_count", "sensevoice_batch_compute_seconds_sum"))


def encode_request(base: str, headers: dict[str, str], clip: Clip) -> bytes:
    """The whole HTTP/1.1 request uploading ``clip``, built once: the load generator must cost the server's
    CPU cores as little as possible (an httpx.AsyncClient spends ~5 ms of CPU per request at 64 connections)."""
    boundary = "loadtest-boundary-7f3a"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nsensevoice-small\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{clip.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + clip.data + f"\r\n--{boundary}--\r\n".encode()
    url = urllib.parse.urlsplit(base)
    lines = [f"POST {url.path}{ROUTE} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {len(body)}",
             f"Content-Type: multipart/form-data; boundary={boundary}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests; reconnects after an error or a close."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                length = int(value) if name.lower() == "content-length" else length
                close = close or (name.lower() == "connection" and value.strip().lower() == "close")
            await reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def client_loop(base: str, requests: Sequence[tuple[bytes, float]], first: int, deadline: float,
                      records: list[tuple[float, Any, float]]) -> None:
    url = urllib.parse.urlsplit(base)
    connection = Connection(url.hostname or "127.0.0.1", url.port or 80)
    i = first
    while time.monotonic() < deadline:
        request, seconds = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        try:
            status: Any = await asyncio.wait_for(connection.send(request), REQUEST_TIMEOUT_S)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as err:
            status = type(err).__name__
        records.append((time.perf_counter() - started, status, seconds))
    connection.close()


async def run_phase(name: str, base: str, headers: dict[str, str], clips: Sequence[Clip], clients: int,
                    seconds: float) -> PhaseResult:
    requests = [(encode_request(base, headers, clip), clip.seconds) for clip in clips]
    async with httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        batch_before = batch_stats((await client.get(f"{base}/metrics")).text)
        records: list[tuple[float, Any, float]] = []
        started = time.monotonic()
        await asyncio.gather(*(client_loop(base, requests, k, started + seconds, records) for k in range(clients)))
        wall_s = time.monotonic() - started
        batch_after = batch_stats((await client.get(f"{base}/metrics")).text)
    ok = [r for r in records if r[1] == 200]
    kinds: dict[str, int] = {}
    for _, status, _ in records:
        if status != 200:
            kinds[str(status)] = kinds.get(str(status), 0) + 1
    latencies = np.array([r[0] for r in ok]) if ok else np.array([np.nan])
    audio_s = sum(r[2] for r in ok)
    batches = batch_after[1] - batch_before[1]
    return PhaseResult(name=name, clients=clients, requests=len(records), errors=len(records) - len(ok),
                       error_kinds=kinds, wall_s=round(wall_s, 3), audio_s=round(audio_s, 2),
                       throughput=round(audio_s / wall_s, 2), requests_per_s=round(len(ok) / wall_s, 2),
                       latency_p50_s=round(float(np.percentile(latencies, 50)), 4),
                       latency_p99_s=round(float(np.percentile(latencies, 99)), 4),
                       mean_batch_requests=round((batch_after[0] - batch_before[0]) / batches, 2) if batches else None,
                       model_busy=round((batch_after[2] - batch_before[2]) / wall_s, 3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, threads: int | None, extra: Sequence[str]) -> tuple[subprocess.Popen, int]:
    """``sensevoice serve`` in a subprocess on a free port (no API key), once it answers /health: (process, port)."""
    port = free_port()
    command = [sys.executable, "-m", "sensevoice.serve", "--model", str(model), "--port", str(port), "--log-level",
               "warning", *(["--threads", str(threads)] if threads else []), *extra]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, "SENSEVOICE_API_KEY": ""})
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}: {' '.join(command)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server, port
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"the server did not answer /health within {STARTUP_TIMEOUT_S:g} s")


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# Load test: {report['name']}", "",
             f"- model: `{report['model']}` (encoder {report.get('encoder_conf', 'unknown')}); clips: "
             f"{', '.join(report['clips'])} (mean {report['mean_clip_s']} s)",
             f"- server: {report['server']}",
             f"- machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores, load "
             f"average {m['load_average_1m_at_start']:.2f} at start (shared with the load generator and other "
             f"work); {m['platform']}, Python {m['python']}, torch {m['torch']}",
             f"- command: `{report['command']}`", "",
             "| phase | clients | requests | errors | wall s | audio s | throughput (audio s/s) | req/s | p50 s | "
             "p99 s | mean batch | model busy |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["phases"]:
        lines.append(f"| {p['name']} | {p['clients']} | {p['requests']} | {p['errors']} | {p['wall_s']} | "
                     f"{p['audio_s']} | {p['throughput']} | {p['requests_per_s']} | {p['latency_p50_s']} | "
                     f"{p['latency_p99_s']} | {p['mean_batch_requests']} | {p['model_busy']:.0%} |")
    lines += ["", f"Batching gain (concurrent / sequential throughput): **{report['batching_gain']}x**", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", type=Path, help="model directory: start a server on it")
    target.add_argument("--url", help="an already running server, http:// only (its settings are its own)")
    parser.add_argument("--api-key", default=os.environ.get("SENSEVOICE_API_KEY"), help="for --url")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default %(default)s)")
    parser.add_argument("--duration-s", type=float, default=20.0, help="concurrent phase (default %(default)s)")
    parser.add_argument("--sequential-s", type=float, default=10.0, help="one-client phase (default %(default)s)")
    parser.add_argument("--audio", type=Path, nargs="+", default=sorted((REPO_ROOT / "examples").glob("*.flac")))
    parser.add_argument("--batch-size-s", type=float, default=60.0, help="server option (default %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="server option (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="server option: torch threads")
    parser.add_argument("--server-args", default="", help="more options for sensevoice serve, e.g. '--device cuda "
                        "--precision fp16'")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--name", default="loadtest", help="report file stem (default %(default)s)")


def measure(base: str, headers: dict[str, str], clips: Sequence[Clip], args: argparse.Namespace
            ) -> tuple[PhaseResult, PhaseResult]:
    asyncio.run(run_phase("warm-up", base, headers, clips, 2, 1.0))
    sequential = asyncio.run(run_phase("sequential", base, headers, clips, 1, args.sequential_s))
    concurrent = asyncio.run(run_phase("concurrent", base, headers, clips, args.clients, args.duration_s))
    return sequential, concurrent


def run(args: argparse.Namespace) -> int:
    clips = load_clips(args.audio)
    report: dict[str, Any] = {"name": args.name, "machine": machine(), "model": str(args.model or args.url),
                              "command": " ".join(["python -m sensevoice.bench.loadtest", *args.argv]),
                              "clips": [c.name for c in clips],
                              "mean_clip_s": round(float(np.mean([c.seconds for c in clips])), 2)}
    if args.model:
        config = yaml.safe_load((args.model / "config.yaml").read_text())
        report["encoder_conf"] = {k: v for k, v in config["encoder_conf"].items() if "dropout" not in k}
    if args.url:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        report["server"] = f"{args.url} (external)"
        sequential, concurrent = measure(args.url.rstrip("/"), headers, clips, args)
    else:
        server, port = start_server(args.model, args.threads,
                                    ["--max-queue", str(max(256, 2 * args.clients)), "--batch-size-s",
                                     str(args.batch_size_s), "--max-wait-ms", str(args.max_wait_ms),
                                     *shlex.split(args.server_args)])
        base = f"http://127.0.0.1:{port}"
        report["server"] = (f"python -m sensevoice.serve, batch_size_s={args.batch_size_s:g}, "
                            f"max_wait_ms={args.max_wait_ms:g}, threads={args.threads or default_threads()}"
                            + (f", {args.server_args}" if args.server_args else ""))
        try:
            sequential, concurrent = measure(base, {}, clips, args)
        finally:
            server.terminate()
            server.wait(30)
    report["phases"] = [asdict(sequential), asdict(concurrent)]
    report["batching_gain"] = round(concurrent.throughput / sequential.throughput, 2) if sequential.throughput else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if concurrent.errors == 0 and sequential.errors == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.bench.loadtest", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
