"""Hub names in every door (sensevoice/hub.py): ``--model iic/SenseVoiceSmall`` (ModelScope) and ``--hub hf --model
FunAudioLLM/SenseVoiceSmall`` (Hugging Face) load from each library's own cache with no network call, through the
CLI, the service and the batch job; an uncached name with no hub reachable is one clear line and exit 2, fast;
``sensevoice download`` prepares a folder for a machine without network.

No test reaches a network: the caches are laid out as each library lays them out (and found by the library's own
``local_files_only`` lookup, which the first tests check), every proxy variable points at a closed local port, and
the subprocesses run behind a guard that fails and reports any connection that is not to this machine."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testkit import ROOT
from sensevoice import batchio, cli, hub
from sensevoice.hub import HubSource
from sensevoice.modeldir import ModelDir, ModelDirError

MS_NAME, HF_NAME = hub.OFFICIAL["ms"], hub.OFFICIAL["hf"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a Hugging Face snapshot is named by its commit
CLOSED_PORT = 9  # discard: nothing listens there, a connection is refused at once
PROXY = f"http://127.0.0.1:{CLOSED_PORT}"
NETWORK_CALL = "NETWORK CALL"
# Runs `python -m sensevoice ...` with every connection that is not to this machine (or that goes to the proxy
# port) refused and reported on stderr: a library that catches the error still leaves the report behind.
GUARDED_RUN = f"""
import runpy, socket, sys
LOCAL = ("127.0.0.1", "::1", "localhost", None)
real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
def deny(what):
    print("{NETWORK_CALL}: " + repr(what), file=sys.stderr, flush=True)
    raise OSError("no network in this test: " + repr(what))
def getaddrinfo(host, *args, **kwargs):
    if (host.decode() if isinstance(host, bytes) else host) not in LOCAL:
        deny(host)
    return real_getaddrinfo(host, *args, **kwargs)
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and (address[0] not in LOCAL or address[1] == {CLOSED_PORT}):
        deny(address)
    return real_connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
