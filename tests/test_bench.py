"""sensevoice.bench.speed (``sensevoice bench``): the benchmark runs the reference and our backends end to end."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_quick_runs_the_reference_and_ours_on_one_model(tiny_dir, tmp_path):
    """`sensevoice bench --quick` end to end on the tiny model (two backends, one process each, ~20 s)."""
    from sensevoice.bench import speed as bench

    assert bench.main(["--model", str(tiny_dir), "--quick", "--threads", "1", "--backends", "funasr,ort-int8",
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--name", "tiny",
                       "--fig", str(tmp_path / "fig.png"), "--ort-spin"]) == 0
    report = json.loads((tmp_path / "out" / "tiny.json").read_text())
    reference, ort = report["backends"]["funasr"], report["backends"]["ort-int8"]
    assert reference["agreement"]["tokens"] == 1.0 and reference["vs_reference"]["e2e_10s"] == 1.0
    assert set(ort["latency"]) == {"3", "10"} and ort["mixed"]["x_rt"] > 0 and ort["long"]["segments"] >= 1
    assert 0 <= ort["agreement"]["tokens"] <= 1 and ort["peak_rss_mb"] > 0
    assert report["backends"]["torch"] == {"skipped": "not selected"}
    assert "| ort-int8 | int8 |" in (tmp_path / "out" / "tiny.md").read_text()
    assert json.loads((tmp_path / "work" / "plan.json").read_text())["ort_spin"] is True  # reaches the workers
    assert "ONNX Runtime threads spin while a run is in progress" in (tmp_path / "out" / "tiny.md").read_text()
    assert (tmp_path / "fig.png").stat().st_size > 10_000
