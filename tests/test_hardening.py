"""Probes of bad inputs, faults and hostile clients (issue 32), each an assertion: a model file is data and never
code, every model-folder fault is one error line (exit 2) in every door before its heavy work, and the service
bounds every connection in time and number and still serves real clients under hundreds of trickling ones."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile
import torch

from testkit import ROOT, speechlike
from helpers import write_fault
import model as sv
from sensevoice.checkpoint import load_checkpoint
from sensevoice import cli
from sensevoice.modeldir import MODEL_PY, ModelDir
from sensevoice.serve import guard
from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher
from sensevoice.pipeline import Transcriber

OPENAI = "/v1/audio/transcriptions"
FAULTS = ("empty", "random", "pickle_payload", "legacy_pickle_payload", "not_a_state_dict")


@pytest.fixture(scope="module", params=FAULTS)
def broken_dir(request, tiny_dir, tmp_path_factory) -> tuple[Path, Path, str]:
    """The tiny model directory with a faulty model.pt; the marker that a payload would create."""
    folder = tmp_path_factory.mktemp(f"broken_{request.param}") / "model"
    shutil.copytree(tiny_dir, folder)
    marker = folder.parent / "PAYLOAD_RAN"
    write_fault(folder / "model.pt", request.param, marker)
    return folder, marker, request.param


def test_the_payload_runs_under_a_trusting_loader(tmp_path):
    """The control: this payload does create its marker when unpickled without weights_only."""
    marker = tmp_path / "ran"
    write_fault(tmp_path / "model.pt", "pickle_payload", marker)
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert marker.exists()


def error_lines(stderr: str) -> list[str]:
    """The error lines a command wrote, after checking it wrote no traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("sensevoice") and "error:" in line]


def assert_one_line_naming(stderr: str, path: Path) -> None:
    lines = error_lines(stderr)
    assert len(lines) == 1 and str(path) in lines[0], stderr


# ----------------------------------------------------------------------------------------------- weights
def test_read_checkpoint_refuses_each_fault_in_one_line(broken_dir):
    folder, marker, fault = broken_dir
    with pytest.raises(sv.CheckpointError) as refused:
        sv.read_checkpoint(str(folder / "model.pt"))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(str(folder / "model.pt")), message
    assert not marker.exists()


@pytest.mark.parametrize("door", ["transcribe", "export", "batch", "serve"])
def test_every_door_refuses_a_bad_model_pt_with_exit_2(broken_dir, door, wav_file, tmp_path, capfd, monkeypatch):
    """One error line naming the file, exit 2, nothing run from the file, and no heavy work: no Ray, no server,
    no export written."""
    from sensevoice import raybatch
    from sensevoice.serve import app

    folder, marker, _ = broken_dir

    def must_not_run(*args, **kwargs):
        raise AssertionError(f"{door} went on to its heavy work with a broken model.pt")

    monkeypatch.setattr(raybatch, "start_ray", must_not_run)
    monkeypatch.setattr(app.StopOnSignal, "run", must_not_run)
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copyfile(wav_file, audio / "a.wav")
    argv = {"transcribe": ["transcribe", str(wav_file), "--model", str(folder)],
            "export": ["export", "--model", str(folder), "--out", str(tmp_path / "onnx")],
            "batch": ["batch", str(audio), "--model", str(folder), "--output", str(tmp_path / "out")],
            "serve": ["serve", "--model", str(folder), "--port", "0", "--no-streaming", "--log-level", "error"]}[door]
    capfd.readouterr()
    assert cli.main(argv) == 2
    assert_one_line_naming(capfd.readouterr().err, folder / "model.pt")
    assert not marker.exists()
    assert not (tmp_path / "onnx").exists()


def test_automodel_refuses_a_bad_model_pt_in_one_line(broken_dir):
    from funasr import AutoModel

    folder, marker, _ = broken_dir
    with pytest.raises(sv.CheckpointError) as refused:  # FunASR's own loader never sees the file
        AutoModel(model=str(folder), trust_remote_code=True, remote_code=str(MODEL_PY), device="cpu",
                  disable_update=True, ncpu=1)
    assert "\n" not in str(refused.value) and str(folder / "model.pt") in str(refused.value)
    with pytest.raises(sv.CheckpointError):
        ModelDir(folder).automodel(ncpu=1)
    assert not marker.exists()