sys.argv = ["sensevoice", *sys.argv[1:]]
runpy.run_module("sensevoice", run_name="__main__")
"""


# ----------------------------------------------------------------------------------------------- cache layouts
def lay_out_ms(cache: Path, repo: str, files: Path, revision: str = "master") -> Path:
    """modelscope >= 1.38 (modelscope_hub): <cache>/models/<owner>--<name>/snapshots/<revision>/<files>."""
    snapshot = cache / "models" / repo.replace("/", "--") / "snapshots" / revision
    shutil.copytree(files, snapshot)
    return snapshot


def lay_out_ms_legacy(home: Path, repo: str, files: Path) -> Path:
    """What FunASR downloaded with modelscope <= 1.37 by default: ~/.cache/modelscope/hub/models/<owner>/<name>/,
    with its temporary-download folder beside the files."""
    folder = home / ".cache" / "modelscope" / "hub" / "models" / repo
    shutil.copytree(files, folder)
    (folder / "._____temp").mkdir()
    return folder


def lay_out_hf(hub_cache: Path, repo: str, files: Path, commit: str = COMMIT, ref: str = "main") -> Path:
    """huggingface_hub: <HF_HOME>/hub/models--<owner>--<name>/ with blobs/<hash>, refs/<branch> (the commit) and
    snapshots/<commit>/<file> as relative links to the blobs."""
    repo_dir = hub_cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in sorted(files.iterdir()):
        if file.is_file():
            data = file.read_bytes()
            blob = hashlib.sha256(data).hexdigest()
            (repo_dir / "blobs" / blob).write_bytes(data)
            (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob))
    (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """Empty ModelScope and Hugging Face caches under tmp_path, proxies at a closed port, no offline switch; set in
    this process (the libraries' cached settings reset) and returned for subprocesses."""
    import huggingface_hub.constants
    import modelscope_hub.config

    values = {"HOME": str(tmp_path / "home"), "MODELSCOPE_CACHE": str(tmp_path / "modelscope"),
              "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
              **{name: PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                          "all_proxy")}}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", hub.OFFLINE_ENV,
                 "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(modelscope_hub.config, "_default_config", None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", values["HF_HUB_CACHE"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every name lookup or connection of this process that leaves the machine, refused and recorded."""
    calls: list = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost", None):
            calls.append(host)
            raise OSError(f"no network in this test: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            calls.append(address)
            raise OSError(f"no network in this test: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return calls


def test_the_layouts_are_the_ones_each_library_reads(env, tiny_dir, tmp_path):
    """The fake caches below are found by the libraries' own offline lookups (FunASR's ModelScope call included)."""
    from huggingface_hub import scan_cache_dir, snapshot_download as hf_snapshot_download
    from modelscope.hub.snapshot_download import snapshot_download as ms_snapshot_download

    ms = lay_out_ms(Path(env["MODELSCOPE_CACHE"]), MS_NAME, tiny_dir)
    assert Path(ms_snapshot_download(MS_NAME, local_files_only=True)) == ms
    assert Path(ms_snapshot_download(MS_NAME, revision="master", local_files_only=True)) == ms
    hf = lay_out_hf(Path(env["HF_HUB_CACHE"]), HF_NAME, tiny_dir)
    assert Path(hf_snapshot_download(HF_NAME, local_files_only=True)) == hf
    scanned = scan_cache_dir(env["HF_HUB_CACHE"])
    assert not scanned.warnings, scanned.warnings  # no corrupted entries by huggingface_hub's own standard
    (repo,) = scanned.repos
    assert repo.repo_id == HF_NAME and {r.commit_hash for r in repo.revisions} == {COMMIT}
    assert {f.file_name for f in next(iter(repo.revisions)).files} >= {"model.pt", "configuration.json"}


def test_legacy_modelscope_layout_is_found_by_modelscope(env, tiny_dir, monkeypatch):
    from modelscope.hub.snapshot_download import snapshot_download as ms_snapshot_download

    monkeypatch.delenv("MODELSCOPE_CACHE")
    legacy = lay_out_ms_legacy(Path(env["HOME"]), MS_NAME, tiny_dir)
    assert Path(ms_snapshot_download(MS_NAME, local_files_only=True)) == legacy


# ----------------------------------------------------------------------------------------------- ModelDir
def test_a_cached_modelscope_name_is_a_model_dir_with_no_network_call(env, tiny_dir, no_network):
    snapshot = lay_out_ms(Path(env["MODELSCOPE_CACHE"]), MS_NAME, tiny_dir)
    model_dir = ModelDir.resolve(MS_NAME)
    assert model_dir.path == snapshot.resolve() and model_dir.weights.is_file()
    assert model_dir.source == HubSource(hub="ms", name=MS_NAME, revision=None, commit=None)
    assert no_network == []


def test_a_cached_hugging_face_name_records_its_commit(env, tiny_dir, no_network):
    snapshot = lay_out_hf(Path(env["HF_HUB_CACHE"]), HF_NAME, tiny_dir)
    model_dir = ModelDir(HF_NAME, hub="hf")
    assert model_dir.path == snapshot and model_dir.source == HubSource("hf", HF_NAME, None, COMMIT)
    assert ModelDir(HF_NAME, hub="hf", revision=COMMIT).source.commit == COMMIT
    assert str(model_dir.source) == f"{HF_NAME}@{COMMIT} (Hugging Face)"
    assert no_network == []


def test_what_funasr_downloaded_with_an_older_modelscope_is_found(env, tiny_dir, no_network, monkeypatch):
    monkeypatch.delenv("MODELSCOPE_CACHE")
    legacy = lay_out_ms_legacy(Path(env["HOME"]), MS_NAME, tiny_dir)
    assert ModelDir.resolve(MS_NAME).path == legacy and no_network == []


def test_a_folder_of_that_name_wins_as_in_funasr(env, tiny_dir, tmp_path, monkeypatch, no_network):
    shutil.copytree(tiny_dir, tmp_path / "work" / MS_NAME)
    monkeypatch.chdir(tmp_path / "work")
    model_dir = ModelDir.resolve(MS_NAME)
    assert model_dir.path == (tmp_path / "work" / MS_NAME).resolve() and model_dir.source is None


def test_a_cached_copy_without_weights_is_not_used(env, tiny_dir, tmp_path, monkeypatch):
    shutil.copytree(tiny_dir, tmp_path / "no_weights", ignore=shutil.ignore_patterns("model.pt"))
    lay_out_ms(Path(env["MODELSCOPE_CACHE"]), MS_NAME, tmp_path / "no_weights")
    monkeypatch.setenv(hub.OFFLINE_ENV, "1")
    with pytest.raises(ModelDirError, match=r"--model iic/SenseVoiceSmall: only an incomplete copy in the ModelScope "
                                            r"cache \(.*master, lacking \['model.pt'\]\) and the hub is off: "
                                            r"SENSEVOICE_OFFLINE=1\. On a connected machine"):
        ModelDir.resolve(MS_NAME)


def test_a_download_is_checked_before_use(env, tiny_dir, tmp_path, monkeypatch):
    """A hub that answers but whose download lacks a file of the release: an error, not a model without weights."""
    calls = []

    def fetch(repo, hub_, revision, local_dir):
        calls.append((repo, hub_, revision, local_dir))
        partial = tmp_path / "partial"
        shutil.copytree(tiny_dir, partial, ignore=shutil.ignore_patterns("am.mvn"), dirs_exist_ok=True)
        return partial

    monkeypatch.setattr(hub, "unreachable_reason", lambda url, timeout_s=hub.PROBE_TIMEOUT_S: None)
    monkeypatch.setattr(hub, "fetch", fetch)
    with pytest.raises(ModelDirError, match=r"iic/SenseVoiceSmall: the download \(.*partial\) lacks \['am.mvn'\]"):
        ModelDir.resolve(MS_NAME, revision="v2.0.4")
    assert calls == [(MS_NAME, "ms", "v2.0.4", None)]


def test_funasr_short_names_are_its_own_maps():
    from funasr.download import name_maps_from_hub as maps

    assert hub.funasr_name_maps() == {"ms": maps.name_maps_ms, "hf": maps.name_maps_hf}
    assert hub.repo_id("fsmn-vad", "ms") == "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"
    assert hub.repo_id("fsmn-vad", "hf") == maps.name_maps_hf["fsmn-vad"]
    assert hub.repo_id(MS_NAME, "ms") == MS_NAME and hub.is_hub_name(HF_NAME)
    for text in ("/abs/path", "a/b/c", "nodir", "./x", "-x/y"):
        assert not hub.is_hub_name(text), text
    with pytest.raises(hub.HubError, match="hub 'xx': expected one of ms, hf"):
        hub.repo_id(MS_NAME, "xx")


def test_the_reachability_probe(tmp_path):
    """Any HTTP answer is reachable (a 404 too); a refused connection is not, and says why at once."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
                mp.delenv(name, raising=False)
            assert hub.unreachable_reason(f"http://127.0.0.1:{server.server_port}/") is None
            start = time.monotonic()
            assert "refused" in hub.unreachable_reason(f"http://127.0.0.1:{CLOSED_PORT}/").lower()
            assert time.monotonic() - start < 2
            with socket.socket() as silent:  # accepts connections (the backlog) but never answers
                silent.bind(("127.0.0.1", 0))
                silent.listen()
                start = time.monotonic()
                reason = hub.unreachable_reason(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout_s=0.5)
                assert time.monotonic() - start < 1.5 and ("timed out" in reason or "no answer" in reason), reason
    finally:
        server.shutdown()


