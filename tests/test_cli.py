"""The command line (sensevoice/cli.py): `sensevoice transcribe`, its outputs, errors and exit codes
(0 all written, 1 some inputs failed, 2 usage)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import types

import pytest
import soundfile

import model as sv
from testkit import ROOT, speechlike
from helpers_long import long_speechlike
from sensevoice import cli, subtitles
from sensevoice.modeldir import ModelDir


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two short clips and a 45 s file with pauses (several VAD segments, one long enough to split in cues)."""
    folder = tmp_path_factory.mktemp("cli")
    soundfile.write(folder / "short.wav", speechlike(2.5, seed=1), 16000)
    (folder / "dup").mkdir()
    soundfile.write(folder / "dup" / "short.wav", speechlike(1.0, seed=3), 16000)
    soundfile.write(folder / "other.flac", speechlike(1.5, seed=2), 16000)
    wave, _ = long_speechlike((1.0, 14.0, 3.0))
    soundfile.write(folder / "long.wav", wave, 16000)
    (folder / "notes.wav").write_text("this is a text file, not audio")
    return folder


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------------- success
def test_txt_to_stdout(capsys, tiny_dir, clips):
    code, out, err = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir))
    assert code == cli.EXIT_OK, err
    assert f"model: {ModelDir(tiny_dir).identity}; from {tiny_dir.resolve()}" in err  # tests/test_identity.py
    assert len(out.splitlines()) >= 3, "one line per speech segment"
    assert "<|" not in out, "txt is the clean text"


def test_json_has_segments_cues_and_optional_timestamps(capsys, tiny_dir, clips):
    code, out, err = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir), "-f", "json",
                         "--timestamps", "--language", "en", "--no-itn")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["key"] == "long" and len(doc["segments"]) >= 3
    assert {"start_ms", "end_ms", "text", "emotion", "event", "language"} <= set(doc["cues"][0])
    assert len(doc["cues"]) > len([s for s in doc["segments"] if s["clean_text"]]), "the 14 s segment is split"
    assert len(doc["words"]) == len(doc["timestamp"]) > 0 and doc["timestamp"][-1][1] <= doc["duration_ms"]
    code, out, _ = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir), "-f", "json",
                       "--language", "en", "--no-itn")
    bare = json.loads(out)
    assert code == 0 and "words" not in bare and "tokens" not in bare["segments"][0]
    assert bare["cues"] == doc["cues"], "cues are split with timestamps whether or not they are printed"


def test_subtitles_to_an_output_dir(capsys, tiny_dir, clips, tmp_path):
    inputs = [str(clips / "long.wav"), str(clips / "short.wav")]
    for fmt in ("srt", "vtt", "tsv"):
        code, _, err = run(capsys, "transcribe", *inputs, "--model", str(tiny_dir), "-f", fmt, "-o", str(tmp_path))
        assert code == 0, err
    srt = (tmp_path / "long.srt").read_text()
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    assert (tmp_path / "long.vtt").read_text().startswith("WEBVTT")
    assert (tmp_path / "short.tsv").read_text().startswith("start\tend\tlanguage\temotion\tevent\ttext\n")
    assert f"wrote {tmp_path / 'short.tsv'}" in err


def test_jsonl_several_inputs_on_stdout(capsys, tiny_dir, clips):
    code, out, err = run(capsys, "transcribe", str(clips / "short.wav"), str(clips / "other.flac"),
                         str(clips / "dup" / "short.wav"), "--model", str(tiny_dir), "-f", "jsonl")
    assert code == 0, err
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["short", "other", "short-2"]


def test_files_may_follow_options(capsys, tiny_dir, clips):
    code, out, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tiny_dir), "-f", "jsonl",
                         str(clips / "other.flac"))
    assert code == 0, err
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["short", "other"]


def test_decoding_options_reach_the_model(capsys, biased_dir, clips):
    def rich_text(*options):
        code, out, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(biased_dir), "-f",
                             "jsonl", *options)
        assert code == 0, err
        return json.loads(out)["text"]

    assert "<|EMO_UNKNOWN|>" in rich_text()
    assert rich_text("--ban-emo-unk") == ""  # biased_dir's blank then wins every frame
    penalised = rich_text("--ban-emo-unk", "--blank-penalty", "3")
    assert penalised and "<|EMO_UNKNOWN|>" not in penalised


