"""Every front door runs the one pipeline: the CLI, the service and the benchmark's runner give the same text for
the same files with their default options (VAD on, ITN on, language auto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
from fastapi.testclient import TestClient

from testkit import ROOT
from helpers_long import DEMO_DIR, long_speechlike, needs_demo
from sensevoice import cli
from sensevoice.pipeline import Transcriber
from sensevoice.serve.app import ServeConfig, create_app
from sensevoice.serve.batcher import Batcher

pytestmark = pytest.mark.slow  # the demo model through three doors, official recordings included


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory, official_or_none) -> list[Path]:
    """The bundled examples, a 20 s file with pauses (several VAD segments) and, when present, the official
    real recordings (mp3)."""
    folder = tmp_path_factory.mktemp("doors")
    wave, _ = long_speechlike((1.0, 6.0, 3.0))
    soundfile.write(folder / "pauses.wav", wave, 16000)
    files = sorted((ROOT / "examples").glob("*.flac")) + [folder / "pauses.wav"]
    if official_or_none is not None:
        files += sorted((official_or_none / "example").glob("*.mp3"))
    return files


@pytest.fixture(scope="module")
def official_or_none():
    from sensevoice.modeldir import official_dir

    return official_dir()


def cli_results(files: list[Path], capsys) -> dict[str, dict]:
    capsys.readouterr()  # what loading other models printed before
    code = cli.main(["transcribe", *map(str, files), "--model", str(DEMO_DIR), "-f", "jsonl", "--threads", "2"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK, err
    return {doc["key"]: doc for doc in map(json.loads, out.splitlines())}


@needs_demo
def test_cli_and_service_give_the_same_text(mixed_files, capsys):
    transcriber = Transcriber(DEMO_DIR, threads=2)  # the service's defaults: VAD on
    config = ServeConfig(use_vad=True, max_audio_s=3600.0)
    with TestClient(create_app(Batcher(transcriber, max_wait_ms=2), config)) as client:
        served = {}
        for path, key in zip(mixed_files, cli.input_keys(list(map(str, mixed_files)))):
            response = client.post("/v1/audio/transcriptions", files={"file": (path.name, path.read_bytes())})
            assert response.status_code == 200, response.text
            served[key] = response.json()["text"]
    printed = {key: doc["clean_text"] for key, doc in cli_results(mixed_files, capsys).items()}
    assert printed == served
    assert sum(bool(text) for text in printed.values()) >= len(mixed_files) - 1, "the demo model says something"


@needs_demo
def test_benchmark_runner_decodes_what_the_cli_prints(mixed_files, capsys, tmp_path):
    """sensevoice bench's runner for our backends is the pipeline (its long-file path: VAD + batches)."""
    from sensevoice.bench.backends import BACKENDS, Plan, PipelineRunner
    from sensevoice.vad import fsmn_vad_dir

    plan = Plan(model_dir=str(DEMO_DIR), onnx_dir=str(tmp_path), vad_dir=str(fsmn_vad_dir()), threads=2,
                device="cpu", clips={}, mixed_batches=[], long="", warmup=0, reps=1, mixed_passes=1,
                batch_size_s=60.0, warm_batch=False, use_itn=True)
    runner = PipelineRunner(plan, BACKENDS["torch"])
    printed = cli_results(mixed_files, capsys)
    for path, key in zip(mixed_files, cli.input_keys(list(map(str, mixed_files)))):
        text, segments = runner.transcribe_long(str(path))
        assert (text, segments) == (printed[key]["text"], len(printed[key]["segments"]))
