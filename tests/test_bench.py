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


@pytest.mark.slow
def test_bench_stream_measures_live_streams_and_memory(tiny_dir, tmp_path):
    """``python -m sensevoice.bench.stream`` end to end on the tiny model: two streams starting together and spread,
    one at a time, and a short memory stream (~40 s)."""
    import soundfile

    from helpers_long import long_speechlike
    from sensevoice.bench import stream as bench

    wave, _ = long_speechlike((2.0, 1.5), gap_s=2.5)
    soundfile.write(tmp_path / "speech.wav", (wave * 32767).astype("int16"), 16000)
    assert bench.main(["--model", str(tiny_dir), "--audio", str(tmp_path / "speech.wav"), "--streams", "1", "2",
                       "--spread-s", "0", "1", "--memory-minutes", "0.2", "--memory-speed", "4", "--name", "tiny",
                       "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "tiny.json").read_text())
    assert [(p["streams"], p["spread_s"]) for p in report["phases"]] == [(1, 0.0), (2, 0.0), (2, 1.0)]
    for phase in report["phases"]:
        assert phase["errors"] == 0 and phase["final_after_endpoint_s"]["n"] == 2 * phase["streams"]
        assert len(phase["max_lag_per_stream_s"]) == phase["streams"]
    memory = report["memory"]
    assert memory["audio_s"] == 12.0 and memory["segments"] >= 2 and memory["rss_mb_max"] > 100
    assert "| 2 | 1 | 80 |" in (tmp_path / "tiny.md").read_text()