def test_the_probe_gives_up_on_a_name_lookup_that_hangs(monkeypatch):
    """A socket timeout does not bound getaddrinfo (a DNS server that cannot be reached is retried for tens of
    seconds): the probe stops waiting after its timeout all the same."""
    monkeypatch.setattr(hub.urllib.request, "urlopen", lambda *args, **kwargs: time.sleep(2) or io.BytesIO())
    start = time.monotonic()
    assert hub.unreachable_reason("https://modelscope.cn", timeout_s=0.3) == "no answer within 0.3 s"
    assert time.monotonic() - start < 1.5


# ----------------------------------------------------------------------------------------------- doors
def guarded(env: dict[str, str], *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", GUARDED_RUN, *argv], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def transcript(capsys, model: Path, wav: Path) -> dict:
    assert cli.main(["transcribe", str(wav), "--model", str(model), "-f", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def lay_out(env: dict[str, str], hub_name: str, files: Path) -> tuple[Path, list[str]]:
    """The files in the cache of ``hub_name``, and the arguments that name them."""
    if hub_name == "ms":
        return lay_out_ms(Path(env["MODELSCOPE_CACHE"]), MS_NAME, files), ["--model", MS_NAME]
    return lay_out_hf(Path(env["HF_HUB_CACHE"]), HF_NAME, files), ["--hub", "hf", "--model", HF_NAME]


@pytest.mark.slow  # a fresh process imports torch and FunASR: ~10 s idle, ~40 s on 2 busy cores
def test_transcribe_a_cached_hub_name_in_a_fresh_process_offline(env, tiny_dir, wav_file, capsys):
    """The whole door as a user runs it: the cache found from MODELSCOPE_CACHE alone, no connection attempted."""
    snapshot, argv = lay_out(env, "ms", tiny_dir)
    expected = transcript(capsys, tiny_dir, wav_file)
    proc = guarded(env, "transcribe", str(wav_file), *argv, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert NETWORK_CALL not in proc.stderr
    assert f"model: {MS_NAME}@" in proc.stderr and f"from {snapshot.resolve()}\n" in proc.stderr
    assert json.loads(proc.stdout)["text"] == expected["text"]


@pytest.mark.parametrize("hub_name", ["ms", "hf"])
def test_each_cache_is_found_from_its_environment_in_a_fresh_process(env, tiny_dir, hub_name):
    snapshot, argv = lay_out(env, hub_name, tiny_dir)
    code = f"from sensevoice import hub; print(hub.snapshot({argv[-1]!r}, {hub_name!r})[0])"
    proc = subprocess.run([sys.executable, "-c", GUARDED_RUN.replace("runpy.run_module", "exec(sys.argv[1]) #"),
                           code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0 and NETWORK_CALL not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == str(snapshot)


@pytest.mark.parametrize("hub_name", ["ms", "hf"])
def test_transcribe_a_cached_hub_name_offline(env, tiny_dir, wav_file, capsys, no_network, hub_name):
    snapshot, argv = lay_out(env, hub_name, tiny_dir)
    expected = transcript(capsys, tiny_dir, wav_file)
    assert cli.main(["transcribe", str(wav_file), *argv, "-f", "json"]) == 0
    out, err = capsys.readouterr()
    name = MS_NAME if hub_name == "ms" else HF_NAME
    assert f"model: {name}@" in err and f"from {snapshot.resolve()}\n" in err
    assert json.loads(out)["text"] == expected["text"]
    assert no_network == []


def test_the_service_door_with_a_cached_hub_name_offline(env, tiny_dir, wav_file, capsys, no_network):
    """`sensevoice serve --model iic/SenseVoiceSmall`: its arguments and resolver, then the app it serves."""
    from fastapi.testclient import TestClient

    from sensevoice.pipeline import Transcriber
    from sensevoice.serve import command
    from sensevoice.serve.app import ServeConfig, create_app
    from sensevoice.serve.batcher import Batcher

    snapshot, argv = lay_out(env, "ms", tiny_dir)
    expected = transcript(capsys, tiny_dir, wav_file)
    args = cli.parse(cli.build_parser("serve"), ["serve", *argv])
    model_dir = command.model_dir_from_args(args)  # what `serve` resolves --model with
    assert model_dir.path == snapshot.resolve() and model_dir.source.name == MS_NAME
    transcriber = Transcriber(model_dir, vad=args.vad, threads=1)
    with TestClient(create_app(Batcher(transcriber, max_wait_ms=2), ServeConfig(use_vad=True))) as client:
        reply = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_file.read_bytes())})
    assert reply.status_code == 200 and reply.json()["text"] == expected["clean_text"]  # OpenAI's: clean text
    assert no_network == []


@pytest.mark.slow  # a local Ray in a fresh process: about a minute on 2 busy cores
def test_batch_a_cached_hub_name_offline(env, tiny_dir, wav_file, tmp_path, capsys):
    pytest.importorskip("ray", reason="needs the batch extra: pip install -c constraints.txt '.[batch]'")
    snapshot, argv = lay_out(env, "ms", tiny_dir)
    expected = transcript(capsys, tiny_dir, wav_file)
    (tmp_path / "in").mkdir()
    shutil.copy(wav_file, tmp_path / "in" / "a.wav")
    start = time.monotonic()
    # Not behind the guard: Ray's processes talk over this machine's own address. The proxies point at a closed
    # port, so a hub call fails, and ModelScope retries for ~25 s before it does.
    proc = subprocess.run([sys.executable, "-m", "sensevoice", "batch", str(tmp_path / "in"), "-o",
                           str(tmp_path / "out"), *argv, "--actors", "1"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr

    (row,) = batchio.read_output(tmp_path / "out")
    assert row["text"] == expected["text"] and row["model"].startswith(f"{MS_NAME}@")  # the model's id, from the hub
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["settings"]["model"] == str(snapshot.resolve())
    assert time.monotonic() - start < 300


def test_an_uncached_name_with_no_hub_reachable_is_one_line_and_exit_2_fast(env, wav_file):
    """In a fresh process, as a user meets it: the probe is the one connection tried, refused at once."""
    start = time.monotonic()
    proc = guarded(env, "transcribe", str(wav_file), "--model", MS_NAME, timeout=60)
    elapsed = time.monotonic() - start
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert errors == [f"sensevoice transcribe: error: --model {MS_NAME}: not in the ModelScope cache "
                      f"({env['MODELSCOPE_CACHE']}) and ModelScope (https://modelscope.cn) cannot be reached: "
                      f"{errors[0].split('cannot be reached: ')[1].split('. On a')[0]}. On a connected machine run "
                      f"`sensevoice download {MS_NAME} --local-dir SenseVoiceSmall`, copy that folder here and pass "
                      "--model SenseVoiceSmall (or copy that machine's cache here)"], proc.stderr
    assert proc.stderr.count(NETWORK_CALL) == 1, proc.stderr
    assert elapsed < 30, f"{elapsed:.1f} s"


@pytest.mark.parametrize("argv, extra_env, needles", [
    (["--hub", "hf", "--model", HF_NAME], {"HF_HUB_OFFLINE": "1"}, ["not in the Hugging Face cache",
                                                                    "HF_HUB_OFFLINE=1", "--hub hf"]),
    (["--model", MS_NAME], {hub.OFFLINE_ENV: "1"}, ["not in the ModelScope cache", "SENSEVOICE_OFFLINE=1"]),
    (["--hub", "hf", "--model", MS_NAME], {}, ["on Hugging Face the official release is FunAudioLLM/SenseVoiceSmall",
                                               f"sensevoice download {HF_NAME} --hub hf"]),
])
def test_uncached_names_offline(env, wav_file, capsys, monkeypatch, no_network, argv, extra_env, needles):
    import huggingface_hub.constants

    for name, value in extra_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", "HF_HUB_OFFLINE" in extra_env)
    start = time.monotonic()
    assert cli.main(["transcribe", str(wav_file), *argv]) == cli.EXIT_USAGE
    assert time.monotonic() - start < 30
    out, err = capsys.readouterr()
    (error,) = [line for line in err.splitlines() if "error" in line]
    assert out == "" and error.startswith("sensevoice transcribe: error: --model ")
    assert all(needle in error for needle in needles), error
    # an offline switch: not even the probe; else the probe is the one attempt
    assert len(no_network) == (0 if extra_env else 1), no_network


def test_argument_spelling_is_checked_before_any_lookup(capsys):
    code = cli.main(["transcribe", "a.wav", "--model", "no/such/dir"])
    assert code == cli.EXIT_USAGE
    assert ("argument --model: no/such/dir: not a directory, nor a model name on a hub (owner/name, e.g. "
            "iic/SenseVoiceSmall)") in capsys.readouterr().err
    assert cli.main(["transcribe", "a.wav", "--model", MS_NAME, "--hub", "modelscope"]) == cli.EXIT_USAGE
    assert "argument --hub: invalid choice: 'modelscope'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["transcribe", "serve", "batch", "export", "bench", "demo"])
def test_every_door_takes_a_hub_name(command, capsys):
    if command == "demo":
        from sensevoice import demo

        with pytest.raises(SystemExit):
            demo.main(["--help"])
    else:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert "--model DIR|NAME" in out and "--hub {ms,hf}" in out and "--revision REV" in out


@pytest.mark.parametrize("command", ["transcribe", "serve", "batch", "export", "bench", "demo"])
def test_every_door_resolves_through_the_hub(env, wav_file, tmp_path, capsys, monkeypatch, no_network, command):
    """Each door sends a hub name to the one resolver: uncached and offline, each says so in the same words."""
    monkeypatch.setenv(hub.OFFLINE_ENV, "1")
    model = ["--model", MS_NAME]
    argv = {"transcribe": [str(wav_file), *model], "serve": [*model, "--port", "0"],
            "batch": [str(wav_file.parent), "-o", str(tmp_path / "out"), *model],
            "export": [*model, "--out", str(tmp_path / "onnx")],
            "bench": [*model, "--work", str(tmp_path / "work"), "--backends", "funasr"], "demo": model}[command]
    if command == "demo":
        from sensevoice import demo

        code = demo.main(argv)
    else:
        code = cli.main([command, *argv])
    assert code == 2
    assert f"--model {MS_NAME}: not in the ModelScope cache ({env['MODELSCOPE_CACHE']}) and the hub is off: " \
           f"SENSEVOICE_OFFLINE=1. On a connected machine run `sensevoice download {MS_NAME} --local-dir " \
           "SenseVoiceSmall`" in capsys.readouterr().err
    assert no_network == []


# ----------------------------------------------------------------------------------------------- download
def download(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["download", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("hub_name", ["ms", "hf"])
def test_download_to_a_folder_from_the_cache_offline(env, tiny_dir, tmp_path, capsys, no_network, monkeypatch,
                                                     hub_name):
    if hub_name == "ms":  # the layout FunASR left with an older modelscope, bookkeeping folder included
        monkeypatch.delenv("MODELSCOPE_CACHE")
        lay_out_ms_legacy(Path(env["HOME"]), MS_NAME, tiny_dir)
        argv = [MS_NAME]
    else:
        lay_out_hf(Path(env["HF_HUB_CACHE"]), HF_NAME, tiny_dir)
        argv = [HF_NAME, "--hub", "hf"]
    out = tmp_path / "deploy" / "SenseVoiceSmall"
    code, stdout, stderr = download(capsys, *argv, "--local-dir", str(out))
    assert code == 0, stderr
    assert stdout == f"{out.resolve()}\n" and "model.pt loads strictly" in stderr and no_network == []
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in tiny_dir.iterdir())
    assert not any(p.is_symlink() for p in out.iterdir())  # plain files, also from Hugging Face's linked snapshot
    assert (out / "model.pt").read_bytes() == (tiny_dir / "model.pt").read_bytes()
    assert ModelDir(out).source is None  # a folder now: it loads with --model DIR anywhere


def test_download_into_the_cache_prints_the_cached_folder(env, tiny_dir, capsys, no_network):
    snapshot, _ = lay_out(env, "hf", tiny_dir)
    code, stdout, stderr = download(capsys, HF_NAME, "--hub", "hf")
    assert code == 0 and stdout == f"{snapshot}\n" and f"{HF_NAME}@{COMMIT} (Hugging Face)" in stderr, stderr


class FakeHuggingFace:
    """A Hugging Face endpoint on 127.0.0.1 (``HF_ENDPOINT``) serving one repository at one commit, with the routes
    huggingface_hub's snapshot_download reads: revision info, the file tree, and resolve (HEAD, then GET)."""

    def __init__(self, repo: str, files: Path, commit: str = COMMIT):
        import http.server
        import threading

        blobs = {f.name: f.read_bytes() for f in sorted(files.iterdir()) if f.is_file()}
        self.requests: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def answer(self, body: bytes, headers: dict[str, str], send_body: bool):
                self.send_response(200)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def route(self, send_body: bool):
                fake.requests.append(f"{self.command} {self.path}")
                path = self.path.split("?")[0]
                if path.startswith(f"/api/models/{repo}/revision/"):
                    info = {"id": repo, "sha": commit, "siblings": [{"rfilename": name} for name in blobs]}
                    return self.answer(json.dumps(info).encode(), {"Content-Type": "application/json"}, send_body)
                if path.startswith(f"/api/models/{repo}/tree/"):
                    tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in blobs.items()]
                    return self.answer(json.dumps(tree).encode(), {"Content-Type": "application/json"}, send_body)
                prefix = f"/{repo}/resolve/{commit}/"
                if path.startswith(prefix) and path[len(prefix):] in blobs:
                    data = blobs[path[len(prefix):]]
                    return self.answer(data, {"X-Repo-Commit": commit,
                                              "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, send_body)
                self.send_error(404)

            def do_GET(self):
                self.route(send_body=True)

            def do_HEAD(self):
                self.route(send_body=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow  # the download's strict load in a fresh process: ~40 s on 2 busy cores
def test_a_download_fills_the_library_s_cache_and_is_found_there_offline(env, tiny_dir, no_network):
    """`sensevoice download --hub hf` through huggingface_hub itself (a fresh process, HF_ENDPOINT at a local fake):
    progress on stderr, the release checked and loaded strictly, the snapshot in the cache; then the same name
    resolves from that cache with the hub gone."""
    fake = FakeHuggingFace(HF_NAME, tiny_dir)
    try:
        online = {**env, "HF_ENDPOINT": fake.url, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        proc = guarded(online, "download", HF_NAME, "--hub", "hf")
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr
    snapshot = Path(env["HF_HUB_CACHE"]) / f"models--{HF_NAME.replace('/', '--')}" / "snapshots" / COMMIT
    assert proc.stdout == f"{snapshot}\n"
    assert f"downloading {HF_NAME} from Hugging Face ({fake.url})" in proc.stderr
    assert "model.pt loads strictly" in proc.stderr and "100%" in proc.stderr  # huggingface_hub's progress bar
    assert any(r.startswith(f"GET /{HF_NAME}/resolve/{COMMIT}/model.pt") for r in fake.requests)
    assert NETWORK_CALL not in proc.stderr  # only 127.0.0.1 was reached

    model_dir = ModelDir(HF_NAME, hub="hf")
    assert model_dir.path == snapshot and model_dir.source == HubSource("hf", HF_NAME, None, COMMIT)
    assert (snapshot / "model.pt").read_bytes() == (tiny_dir / "model.pt").read_bytes() and no_network == []


def test_download_refuses_a_checkpoint_that_does_not_load(env, mismatched_dir, capsys, no_network):
    lay_out_ms(Path(env["MODELSCOPE_CACHE"]), MS_NAME, mismatched_dir)
    code, stdout, stderr = download(capsys, MS_NAME)
    assert code == 1 and stdout == "" and "does not match the model: missing ['embed.weight']" in stderr, stderr


def test_download_of_the_vad_by_funasr_s_short_name(env, tmp_path, capsys, no_network):
    from sensevoice.vad import fsmn_vad_dir

    lay_out_ms(Path(env["MODELSCOPE_CACHE"]), "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch", fsmn_vad_dir())
    code, _, stderr = download(capsys, "fsmn-vad", "--local-dir", str(tmp_path / "vad"))
    assert code == 0 and "FsmnVADStreaming: files complete" in stderr, stderr
    assert (tmp_path / "vad" / "model.pt").read_bytes() == (fsmn_vad_dir() / "model.pt").read_bytes()


def test_download_an_uncached_name_offline(env, tmp_path, capsys, no_network):
    code, _, stderr = download(capsys, MS_NAME, "--local-dir", str(tmp_path / "x"))
    assert code == 2 and "ModelScope (https://modelscope.cn) cannot be reached" in stderr
    assert not (tmp_path / "x").exists() and len(no_network) == 1


# ----------------------------------------------------------------------------------------------- VAD
def test_vad_names(env, no_network, monkeypatch):
    from sensevoice.vad import fsmn_vad_dir, resolve_vad_model

    assert resolve_vad_model("fsmn-vad", hub="hf") == str(fsmn_vad_dir())  # the bundled copy, whatever the hub
    snapshot = lay_out_ms(Path(env["MODELSCOPE_CACHE"]), "someone/fine-tuned-vad", fsmn_vad_dir())
    assert resolve_vad_model("someone/fine-tuned-vad") == str(snapshot)
    monkeypatch.setenv(hub.OFFLINE_ENV, "1")
    with pytest.raises(ValueError, match="vad_model=someone/other-vad: not in the ModelScope cache"):
        resolve_vad_model("someone/other-vad")
    assert no_network == []
