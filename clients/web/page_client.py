"""Transcribe an audio file through the service's browser page (``/``) in headless Chromium, print the text the
page shows and optionally save a screenshot of it.

    python clients/web/page_client.py FILE [URL] [--screenshot PNG]   # URL default http://127.0.0.1:8000

Drives Chromium with chromedriver over the plain W3C WebDriver HTTP protocol (no Selenium): open the page, type
$SENSEVOICE_API_KEY into its key field when set, choose FILE in the file input, press "Transcribe", wait for the
status to read done, print ``#text``. Needs Debian's ``chromium`` and ``chromium-driver``
(scripts/install_client_toolchains.sh).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

DEFAULT_URL = "http://127.0.0.1:8000"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver's key for element references
CHROMIUM_BINARIES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=900,760")
# Chromium's stand-in microphone (a beep), granted without a prompt: for testing the page's recorder.
FAKE_MICROPHONE_FLAGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
TIMEOUT_S = 120


def find_chromium() -> str | None:
    for name in CHROMIUM_BINARIES:
        found = name if os.path.isfile(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few W3C WebDriver commands this client needs, over urllib."""

    def __init__(self, base: str):
        self.base, self.session = base, None

    def call(self, method: str, path: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"webdriver {method} {path}: {err.read().decode(errors='replace')}") from err

    def start(self, chromium: str, flags: Sequence[str]) -> None:
        options = {"binary": chromium, "args": list(flags)}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def cmd(self, method: str, path: str, payload: dict | None = None):
        return self.call(method, f"/session/{self.session}{path}", payload)

    def element(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.element(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self.cmd("POST", f"/element/{self.element(css)}/value", {"text": text})

    def script(self, source: str):
        return self.cmd("POST", "/execute/sync", {"script": source, "args": []})


def wait_ready(driver: WebDriver, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromedriver exited with code {process.returncode}")
        try:
            if driver.call("GET", "/status")["ready"]:
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    raise RuntimeError("chromedriver did not become ready in 30 s")


@contextlib.contextmanager
def browser(extra_flags: Sequence[str] = ()) -> Iterator[WebDriver]:
    """A headless Chromium session (fresh profile) driven through its own chromedriver."""
    chromium, chromedriver = find_chromium(), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        raise RuntimeError("needs chromium and chromedriver (scripts/install_client_toolchains.sh)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sensevoice-chromium-") as profile:
        process = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            driver = WebDriver(f"http://127.0.0.1:{port}")
            wait_ready(driver, process)
            driver.start(chromium, [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra_flags])
            try:
                yield driver
            finally:
                driver.cmd("DELETE", "")
        finally:
            process.terminate()
            process.wait(10)


def open_page(driver: WebDriver, url: str, api_key: str | None) -> None:
    driver.cmd("POST", "/url", {"url": url.rstrip("/") + "/"})
    if api_key:
        driver.type("#apikey", api_key)


def result_text(driver: WebDriver) -> str:
    """Wait for the page's transcription to finish; its text, or RuntimeError with the page's error."""
    deadline = time.monotonic() + TIMEOUT_S
    state = "busy"
    while time.monotonic() < deadline:
        state = driver.script("return document.getElementById('status').dataset.state;")
        if state in ("done", "error"):
            break
        time.sleep(0.1)
    if state != "done":
        error = driver.script("return document.getElementById('error').textContent;")
        raise RuntimeError(f"the page did not finish (state {state!r}): {error}")
    return driver.script("return document.getElementById('text').textContent;")


def transcribe_file(driver: WebDriver, url: str, audio: Path, api_key: str | None, speakers: bool = False) -> str:
    """Choose ``audio`` in the page's file input (and with ``speakers``, tick the "speakers" box) and press
    Transcribe."""
    open_page(driver, url, api_key)
    if speakers:
        driver.click("#diarize")
    driver.type("#file", str(audio.resolve()))
    driver.click("#transcribe")
    return result_text(driver)


def live_recording(driver: WebDriver, url: str, seconds: float, api_key: str | None) -> dict:
    """Record ``seconds`` in live mode (Chromium with FAKE_MICROPHONE_FLAGS and
    ``--use-file-for-fake-audio-capture=WAV``): the partial texts seen while recording and the final text shown
    once the stream ends."""
    open_page(driver, url, api_key)
    time.sleep(1.0)  # /health tells the page that the server streams
    driver.click("#record")
    partials: set[str] = set()
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        partials.add(driver.script("return document.getElementById('live-partial').textContent;"))
        time.sleep(0.1)
    driver.click("#record")
    time.sleep(3.0)  # the last segment's final result
    return {"partials": sorted(p for p in partials if p),
            "final": driver.script("return document.getElementById('live-final').textContent;"),
            "error": driver.script("return document.getElementById('error').textContent;")}


def transcribe_recording(driver: WebDriver, url: str, seconds: float, api_key: str | None) -> str:
    """Record ``seconds`` from the microphone (start Chromium with FAKE_MICROPHONE_FLAGS) and press Transcribe."""
    open_page(driver, url, api_key)
    driver.click("#record")
    time.sleep(seconds)
    driver.click("#record")
    deadline = time.monotonic() + 10
    while driver.script("return document.getElementById('transcribe').disabled;"):
        if time.monotonic() > deadline:
            error = driver.script("return document.getElementById('error').textContent;")
            raise RuntimeError(f"no recording: {error}")
        time.sleep(0.05)
    driver.click("#transcribe")
    return result_text(driver)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("url", nargs="?", default=DEFAULT_URL)
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page with its result")
    args = parser.parse_args(argv)
    try:
        with browser() as driver:
            text = transcribe_file(driver, args.url, args.file, os.environ.get("SENSEVOICE_API_KEY"))
            if args.screenshot:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                args.screenshot.write_bytes(base64.b64decode(driver.cmd("GET", "/screenshot")))
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