def test_no_vad_and_batch_size_options(capsys, tiny_dir, clips):
    code, out_vad, _ = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir), "-f", "jsonl",
                           "--batch-size-s", "1")
    code2, out_300, _ = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir), "-f", "jsonl",
                            "--batch-size-s", "300")
    assert code == code2 == 0 and out_vad == out_300
    code, out, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tiny_dir), "-f", "jsonl",
                         "--no-vad")
    assert code == 0, err
    assert [(s["start_ms"], s["end_ms"]) for s in json.loads(out)["segments"]] == [(0, 2500)]


def test_stdin_bytes(capsys, tiny_dir, clips, monkeypatch):
    data = (clips / "short.wav").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run(capsys, "transcribe", "-", "--model", str(tiny_dir), "-f", "jsonl")
    assert code == 0, err
    from_file = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tiny_dir), "-f", "jsonl")[1]
    assert json.loads(out)["key"] == "stdin"
    assert json.loads(out)["segments"] == json.loads(from_file)["segments"]


def test_progress_bar_on_stderr(capsys, tiny_dir, clips):
    code, _, err = run(capsys, "transcribe", str(clips / "long.wav"), "--model", str(tiny_dir), "--progress")
    assert code == 0 and "s audio" in err and "100%" in err


def test_default_model_is_the_demo_dir(capsys, tiny_dir, clips, monkeypatch):
    from sensevoice import modeldir

    monkeypatch.setattr(modeldir, "DEMO_DIR", tiny_dir)
    code, _, err = run(capsys, "transcribe", str(clips / "short.wav"))
    assert code == 0 and f"model: sensevoice-demo@{ModelDir(tiny_dir).identity.weights_sha256[:12]}" in err
    assert f"from {tiny_dir.resolve()}" in err


# ----------------------------------------------------------------------------------------------- failures
def test_bad_inputs_are_reported_and_the_others_written(capsys, tiny_dir, clips, tmp_path):
    code, _, err = run(capsys, "transcribe", str(clips / "missing.wav"), str(clips / "notes.wav"),
                       str(clips / "short.wav"), "--model", str(tiny_dir), "-o", str(tmp_path))
    assert code == cli.EXIT_FAILED
    assert f"{clips / 'missing.wav'}: no such file" in err
    assert f"{clips / 'notes.wav'}: cannot decode audio" in err
    assert "2 of 3 inputs failed" in err
    assert (tmp_path / "short.txt").is_file() and not (tmp_path / "notes.txt").exists()


def test_only_unreadable_inputs_fail_without_loading_the_model(capsys, tiny_dir, clips):
    code, _, err = run(capsys, "transcribe", str(clips / "missing.wav"), str(clips / "dup"), "--model", str(tiny_dir))
    assert code == cli.EXIT_FAILED and "model:" not in err
    assert "missing.wav: no such file" in err and f"{clips / 'dup'}: not a file" in err


def test_empty_stdin(capsys, tiny_dir, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, _, err = run(capsys, "transcribe", "-", "--model", str(tiny_dir))
    assert code == cli.EXIT_FAILED and "-: no audio bytes received" in err


@pytest.mark.parametrize("argv, message", [
    (["--language", "xx"], "argument --language: expected one of auto, zh, en, yue, ja, ko, nospeech (or zn), got 'xx'"),
    (["--backend", "tensorrt"], "argument --backend: invalid choice: 'tensorrt'"),
    (["--backend", "onnxruntime", "--precision", "bf16"], "--precision 'bf16' is not available with --backend onnxruntime"),
    (["--batch-size-s", "0"], "argument --batch-size-s: expected a positive number, got '0'"),
    (["--batch-size-s", "nan"], "argument --batch-size-s: expected a positive number, got 'nan'"),
    (["--batch-size-s", "many"], "argument --batch-size-s: expected a positive number, got 'many'"),
    (["--threads", "0"], "argument --threads: expected a positive integer, got '0'"),
    (["--blank-penalty", "-1"], "argument --blank-penalty: expected a number >= 0, got '-1'"),
    (["--blank-penalty", "inf"], "argument --blank-penalty: expected a number >= 0, got 'inf'"),
    (["--blank-penalty", "some"], "argument --blank-penalty: expected a number >= 0, got 'some'"),
    (["--device", "tpu:what"], "--device 'tpu:what'"),
    (["--format", "doc"], "argument -f/--format: invalid choice: 'doc'"),
    (["-", "-"], "can be given once"),
    (["other.flac", "-f", "srt"], "need --output-dir"),
])
def test_usage_errors_exit_2(capsys, tiny_dir, clips, argv, message):
    code, out, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tiny_dir), *argv)
    assert code == cli.EXIT_USAGE and message in err and out == ""