def test_the_payload_through_the_real_command_leaves_no_trace(tiny_dir, wav_file, tmp_path):
    """As in the probe: ``sensevoice transcribe --model DIR`` in a process of its own, a pickle payload in model.pt."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    marker = tmp_path / "PAYLOAD_RAN"
    write_fault(folder / "model.pt", "pickle_payload", marker)
    proc = subprocess.run([sys.executable, "-m", "sensevoice", "transcribe", str(wav_file), "--model", str(folder)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_naming(proc.stderr, folder / "model.pt")
    assert "nothing in it was run" in proc.stderr and not marker.exists()


def test_every_checkpoint_layout_loads_the_same_weights(tiny_dir, tmp_path):
    """The release's bare state dict, FunASR's trainer file (``state_dict`` + optimizer, ``module.`` keys), ours
    (``model`` + optimizer, step, RNG) and torch's legacy format all load as data to the same weights."""
    reference = torch.load(tiny_dir / "model.pt", weights_only=True)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    layouts = {
        "bare": reference,
        "funasr_trainer": {"state_dict": {f"module.{k}": v for k, v in reference.items()},
                           "optimizer": optimizer.state_dict(), "epoch": 3, "val_acc_step_or_epoch": {"ep1": 0.5}},
        "ours": {"model": reference, "optimizer": optimizer.state_dict(), "step": 7,
                 "torch_rng": torch.get_rng_state()}}
    for name, state in layouts.items():
        torch.save(state, tmp_path / f"{name}.pt")
    torch.save(reference, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in [*layouts, "legacy"]:
        model = ModelDir(tiny_dir).build(seed=1)
        load_checkpoint(model, str(tmp_path / f"{name}.pt"))
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in reference.items()), name


