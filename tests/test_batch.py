"""`sensevoice batch` (sensevoice/batch.py, sensevoice/raybatch.py) on a local Ray: 30 short files, 2 corrupt ones and
a long one; every good file's text as `sensevoice transcribe` gives it, failures as rows, resumable output, the
same rows in JSONL and Parquet, a killed model actor and an interrupted run lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from testkit import ROOT, speechlike
from helpers_long import long_speechlike
from sensevoice import batch, batchio, cli, result
from sensevoice.modeldir import ModelDir

ray = pytest.importorskip("ray", reason="needs the batch extra: pip install -c constraints.txt '.[batch]'")
N_SHORT = 30
DECODER_TITLE = b"ray::MapWorker(MapBatches(Decoder"  # a model actor's process title


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "sub").mkdir()
    for i in range(N_SHORT):  # 0.6-2.1 s, a third of them one folder down
        soundfile.write(folder / ("sub" if i % 3 == 0 else ".") / f"clip{i:02d}.wav",
                        speechlike(0.6 + 0.05 * i, seed=10 + i), 16000)
    wave, _ = long_speechlike((1.0, 14.0, 3.0, 5.0))
    soundfile.write(folder / "long.flac", wave, 16000)
    (folder / "text.wav").write_text("this is a text file, not audio")
    (folder / "truncated.wav").write_bytes((folder / "clip01.wav").read_bytes()[:30])
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the in-process runs (the command reuses a Ray already started in its process)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), old]))  # workers import model, sensevoice
    ray.init(address="local", num_cpus=3, include_dashboard=False, object_store_memory=200 << 20,
             log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
    os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)


def run_batch(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["batch", *map(str, argv)])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def jsonl_out(corpus, tiny_dir, local_ray, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "jsonl"
    assert cli.main(["batch", str(corpus), "-o", str(out), "--model", str(tiny_dir), "--actors", "1",
                     "--shard-rows", "10", "--timestamps"]) == 0
    return out


def shard_names(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("part-*"))


def test_every_good_file_s_text_is_transcribe_s(capsys, corpus, tiny_dir, jsonl_out):
    rows = batchio.read_output(jsonl_out)
    files = sorted(corpus.rglob("clip*.wav")) + [corpus / "long.flac"]
    assert len(rows) == N_SHORT + 1 and sorted(r["source"] for r in rows) == sorted(map(str, files))
    code = cli.main(["transcribe", *map(str, files), "--model", str(tiny_dir), "-f", "jsonl", "--timestamps"])
    expected = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(expected) == len(files)
    texts = {r["source"]: r["text"] for r in rows}
    assert [texts[str(f)] for f in files] == expected
    assert {r["key"] for r in rows} >= {"sub/clip00", "clip01", "long"}


def test_long_file_has_absolute_segments_and_words(jsonl_out, tiny_dir):
    long = next(r for r in batchio.read_output(jsonl_out) if r["key"] == "long")
    starts = [s["start_ms"] for s in long["segments"]]
    assert len(starts) >= 3 and starts == sorted(starts) and long["segments"][-1]["end_ms"] <= long["duration_s"] * 1000
    assert long["segments"][1]["start_ms"] > 3000, "segment times are on the file's timeline"
    assert "words" in long and "timestamp" in long["segments"][0]
    assert json.loads(long["options"])["output_timestamp"] is True
    identity = ModelDir(tiny_dir).identity  # every row and the manifest name the model as every door does
    manifest = json.loads((jsonl_out / "manifest.json").read_text())
    assert long["model"] == manifest["settings"]["model_id"] == manifest["model"]["id"] == identity.id


def test_corrupt_files_are_failure_rows_with_their_reasons(jsonl_out):
    failures = batchio.read_output(jsonl_out, "failures")
    assert [f["key"] for f in failures] == ["text", "truncated"]
    assert all("cannot decode audio" in f["error"] for f in failures), failures


def test_rerun_writes_nothing_new(capsys, corpus, tiny_dir, jsonl_out):
    before = shard_names(jsonl_out)
    code, err = run_batch(capsys, corpus, "-o", jsonl_out, "--model", tiny_dir, "--timestamps")
    assert code == 0 and f"{N_SHORT + 3} already in" in err and "0 to do" in err
    assert shard_names(jsonl_out) == before


def test_rerun_with_other_settings_is_a_usage_error(capsys, corpus, tiny_dir, jsonl_out):
    code, err = run_batch(capsys, corpus, "-o", jsonl_out, "--model", tiny_dir)
    assert code == cli.EXIT_USAGE and "timestamps: True then, False now" in err
    before = shard_names(jsonl_out)
    # every decoding option is compared, the search options included: none may mix decodings in one output
    for option, value, field in (("--beam-size", "8", "beam_size: 1 then, 8 now"),
                                 ("--hotwords", "foo", "hotwords: [] then, [['foo', None]] now"),
                                 ("--restrict-language", None, "restrict_language: False then, True now"),
                                 ("--tag-topk", "2", "tag_topk: 0 then, 2 now")):
        code, err = run_batch(capsys, corpus, "-o", jsonl_out, "--model", tiny_dir, "--timestamps", option,
                              *([value] if value else []))
        assert code == cli.EXIT_USAGE and field in err, err
    assert shard_names(jsonl_out) == before
    code, err = run_batch(capsys, corpus, "-o", jsonl_out, "--model", tiny_dir, "--timestamps", "-f", "parquet")
    assert code == cli.EXIT_USAGE and "holds jsonl shards" in err


@pytest.mark.parametrize("option", [["--beam-size", "0"], ["--beam-size", "65"], ["--language", "fr"],
                                    ["--hotword-weight", "nan"]])
def test_a_bad_option_is_a_usage_error_before_ray_starts(capsys, corpus, tiny_dir, tmp_path, option):
    was_running = ray.is_initialized()
    code, err = run_batch(capsys, corpus, "-o", tmp_path / "out", "--model", tiny_dir, *option)
    assert code == cli.EXIT_USAGE and f"argument {option[0]}" in err
    assert ray.is_initialized() == was_running and not (tmp_path / "out").exists()


def test_parquet_reads_back_as_jsonl_does(capsys, corpus, tiny_dir, jsonl_out, tmp_path):
    import pyarrow.parquet as pq

    code, _ = run_batch(capsys, corpus, "-o", tmp_path, "--model", tiny_dir, "--actors", "1", "--timestamps",
                        "-f", "parquet")
    assert code == 0
    for table in batchio.TABLES:
        assert batchio.read_output(tmp_path, table) == batchio.read_output(jsonl_out, table)
        for shard in (tmp_path / table).glob("*.parquet"):
            assert pq.read_schema(shard).equals(batchio.schema(table, [result.TIMESTAMPS]))


# ----------------------------------------------------------------------------------------------- one result type
def websocket_finals(transcriber, audio: bytes, **first) -> list[dict]:
    """The finals of one file sent whole over the service's WebSocket (FunASR's protocol, wav_format "others")."""
    from fastapi.testclient import TestClient

    from sensevoice.serve.app import ServeConfig, create_app
    from sensevoice.serve.batcher import Batcher
    from sensevoice.serve.websocket import StreamHub
    from sensevoice.vad import StreamingVad

    batcher = Batcher(transcriber, max_wait_ms=2)
    finals = []
    with TestClient(create_app(batcher, ServeConfig(), StreamHub(StreamingVad(), batcher))) as client:
        with client.websocket_connect("/") as ws:
            ws.send_text(json.dumps({"mode": "online", "wav_name": "clip", "wav_format": "others", **first}))
            ws.send_bytes(audio)
            ws.send_text(json.dumps({"is_speaking": False}))
            while not (message := ws.receive_json()).get("is_end"):
                finals += [message] if message.get("segment_final") else []
            finals += [message] if message.get("segment_final") else []
    return finals


def test_every_door_carries_every_field_of_transcribe_json(capsys, corpus, tiny_dir, local_ray, tmp_path):
    """One input through transcribe -f json, a batch shard, verbose_json and a WebSocket final, with timestamps and
    tag probabilities: each carries every field of the result type (sensevoice.result), with the same values."""
    from fastapi.testclient import TestClient

    from sensevoice.audio import load_audio
    from sensevoice.pipeline import Prepared, Transcriber
    from sensevoice.serve import fields, formats, websocket
    from sensevoice.serve.app import ServeConfig, create_app
    from sensevoice.serve.batcher import Batcher

    (tmp_path / "in").mkdir()
    audio = (corpus / "clip29.wav").read_bytes()  # 2 s of speech-like sound: one VAD segment
    (tmp_path / "in" / "clip.wav").write_bytes(audio)
    parts = [result.TIMESTAMPS, result.TAG_PROBS]
    segment_fields = set(result.field_names(result.Segment, parts))
    assert {"avg_logprob", "no_speech_prob", "tag_probs", "word_probability", "tokens"} <= segment_fields

    code = cli.main(["transcribe", str(tmp_path / "in" / "clip.wav"), "--model", str(tiny_dir), "-f", "json",
                     "--timestamps", "--tag-topk", "2"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc.pop("cues") and set(doc) == set(result.field_names(result.Transcript, parts))
    assert doc["segments"] and all(set(s) == segment_fields for s in doc["segments"])

    code, err = run_batch(capsys, tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_dir, "--actors", "1",
                          "--timestamps", "--tag-topk", "2", "-f", "parquet")
    assert code == 0, err
    [row] = batchio.read_output(tmp_path / "out")
    assert {k: v for k, v in row.items() if k not in ("source", "duration_s", "model", "options")} == doc

    transcriber = Transcriber(tiny_dir, threads=2)
    with TestClient(create_app(Batcher(transcriber, max_wait_ms=2), ServeConfig())) as client:
        body = client.post("/v1/audio/transcriptions", files={"file": ("clip.wav", audio)},
                           data={"response_format": "verbose_json", "timestamp_granularities[]": "word",
                                 "tag_topk": "2"}).json()
    ours = {formats.OPENAI_SEGMENT_NAMES.get(k, k): k for k in segment_fields}
    for segment, want in zip(body["segments"], doc["segments"], strict=True):
        assert set(segment) == {"id", "seek", *ours}
        got = {ours[k]: round(v * 1000) if k in ("start", "end") else v for k, v in segment.items() if k in ours}
        assert got == want

    finals = websocket_finals(transcriber, audio, tag_topk=2)
    renamed = {websocket.FINAL_NAMES.get(k, k) for k in segment_fields} - {None}
    assert finals and all(renamed <= set(final) for final in finals), renamed - set(finals[0])
    wave = load_audio(audio, "clip").numpy()
    options = fields.stream_options({"tag_topk": 2}, ServeConfig().decoding)
    for final in finals:  # the stream's VAD cuts on its own: its segment's values are the pipeline's for that span
        span = (final["start_ms"], final["end_ms"])
        item = Prepared("clip", len(wave) // 16, (span,), (transcriber.features(wave[span[0] * 16:span[1] * 16], "x"),))
        [want] = [s.to_dict() for s in transcriber.decode([item], options)[0].segments]
        assert {k: final[websocket.FINAL_NAMES.get(k, k) or "timestamp"] for k in want} == \
            {**want, "timestamp": json.dumps(want["timestamp"]) if want["timestamp"] else ""}


def test_inputs_from_scp_jsonl_and_parquet_lists(corpus, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(corpus.rglob("clip0*.wav"))
    (tmp_path / "wav.scp").write_text("".join(f"k{i} {f}\n" for i, f in enumerate(files)))
    (tmp_path / "list.jsonl").write_text("".join(json.dumps({"key": f"k{i}", "source": str(f), "target": "x"}) + "\n"
                                                 for i, f in enumerate(files)))
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(len(files))], "path": list(map(str, files))}),
                   tmp_path / "paths.parquet")
    pq.write_table(pa.table({"key": ["a", "b"], "bytes": [files[0].read_bytes(), files[1].read_bytes()]}),
                   tmp_path / "bytes.parquet")
    expected = [batchio.Input(f"k{i}", str(f)) for i, f in enumerate(files)]
    for name in ("wav.scp", "list.jsonl", "paths.parquet"):
        assert batchio.list_inputs(str(tmp_path / name)) == expected, name
    assert [i.key for i in batchio.list_inputs(str(tmp_path / "bytes.parquet"))] == ["a", "b"]
    assert [i.key for i in batchio.list_inputs(str(corpus / "sub" / "*.wav"))] == \
        [f.stem for f in sorted((corpus / "sub").glob("*.wav"))]
    (tmp_path / "dup.scp").write_text(f"a {files[0]}\na {files[1]}\n")
    with pytest.raises(batch.UsageError, match="key 'a' appears twice"):
        batchio.list_inputs(str(tmp_path / "dup.scp"))


def test_parquet_bytes_input(capsys, corpus, tiny_dir, local_ray, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [corpus / "clip01.wav", corpus / "text.wav"]
    pq.write_table(pa.table({"key": ["good", "bad"], "audio": [f.read_bytes() for f in files]}), tmp_path / "b.parquet")
    code, _ = run_batch(capsys, tmp_path / "b.parquet", "-o", tmp_path / "out", "--model", tiny_dir, "--actors", "1")
    assert code == 0
    rows = batchio.read_output(tmp_path / "out")
    assert [(r["key"], r["source"]) for r in rows] == [("good", f"{tmp_path}/b.parquet[good]")]
    assert [r["key"] for r in batchio.read_output(tmp_path / "out", "failures")] == ["bad"]


def test_leftover_temporary_shards_are_ignored_and_removed(tmp_path):
    store = batchio.Store(tmp_path, "jsonl")
    store.write("results", [{"key": "a"}])
    (tmp_path / "results" / f"{batchio.TMP_PREFIX}part-x.jsonl").write_text('{"key": "b"}\n{"ke')
    assert store.done_keys() == {"a"} and len(list((tmp_path / "results").iterdir())) == 1


# ----------------------------------------------------------------------------------------------- failures
def start_job(corpus, out, tiny_dir, *extra) -> subprocess.Popen:
    """The command in a process of its own, with its own embedded local Ray."""
    return subprocess.Popen([sys.executable, "-m", "sensevoice", "batch", str(corpus), "-o", str(out), "--model",
                             str(tiny_dir), "--actors", "1", "--progress-every-s", "1", *extra], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)


def wait_for_shard(proc: subprocess.Popen, out: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not list(out.glob("results/part-*")):
        assert proc.poll() is None, f"ended before its first shard: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no shard written"
        time.sleep(0.02)


def descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children + [d for c in children for d in descendants(c)]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_each_input_once(out: Path) -> None:
    rows = batchio.read_output(out) + batchio.read_output(out, "failures")
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == N_SHORT + 3, sorted(keys)


@pytest.mark.slow
def test_a_killed_model_actor_costs_only_its_batch(corpus, tiny_dir, tmp_path):
    proc = start_job(corpus, tmp_path, tiny_dir, "--shard-rows", "1", "--segments-per-batch", "4")
    try:
        wait_for_shard(proc, tmp_path)
        actors = [pid for pid in descendants(proc.pid) if cmdline(pid).startswith(DECODER_TITLE)]
        assert len(actors) == 1, "the model actor's process not found"
        os.kill(actors[0], signal.SIGKILL)
        killed_while_running = proc.poll() is None
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert killed_while_running and f"done: {N_SHORT + 3}/{N_SHORT + 3} files (2 failed)" in err, err
    assert_each_input_once(tmp_path)


@pytest.mark.slow
def test_an_interrupted_run_completes_on_rerun(capsys, corpus, tiny_dir, local_ray, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, which the driver turns into one) just after the first shard: the files finished by then
    are written, the run exits 130, and a rerun does the rest, each input once."""
    write, calls = batchio.Store.write, []

    def interrupted_write(store, table, rows):
        calls.append(table)
        if len(calls) == 2:  # the first shard is on disk; the user presses Ctrl-C
            raise KeyboardInterrupt
        return write(store, table, rows)

    monkeypatch.setattr(batchio.Store, "write", interrupted_write)
    code, err = run_batch(capsys, corpus, "-o", tmp_path, "--model", tiny_dir, "--actors", "1", "--shard-rows", "3")
    written = len(batchio.read_output(tmp_path)) + len(batchio.read_output(tmp_path, "failures"))
    assert code == 130 and "rerun the same command" in err and 3 <= written < N_SHORT + 3, err
    monkeypatch.setattr(batchio.Store, "write", write)
    code, err = run_batch(capsys, corpus, "-o", tmp_path, "--model", tiny_dir, "--actors", "1")
    assert code == 0 and f"{written} already in" in err
    assert_each_input_once(tmp_path)


def test_sigterm_is_an_interrupt_in_the_driver():
    from sensevoice import raybatch

    with pytest.raises(KeyboardInterrupt):
        raybatch.raise_interrupt(signal.SIGTERM, None)


def test_a_model_that_does_not_load_leaves_the_output_folder_untouched(capsys, corpus, mismatched_dir, tmp_path):
    """A mistyped or broken --model once left a manifest.json behind, and that folder then refused the rerun with
    the right model as 'written with other settings'."""
    broken = mismatched_dir
    was_running = ray.is_initialized()
    code, err = run_batch(capsys, corpus, "-o", tmp_path / "out", "--model", broken)
    assert code == cli.EXIT_USAGE and f"--model '{broken}' cannot be loaded" in err and "embed.weight" in err, err
    assert not (tmp_path / "out").exists() and ray.is_initialized() == was_running
    (tmp_path / "kept").mkdir()
    code, err = run_batch(capsys, corpus, "-o", tmp_path / "kept", "--model", broken)
    assert code == cli.EXIT_USAGE and list((tmp_path / "kept").iterdir()) == []