def test_model_errors_exit_2(capsys, tmp_path, tiny_dir, clips, monkeypatch):
    import shutil

    from sensevoice import modeldir

    monkeypatch.setattr(modeldir, "DEMO_DIR", tmp_path / "demo")
    code, _, err = run(capsys, "transcribe", str(clips / "short.wav"))
    assert code == cli.EXIT_USAGE and "pass --model DIR" in err
    code, _, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tmp_path / "nowhere"))
    assert code == cli.EXIT_USAGE and "nowhere: not a directory" in err
    code, _, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tmp_path))
    assert code == cli.EXIT_USAGE and "not a model directory, it lacks ['config.yaml', 'configuration.json'" in err
    shutil.copytree(tiny_dir, tmp_path / "no_weights", ignore=shutil.ignore_patterns("model.pt"))
    code, _, err = run(capsys, "transcribe", str(clips / "short.wav"), "--model", str(tmp_path / "no_weights"))
    assert code == cli.EXIT_USAGE and "model.pt is missing" in err


def test_no_command_and_help(capsys):
    assert run(capsys, )[0] == cli.EXIT_USAGE
    code, out, _ = run(capsys, "transcribe", "--help")
    assert code == 0 and "--batch-size-s" in out


def test_serve_help_shows_the_upload_grace_the_app_enforces(capsys):
    """--min-upload-rate's help names the grace's value, read from app.py (the help itself imports no torch: see
    test_usage_errors_come_before_heavy_imports)."""
    from sensevoice.serve import app

    code, out, _ = run(capsys, "serve", "--help")
    assert code == 0 and f"once its first {app.UPLOAD_RATE_GRACE_S:g} s are over" in " ".join(out.split())


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_help_ends_with_its_own_exit_codes(capsys, name):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0 and " ".join(out.split()).endswith(" ".join(cli.COMMANDS[name].exit_help.split()))
    assert len({command.exit_help for command in cli.COMMANDS.values()}) == len(cli.COMMANDS)


def busy_port() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "argument --port: expected a TCP port 1-65535 (or 0: any free port), got '70000'"),
    (["--port", "-1"], "argument --port: expected a TCP port 1-65535 (or 0: any free port), got '-1'"),
    (["--port", "http"], "argument --port: invalid port_number value: 'http'"),
    (["--host", "my host"], "argument --host: expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name, "
                            "got 'my host'"),
    (["--host", "192.0.2.1"], "--host '192.0.2.1': cannot listen there"),  # TEST-NET-1: not this machine's
    (["--upload-timeout-s", "0"], "argument --upload-timeout-s: expected a positive number, got '0'"),
])
def test_serve_checks_host_and_port(capsys, tiny_dir, argv, message):
    code, out, err = run(capsys, "serve", "--model", str(tiny_dir), *argv)
    assert code == cli.EXIT_USAGE and message in err and out == ""


def test_serve_busy_port_is_a_usage_error_before_the_model_loads(capsys, tiny_dir):
    with busy_port() as listener:
        port = listener.getsockname()[1]
        code, _, err = run(capsys, "serve", "--model", str(tiny_dir), "--port", str(port))
    assert code == cli.EXIT_USAGE and f"--port {port}: already in use on 127.0.0.1" in err and "--port 0" in err


# Each runs `python -m sensevoice ...` in a fresh process and reports whether torch/FunASR/Ray got imported.
LIGHT_RUN = ("import runpy, sys; sys.argv = ['sensevoice', *sys.argv[1:]]\n"
             "try: runpy.run_module('sensevoice', run_name='__main__')\n"
             "except SystemExit as e: print('heavy' if {'torch', 'funasr', 'ray'} & set(sys.modules) else 'light', "
             "file=sys.stderr); raise")


