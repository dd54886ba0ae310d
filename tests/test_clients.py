"""Each client in clients/ uploads a file to a live server (uvicorn on a free loopback port, tiny model, API key
required) and prints exactly the server's own answer; with a wrong key it fails with the 401 on stderr.

A test skips, naming what is missing, only when its toolchain is absent; scripts/install_client_toolchains.sh
installs them all (Debian: libcurl4-openssl-dev, cmake, g++, openjdk-17-jdk-headless, mono-mcs, chromium,
chromium-driver).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher
from sensevoice.pipeline import Transcriber

pytestmark = pytest.mark.slow  # builds and runs clients in five toolchains against a live server

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"
API_KEY = "client-test-key"
INSTALL = "install with: bash scripts/install_client_toolchains.sh"


@pytest.fixture(scope="module")
def server(tiny_dir) -> str:
    app = create_app(Batcher(Transcriber(tiny_dir, vad=False, threads=2), max_wait_ms=2), ServeConfig(api_key=API_KEY))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def answers(server, wav_file) -> dict[str, str]:
    """The server's own answers for wav_file: OpenAI route (clean text) and api.py route (emoji text)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    data = wav_file.read_bytes()
    openai = httpx.post(f"{server}/v1/audio/transcriptions", headers=headers, timeout=60,
                        files={"file": (wav_file.name, data)}).json()["text"]
    asr = httpx.post(f"{server}/api/v1/asr", headers=headers, timeout=60,
                     files={"files": (wav_file.name, data)}).json()["result"][0]["text"]
    assert openai and asr, "the tiny model should say something"
    return {"openai": openai, "asr": asr}


def run(command: list[str], key: str = API_KEY, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "SENSEVOICE_API_KEY": key}
    return subprocess.run([str(c) for c in command], capture_output=True, env=env, timeout=timeout)


def check_client(command: list[str], expected: str) -> None:
    done = run(command)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode("utf-8").rstrip("\r\n") == expected
    refused = run(command, key="wrong-key")
    assert refused.returncode != 0 and "401" in refused.stderr.decode(errors="replace")


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed ({INSTALL})")


def need_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"Python package {name!r} not installed (pip install {name})")


def test_python_openai_sdk(server, answers, wav_file):
    need_module("openai")
    check_client([sys.executable, CLIENTS / "python" / "openai_client.py", wav_file, server], answers["openai"])


def test_openai_sdk_verbose_json(server, wav_file):
    """The SDK's own parsing of verbose_json with word timestamps (its timestamp_granularities[] encoding)."""
    need_module("openai")
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=API_KEY, max_retries=0)
    with open(wav_file, "rb") as audio:
        verbose = client.audio.transcriptions.create(model="sensevoice-small", file=audio, language="en",
                                                     response_format="verbose_json",
                                                     timestamp_granularities=["word", "segment"])
    assert verbose.text and verbose.duration == 2.5 and verbose.segments[0].end == 2.5
    assert verbose.words and all(0 <= w.start <= w.end <= 2.5 for w in verbose.words)
    assert {"rich_text", "emotion", "event", "language"} <= set(verbose.model_extra or {}) | {"language"}


def test_python_requests(server, answers, wav_file):
    need_module("requests")
    check_client([sys.executable, CLIENTS / "python" / "requests_client.py", wav_file, server], answers["asr"])


def test_cpp_libcurl(server, answers, wav_file, tmp_path):
    need_tools("cmake", "c++", "curl-config")  # curl-config comes with the libcurl headers
    build = tmp_path / "build"
    for step in (["cmake", "-S", CLIENTS / "cpp", "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                 ["cmake", "--build", build]):
        done = run(step)
        assert done.returncode == 0, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    check_client([build / "sensevoice-transcribe", wav_file, server], answers["openai"])


def test_java(server, answers, wav_file, tmp_path):
    need_tools("javac", "java")
    done = run(["javac", "-d", tmp_path, CLIENTS / "java" / "Transcribe.java"])
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    check_client(["java", "-cp", tmp_path, "Transcribe", wav_file, server], answers["openai"])


def test_csharp_mono(server, answers, wav_file, tmp_path):
    need_tools("mcs", "mono")
    exe = tmp_path / "Transcribe.exe"
    done = run(["mcs", f"-out:{exe}", CLIENTS / "csharp" / "Transcribe.cs"])
    assert done.returncode == 0, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    check_client(["mono", exe, wav_file, server], answers["openai"])


def test_browser_page_in_headless_chromium(server, answers, wav_file, tmp_path, page_client):
    screenshot = tmp_path / "page.png"
    command = [sys.executable, CLIENTS / "web" / "page_client.py", wav_file, server, "--screenshot", screenshot]
    check_client(command, answers["openai"])
    assert screenshot.read_bytes().startswith(b"\x89PNG")


def test_browser_page_states_limits_and_exports_the_result(server, wav_file, page_client):
    """The page shows the server's limits before an upload, and the result as SRT/VTT/JSON with its times."""
    with page_client.browser() as driver:
        page_client.transcribe_file(driver, server, wav_file, API_KEY)
        limits = driver.script("return document.getElementById('limits').textContent;")
        exports = driver.script("return ['txt', 'srt', 'vtt', 'json'].map((f) => exportText(lastResult, f));")
        buttons = driver.script("return ['copy', 'download'].map((id) => !!document.getElementById(id));")
    assert "64 MiB per upload" in limits and "60 s of audio" in limits and "wav, flac, ogg, mp3" in limits
    txt, srt, vtt, json_text = exports
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\n") and vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    cue_text = " ".join(line for line in srt.splitlines() if line and not line.isdigit() and "-->" not in line)
    assert cue_text == txt.strip()  # the server's cues wrap long lines (sensevoice.subtitles)
    assert '"segments"' in json_text and buttons == [True, True]


def test_browser_page_records_from_the_microphone(server, page_client):
    """The page's recorder (AudioWorklet -> 16-bit WAV) makes an upload the server accepts."""
    with page_client.browser(page_client.FAKE_MICROPHONE_FLAGS) as driver:
        page_client.transcribe_recording(driver, server, 1.5, API_KEY)
        source = driver.script("return document.getElementById('source').textContent;")
        seconds = driver.script("return document.getElementById('preview').duration;")
    assert source.startswith("recording.wav") and 1.0 <= seconds <= 3.0
