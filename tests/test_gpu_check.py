"""sensevoice.bench.gpu (the GPU check, scripts/gpu_check.sh): its rehearsal on the CPU end to end, and its time
guard, which must skip or stop an item with a reason rather than lose the run."""

from __future__ import annotations

import json
import sys
import tarfile
import time
from dataclasses import asdict

import pytest

from sensevoice.bench import gpu


@pytest.mark.slow
def test_rehearsal_on_the_cpu_gives_every_item_a_number_or_a_reason(tiny_dir, tmp_path):
    """``--device cpu --quick`` with every backend named (ort then rehearses the export and its worker on the CPU
    provider): each item measured, or skipped with why (~1-2 min on 2 cores)."""
    out = tmp_path / "gpu_check"
    assert gpu.main(["--device", "cpu", "--quick", "--model", str(tiny_dir), "--backends", ",".join(gpu.BACKENDS),
                     "--budget-s", "1200", "--threads", "1", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    report = json.loads((out / "results.json").read_text())
    items = report["items"]
    assert items["env"]["versions"]["torch"] and items["env"]["device"] == "cpu"
    assert items["inputs"]["long_s"] == 30.0 and items["inputs"]["short_s"] > 8
    assert "cuda only" in items["backend/torch-fp16"]["why"] and items["backend/torch-fp16"]["status"] == "skipped"
    for name in ("funasr", "torch", "torch-bf16", "ort"):
        result = items[f"backend/{name}"]
        assert result["status"] == "ok" and "unfinished" not in result, (name, result)
        assert result["latency"]["e2e_ms"]["p50"] > 0 and result["latency"]["e2e_ms"]["n"] == 2
        assert sorted(result["short"]) == ["10", "30"]
        assert all(s["x_rt"] > 0 and s["clips"] == 8 for s in result["short"].values())
        (label, long), = result["long"].items()
        assert label == ("funasr-card" if name == "funasr" else "ours-30s")
        assert long["x_rt"] > 0 and long["segments"] >= 1 and long["gpu_memory"] is None
    half = items["backend/funasr"]["half"]
    assert "GPUs only" in half["fp16"]["skipped"]
    assert "error" in half["bf16"] or half["bf16"]["e2e_ms"]["p50"] > 0  # FunASR's built-in: a finding either way
    sequential, concurrent = items["service"]["phases"]
    assert concurrent["clients"] == 4 and concurrent["requests_per_s"] > 0 and concurrent["errors"] == 0
    assert sequential["latency_p50_s"] > 0
    stream, = items["websocket"]["phases"]
    assert stream["streams"] == 2 and stream["errors"] == 0 and stream["finals"] >= 2
    assert stream["final_after_endpoint_s"]["p99"] is not None and stream["finals_per_s"] > 0
    table = (out / "results.md").read_text()
    assert "| funasr | fp32 |" in table and "| ort | fp32 |" in table and "not reached" not in table
    assert "service (concurrent) | 4 clients" in table and "websocket (final after endpoint) | 2 streams" in table
    assert "nvidia-smi" in (out / "env.txt").read_text()
    with tarfile.open(out / "logs" / "items.tar") as tar:
        names = set(tar.getnames())
    assert {"logs/funasr.log", "logs/ort.log", "logs/service.log", "service/service.json",
            "websocket/websocket.json"} <= names


def test_the_time_left_is_divided_by_shares_and_an_item_without_enough_is_skipped(tmp_path):
    check = gpu.Check(tmp_path / "out", tmp_path / "work", gpu.QUICK, total_s=400.0, command="test")
    shares = gpu.SHARES
    assert check.slot("torch", later=[]) == pytest.approx(400, abs=1)  # the last item: all that is left
    assert check.slot("torch", later=["service"]) == \
        pytest.approx(400 * shares["torch"] / (shares["torch"] + shares["service"]), abs=1)
    check.deadline = time.time() + 105  # earlier items took the rest
    assert check.slot("funasr", later=["service", "websocket"]) == \
        pytest.approx(105 * shares["funasr"] / (shares["funasr"] + shares["service"] + shares["websocket"]), abs=1)
    check.deadline = time.time() + 30  # its part would be under MIN_ITEM_S
    assert check.slot("funasr", later=["service"]) == "skipped: 30 s of the 400 s budget left, 1 item(s) after it"


def test_a_process_over_its_budget_is_stopped_and_says_so(tmp_path):
    started = time.time()
    why = gpu.run_process([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"],
                          tmp_path / "log", timeout_s=1.0)
    assert why == "timed out after its budget of 1 s" and time.time() - started < 15
    assert gpu.run_process([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log", 30).startswith(
        "exit code 3")
    assert gpu.run_process([sys.executable, "-c", "pass"], tmp_path / "log", 30) is None


def test_the_report_of_a_run_cut_short_names_what_was_not_reached():
    """A backend killed after its first step, a skipped one, a service that never answered: the tables say so."""
    report = {"command": "x", "budget_s": 450, "elapsed_s": 450, "sizes": asdict(gpu.FULL),
              "items": {"env": {"status": "ok", "device": "cuda", "versions": {"torch": "2.11.0"}},
                        "backend/funasr": {"status": "error", "load_s": 3.0,
                                           "unfinished": "timed out after its budget of 99 s"},
                        "backend/ort": {"status": "skipped", "why": "skipped: no CUDAExecutionProvider"},
                        "service": {"status": "error", "error": "exit code 1: a | b"}}}
    table = gpu.markdown(report)
    assert "| funasr | fp32 | not reached: timed out after its budget of 99 s |" in table
    assert "| ort | fp32 | skipped: no CUDAExecutionProvider |" in table
    assert "| service | exit code 1: a / b |" in table  # a '|' from a log cannot break the table