@pytest.mark.parametrize("argv, code, message", [
    (["--help"], 0, ""),
    (["serve", "--help"], 0, ""),
    (["transcribe", "{clips}/short.wav", "{clips}/other.flac", "-f", "json"], 2, "need --output-dir"),
    (["transcribe", "{clips}/missing.wav", "{clips}/gone.wav"], 1, "missing.wav: no such file"),
    (["transcribe", "{clips}/short.wav", "--model", "{clips}/nowhere"], 2, "nowhere: not a directory"),
    (["serve", "--model", "{clips}"], 2, "not a model directory"),
    (["transcribe", "{clips}/short.wav", "--backend", "onnxruntime", "--precision", "bf16"], 2, "not available"),
    (["serve", "--port", "{busy}"], 2, "already in use"),
    (["export", "--model", "{clips}/nowhere", "--out", "{clips}/onnx"], 2, "nowhere: not a directory, nor a model "
                                                                          "name on a hub"),
    (["transcribe", "{clips}/short.wav", "--model", "no/such/dir"], 2, "no/such/dir: not a directory"),
    (["download", "not a name"], 2, "expected a model name on a hub (owner/name, e.g. iic/SenseVoiceSmall"),
    (["batch", "{clips}/nowhere", "-o", "{clips}/out"], 2, "nowhere': no such file or directory"),
    (["batch", "{clips}/short.wav", "-o", "{clips}/out"], 2, "short.wav': unknown input format '.wav'"),
    (["batch", "{clips}", "-o", "{clips}/out", "--address", "ray:/head"], 2,
     "argument --address: expected auto, ray://HOST:PORT (e.g. ray://head:10001) or HOST:PORT, got 'ray:/head'"),
])
def test_usage_errors_come_before_heavy_imports(clips, argv, code, message):
    with busy_port() as listener:
        argv = [a.format(clips=clips, busy=listener.getsockname()[1]) for a in argv]
        proc = subprocess.run([sys.executable, "-c", LIGHT_RUN, *argv], capture_output=True, text=True, cwd=ROOT,
                              timeout=60)
    assert proc.returncode == code and message in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("light"), "torch, FunASR or Ray was imported for this"