def test_a_checkpoint_of_another_shape_is_refused_before_loading(tiny_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    state = torch.load(tiny_dir / "model.pt", weights_only=True)
    state["ctc.ctc_lo.bias"] = torch.zeros(7)
    torch.save(state, folder / "model.pt")
    with pytest.raises(sv.CheckpointError, match=r"ctc\.ctc_lo\.bias: checkpoint \(7,\)"):
        ModelDir(folder).check_weights()


# ----------------------------------------------------------------------------------------------- service
def wav_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, speechlike(seconds), 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def transcriber(tiny_dir) -> Transcriber:
    return Transcriber(tiny_dir, vad=False, threads=1)


def make_app(transcriber, **config):
    return create_app(Batcher(transcriber, 60.0, 5.0, 64), ServeConfig(**config))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def json_error(answer: bytes) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


async def trickle(port: int, source: str, at_once: bytes, slowly: bytes, limit_s: float) -> tuple[bytes, float]:
    """From ``source``, send ``at_once``, then ``slowly`` one byte a second; the server's answer (until it closes)
    and the seconds it took."""
    started, answer = time.monotonic(), b""  # before the connect: the server's clocks start later
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(at_once)

    async def drip() -> None:
        for byte in slowly:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(65536):
                answer += chunk
                dripping.cancel()  # answered: stop sending
    except (ConnectionError, TimeoutError):
        pass
    finally:
        dripping.cancel()
        writer.close()
    return answer, time.monotonic() - started


HEADERS_SLOWLY = b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 100
BODY_SLOWLY = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" + b"a" * 100
BODY_HEADERS = (b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                b"Content-Type: multipart/form-data; boundary=B\r\n\r\n")


def test_600_trickling_connections_leave_real_clients_served(transcriber):
    """600 connections from six other addresses trickle one byte a second: their headers (cut at the header
    deadline with a JSON 408), their bodies (cut by the minimum rate, 408), or, past the per-client cap, nothing
    (a JSON 429 with Retry-After). Meanwhile 20 real requests from 127.0.0.1 are all served."""
    if guard.raise_fd_limit(4096) < 2 * 600 + 256:
        pytest.skip("the open-files limit cannot hold 600 connections at both ends in one process")
    try:
        socket.create_connection(("127.0.0.1", 9), source_address=("127.0.0.2", 0), timeout=1).close()
    except ConnectionRefusedError:
        pass
    except OSError as err:
        pytest.skip(f"no 127.0.0.2 on this loopback ({err})")
    header_timeout_s, per_client = 3.0, 64
    app = make_app(transcriber, header_timeout_s=header_timeout_s, max_connections_per_client=per_client,
                   upload_timeout_s=30.0, min_upload_rate=1024.0)
    data = wav_bytes(0.5)

    async def scenario(port: int):
        slow = []
        for n in range(600):
            source = f"127.0.0.{2 + n % 6}"
            if n % 2:
                slow.append(trickle(port, source, b"", HEADERS_SLOWLY, 20))
            else:  # headers at once, then the body a byte a second
                slow.append(trickle(port, source, BODY_HEADERS, BODY_SLOWLY, 20))
        slow_tasks = [asyncio.create_task(s) for s in slow]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            real = []
            for i in range(20):
                real.append(await client.post(OPENAI, files={"file": (f"r{i}.wav", data, "audio/wav")}))
        return real, await asyncio.gather(*slow_tasks)

    with serve_in_thread(app) as url:
        real, slow = asyncio.run(scenario(port_of(url)))
        assert app.state.service.config.header_timeout_s == header_timeout_s
        served = [r for r in real if r.status_code == 200]
        assert len(served) >= 19, [(r.status_code, r.text[:200]) for r in real]
        for r in real:
            if r.status_code != 200:
                assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["message"]
        statuses = {}
        for answer, seconds in slow:
            status, headers, body = json_error(answer)
            statuses[status] = statuses.get(status, 0) + 1
            assert body["error"]["code"] == status
            if status == 429:  # past the per-client cap: answered at once, told when to come back
                assert headers["retry-after"] == "1" and seconds < 3
            elif "headers did not arrive" in body["error"]["message"]:
                assert status == 408 and header_timeout_s - 0.5 < seconds < header_timeout_s + 2
            else:  # the minimum rate: 1024 bytes/s after the first 5 s
                assert status == 408 and "too slow" in body["error"]["message"] and 4.5 < seconds < 8
        assert statuses[429] == 600 - 6 * per_client and statuses[408] == 6 * per_client
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # every slot was given back


def test_overload_is_json_with_retry_after_for_http_and_websocket(transcriber):
    """The requests-in-progress cap answers 503 in the service's JSON; the per-client cap refuses a WebSocket
    handshake the same way (429) instead of uvicorn's plain text."""
    app = make_app(transcriber, max_requests=1, max_connections_per_client=2)
    with serve_in_thread(app) as url:
        port = port_of(url)
        with socket.create_connection(("127.0.0.1", port)) as busy:  # a request in progress: its body is due
            busy.sendall(BODY_HEADERS + b"--B")
            time.sleep(0.3)
            refused = httpx.post(f"{url}{OPENAI}", files={"file": ("a.wav", wav_bytes(0.5))}, timeout=10)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "requests are in progress" in refused.json()["error"]["message"]
            with socket.create_connection(("127.0.0.1", port)) as second, \
                    socket.create_connection(("127.0.0.1", port)) as third:
                second.sendall(b"")  # open, within the cap of 2 with ``busy``; ``third`` is past it
                third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                status, headers, body = json_error(read_until_closed(third, 10))
        assert status == 429 and headers["retry-after"] == "1" and "limit per client is 2" in body["error"]["message"]
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200


def test_a_body_left_unread_after_the_answer_is_cut_at_the_deadline(transcriber):
    """A request answered before its body was read (401: no API key) must not keep its connection by trickling
    the rest: uvicorn restarts no timer while it drains."""
    app = make_app(transcriber, api_key="k", header_timeout_s=1.0)
    with serve_in_thread(app) as url, socket.create_connection(("127.0.0.1", port_of(url))) as conn:
        conn.sendall(BODY_HEADERS)
        conn.settimeout(10)
        answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401 ")
        started = time.monotonic()
        try:
            while time.monotonic() - started < 10:
                conn.sendall(b"x")
                time.sleep(0.2)
        except OSError:  # closed by the server
            pass
        assert time.monotonic() - started < 4


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_exits_0_on_sigint_and_sigterm(tiny_dir, stop):
    """As ``serve --help`` says: 0 stopped (Ctrl-C, SIGTERM); uvicorn raises the signal again (130 / 143)."""
    proc = subprocess.Popen([sys.executable, "-m", "sensevoice", "serve", "--model", str(tiny_dir), "--port", "0",
                             "--no-streaming", "--no-vad", "--log-level", "info"], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = []
        while not lines or "Application startup complete" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], "".join(lines)  # the server exited before it started
        assert any(re.search(r"listening on 127\.0\.0\.1 port \d+$", line) for line in lines), "".join(lines)
        proc.send_signal(stop)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