def fake_ffmpeg_env(folder) -> dict[str, str]:
    """The environment with an ``ffmpeg`` first on PATH that fails, as FunASR sees a missing one."""
    fake = folder / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 127\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_no_vad_memory_warning_reaches_stderr(tiny_dir, tmp_path):
    """FunASR's import silences every warning (warnings.filterwarnings("ignore")); ours must survive it."""
    soundfile.write(tmp_path / "minute.wav", speechlike(61.0, seed=4), 16000)
    proc = subprocess.run([sys.executable, "-m", "sensevoice", "transcribe", str(tmp_path / "minute.wav"), "--model",
                           str(tiny_dir), "--no-vad", "-f", "jsonl"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "minute: 61 s of audio in one forward pass (no VAD)" in proc.stderr
    assert json.loads(proc.stdout)["key"] == "minute"


# ----------------------------------------------------------------------------------------------- structure
def test_cli_choices_are_model_py_s_own():
    """The CLI reads its choices from model.py's source (no torch import for --help), never from a copy."""
    from sensevoice import argtypes

    assert argtypes.model_constant("LANGUAGES") == sv.LANGUAGES
    assert argtypes.model_constant("LANGUAGE_ALIASES") == sv.LANGUAGE_ALIASES
    assert argtypes.model_constant("BACKEND_PRECISIONS") == sv.BACKEND_PRECISIONS
    assert cli.FORMATS == subtitles.FORMATS


def test_a_command_is_one_dict_entry(capsys, monkeypatch):
    def add_arguments(parser):
        parser.add_argument("--n", type=int, default=1)

    module = types.ModuleType("echo_command")
    module.add_arguments, module.run = add_arguments, lambda args: args.n + 40
    monkeypatch.setitem(sys.modules, "echo_command", module)
    monkeypatch.setitem(cli.COMMANDS, "echo", cli.Command("echo n", "echo_command", "exit status: n + 40"))
    assert cli.main(["echo", "--n", "2"]) == 42
    assert "exit status: n + 40" in run(capsys, "echo", "--help")[1]


def test_other_commands_modules_are_not_imported(monkeypatch, capsys):
    """Only the command that runs (or shows its help) is imported; a broken module elsewhere costs nothing."""
    monkeypatch.setitem(cli.COMMANDS, "broken", cli.Command("broken", "sensevoice.no_such_module", "exit status: -"))
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "broken" in out
    with pytest.raises(ModuleNotFoundError, match="sensevoice.no_such_module"):
        cli.main(["broken"])


def test_python_dash_m_reads_stdin_and_stdout_is_results_only(tiny_dir, clips, tmp_path):
    """The real entry point in a fresh process: `python -m sensevoice`, audio bytes piped in, JSON out. Without
    ffmpeg FunASR prints a notice at import; it must go to stderr, or `| python -m json.tool` breaks."""
    proc = subprocess.run([sys.executable, "-m", "sensevoice", "transcribe", "-", "--model", str(tiny_dir),
                           "-f", "json"], input=(clips / "short.wav").read_bytes(), capture_output=True, cwd=ROOT,
                          env=fake_ffmpeg_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "ffmpeg is not installed" in proc.stderr.decode(), "FunASR saw no ffmpeg (what this test simulates)"
    assert json.loads(proc.stdout)["key"] == "stdin", "stdout holds only the result"


# ----------------------------------------------------------------------------------------------- logging, doors
def test_transcribe_stderr_has_no_third_party_info_lines(tiny_dir, clips):
    """FunASR logs every checkpoint it loads at INFO on the root logger; only -v shows those lines."""
    argv = ["transcribe", str(clips / "short.wav"), "--model", str(tiny_dir)]
    quiet = subprocess.run([sys.executable, "-m", "sensevoice", *argv], capture_output=True, text=True, cwd=ROOT,
                           timeout=300)
    assert quiet.returncode == 0 and " INFO " not in quiet.stderr, quiet.stderr
    verbose = subprocess.run([sys.executable, "-m", "sensevoice", "-v", *argv], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
    assert verbose.returncode == 0 and " INFO root: Loading pretrained params from" in verbose.stderr, verbose.stderr


def test_our_warnings_show_and_other_libraries_info_does_not(capsys, monkeypatch):
    import logging

    from sensevoice import door

    monkeypatch.delenv(door.MODELSCOPE_LOG_LEVEL_ENV, raising=False)

    def add_arguments(parser):
        pass

    def run_logging(args):
        logging.getLogger("sensevoice.pipeline").warning("ours, a warning")
        logging.getLogger("sensevoice.pipeline").info("ours, info")
        logging.getLogger("model").warning("model.py's warning")
        logging.getLogger("funasr").info("theirs, info")
        logging.info("root, info")
        logging.getLogger("funasr").error("theirs, an error")
        return 0

    module = types.ModuleType("logging_command")
    module.add_arguments, module.run = add_arguments, run_logging
    monkeypatch.setitem(sys.modules, "logging_command", module)
    monkeypatch.setitem(cli.COMMANDS, "logs", cli.Command("log lines", "logging_command", "exit status: 0"))
    code, _, err = run(capsys, "logs")
    assert code == 0
    for shown in ("WARNING sensevoice.pipeline: ours, a warning", "INFO sensevoice.pipeline: ours, info",
                  "WARNING model: model.py's warning", "ERROR funasr: theirs, an error"):
        assert shown in err, err
    assert "theirs, info" not in err and "root, info" not in err
    assert err.count("ours, a warning") == 1  # one handler, however often a door runs in this process
    # ModelScope's own loggers bypass the root logger: its switch, read at its import, holds them back too
    assert os.environ[door.MODELSCOPE_LOG_LEVEL_ENV] == str(logging.ERROR)
    code, _, err = run(capsys, "-v", "logs")
    assert "INFO funasr: theirs, info" in err and "INFO root: root, info" in err
    assert os.environ[door.MODELSCOPE_LOG_LEVEL_ENV] == str(logging.INFO)
    monkeypatch.setenv(door.MODELSCOPE_LOG_LEVEL_ENV, "30")  # the user's own setting wins
    run(capsys, "logs")
    assert os.environ[door.MODELSCOPE_LOG_LEVEL_ENV] == "30"


def python_m_modules() -> list[str]:
    """Every `python -m sensevoice.<module>` entry point: the modules with a __main__ guard, and __main__.py files."""
    modules = []
    for path in sorted((ROOT / "sensevoice").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if path.name == "__main__.py" or 'if __name__ == "__main__"' in source:
            modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return modules


@pytest.mark.parametrize("name", python_m_modules())
def test_every_python_m_entry_point_runs_through_the_shared_door(name):
    """A UsageError as one line and exit 2 (no traceback), logging set up once: module_main or run_command
    (sensevoice.door), or the sensevoice CLI's main, which runs through run_command."""
    source = (ROOT / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    assert any(door in source for door in ("module_main(", "run_command(", "from sensevoice.cli import main",
                                           "from sensevoice.serve.command import main",
                                           "from sensevoice.bench.speed import main")), name
    assert "basicConfig" not in source and "except UsageError" not in source, name


def test_python_m_export_command_reports_a_bad_model_dir_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sensevoice.export_command", "--model", str(tmp_path), "--out",
                           str(tmp_path / "onnx")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == cli.EXIT_USAGE and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == (f"python -m sensevoice.export_command: error: --model {tmp_path}: not a model directory, "
                           f"it lacks ['config.yaml', 'configuration.json', 'am.mvn'] (a model directory holds "
                           f"model.pt, config.yaml, configuration.json, the tokenizer and am.mvn)\n")
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("door", ["transcribe", "export", "batch", "download"])
def test_an_output_folder_that_cannot_be_made_is_a_usage_error_before_any_work(capsys, tiny_dir, clips, tmp_path,
                                                                                door):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = str(blocker / "out")
    argv = {"transcribe": ["transcribe", str(clips / "short.wav"), "--model", str(tiny_dir), "-o", out],
            "export": ["export", "--model", str(tiny_dir), "--out", out],
            "batch": ["batch", str(clips), "--model", str(tiny_dir), "-o", out],
            "download": ["download", "iic/SenseVoiceSmall", "--local-dir", out]}[door]
    code, out_text, err = run(capsys, *argv)
    assert code == cli.EXIT_USAGE and f"'{blocker}' is a file" in err and out_text == "", err
    assert "model:" not in err  # refused before the model was even named, let alone loaded


def test_export_with_an_opset_torch_cannot_write_is_one_error_line_and_exit_1(capsys, tiny_dir, tmp_path,
                                                                              monkeypatch):
    """model.pt is read once (the export loads the model the door checked), and the failed export leaves --out as
    it was: not created where it was absent, its files untouched where it was there."""
    reads = []
    read_checkpoint = sv.read_checkpoint
    monkeypatch.setattr(sv, "read_checkpoint", lambda path: reads.append(path) or read_checkpoint(path))
    code, out, err = run(capsys, "export", "--model", str(tiny_dir), "--out", str(tmp_path / "new" / "onnx"),
                         "--opset", "3")
    assert code == cli.EXIT_FAILED and out == ""
    assert err.rstrip().splitlines()[-1] == (f"sensevoice export: error: the export to {tmp_path / 'new' / 'onnx'} "
                                             "failed (--opset 3): Unsupported onnx_opset_version: 3"), err[-2000:]
    assert reads == [str(tiny_dir / "model.pt")]
    assert sorted(tmp_path.iterdir()) == []
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "config.yaml").write_text("an earlier export's\n")
    assert run(capsys, "export", "--model", str(tiny_dir), "--out", str(earlier), "--opset", "3")[0] == cli.EXIT_FAILED
    assert [(p.name, p.read_text()) for p in earlier.iterdir()] == [("config.yaml", "an earlier export's\n")]


def test_export_of_a_model_pt_that_does_not_match_is_a_usage_error(capsys, mismatched_dir, tmp_path):
    broken = mismatched_dir
    code, out, err = run(capsys, "export", "--model", str(broken), "--out", str(tmp_path / "onnx"))
    assert code == cli.EXIT_USAGE and f"--model '{broken}' cannot be loaded" in err and "embed.weight" in err, err
    assert not (tmp_path / "onnx").exists()


def test_export_into_the_model_directory_is_a_usage_error_before_the_weights_are_read(capsys, tiny_dir, monkeypatch):
    from sensevoice.modeldir import ModelDir

    monkeypatch.setattr(ModelDir, "load", lambda self: pytest.fail("model.pt was read before --out was checked"))
    code, out, err = run(capsys, "export", "--model", str(tiny_dir), "--out", str(tiny_dir))
    assert code == cli.EXIT_USAGE and f"--out {tiny_dir} is the model directory; export into a directory of its own" \
        in err, err
