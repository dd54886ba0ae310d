"""Which model answers: ``ModelDir.identity`` (the embedded demo, the official architecture, a custom model; the
weights' sha256; the hub's name and revision when a hub resolved it), and every front door naming it the same way:
the banners of the CLI's transcribe and serve, the demo command, /health, /v1/models, verbose_json, a batch job's manifest and banner."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sensevoice import batch, cli, demo, modeldir
from sensevoice.hub import HubSource
from sensevoice.modeldir import DEMO_DIR, ModelDir, file_sha256
from sensevoice.pipeline import Transcriber
from sensevoice.serve.app import ServeConfig, create_app
from sensevoice.serve.batcher import Batcher


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hash_cache(tmp_path, monkeypatch) -> Path:
    """A fresh weights-hash cache for the test (the default is the user's ~/.cache/sensevoice)."""
    monkeypatch.setenv("SENSEVOICE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / modeldir.HASH_CACHE


def official_layout(official: Path, dst: Path, weights: bytes = b"official-size weights stand-in") -> Path:
    """The official release's files (config, descriptor, tokenizer, CMVN) around a stand-in model.pt: the identity
    reads the structure and hashes the weights' bytes, it never loads them."""
    src = official / "SenseVoiceSmall"
    dst.mkdir(parents=True)
    for name in ("config.yaml", "configuration.json", "chn_jpn_yue_eng_ko_spectok.bpe.model", "am.mvn"):
        shutil.copyfile(src / name, dst / name)
    (dst / "model.pt").write_bytes(weights)
    return dst


# ----------------------------------------------------------------------------------------------- kinds
def test_the_demo_is_named_as_the_demo_wherever_its_weights_lie(tmp_path, hash_cache):
    identity = ModelDir(DEMO_DIR).identity
    sha = sha256(DEMO_DIR / "model.pt")
    assert identity.kind == "demo" and identity.is_demo and identity.weights_sha256 == sha
    assert identity.id == f"sensevoice-demo@{sha[:12]}"
    assert "synthetic" in identity.description and f"--model {modeldir.OFFICIAL_HUB_NAME}" in identity.description
    copy = ModelDir(DEMO_DIR).copy_to(tmp_path / "elsewhere", weights=True)
    assert copy.identity == identity  # a copy of the demo is still the demo


def test_official_by_structure_and_custom_otherwise(official, tmp_path, tiny_dir, hash_cache):
    folder = official_layout(official, tmp_path / "SenseVoiceSmall")
    identity = ModelDir(folder).identity
    sha = sha256(folder / "model.pt")
    assert identity.kind == "official" and identity.id == f"sensevoice-small@{sha[:12]}"
    assert "official architecture and tokenizer" in identity.description and sha[:12] in identity.description
    assert identity.source is None and not identity.is_demo

    other_tokenizer = official_layout(official, tmp_path / "retokenized")
    (other_tokenizer / "chn_jpn_yue_eng_ko_spectok.bpe.model").write_bytes(b"another tokenizer")
    smaller = official_layout(official, tmp_path / "smaller")
    config = modeldir.read_config(smaller / "config.yaml")
    config["encoder_conf"]["num_blocks"] = 12
    modeldir.write_config(config, smaller / "config.yaml")
    for folder in (other_tokenizer, smaller, tiny_dir):
        custom = ModelDir(folder).identity
        assert custom.kind == "custom" and custom.id == f"custom:{folder.name}@{sha256(folder / 'model.pt')[:12]}"
    assert "d 64, 2 + 1 blocks" in ModelDir(tiny_dir).identity.description


def identity_from_hub(folder: Path, *source):
    """The identity of ``folder`` as if a hub had resolved it (ModelDir.resolve sets ``source`` so)."""
    model_dir = ModelDir(folder)
    model_dir.source = HubSource(*source)
    return model_dir.identity


def test_a_hub_source_names_the_model_by_hub_name_and_revision(official, tmp_path, hash_cache):
    folder = official_layout(official, tmp_path / "hub")
    released = identity_from_hub(folder, "ms", "iic/SenseVoiceSmall", "v2.0.4", None)
    assert (released.kind, released.id) == ("official", "iic/SenseVoiceSmall@v2.0.4")
    assert released.description.startswith("the official SenseVoiceSmall release, iic/SenseVoiceSmall at revision "
                                           "v2.0.4 from ModelScope")
    assert released.as_dict()["source"] == {"hub": "ms", "name": "iic/SenseVoiceSmall", "revision": "v2.0.4",
                                            "commit": None}
    mirrored = identity_from_hub(folder, "hf", "FunAudioLLM/SenseVoiceSmall", "main", "3eb3b4e")
    assert mirrored.id == "FunAudioLLM/SenseVoiceSmall@3eb3b4e" and "official SenseVoiceSmall release" in str(mirrored)
    unpinned = identity_from_hub(folder, "hf", "someone/finetune", None, None)
    assert unpinned.id == f"someone/finetune@{sha256(folder / 'model.pt')[:12]}"  # no revision: the hash says which


def test_the_official_tokenizer_hash_is_the_released_file(official):
    released = official / "SenseVoiceSmall" / "chn_jpn_yue_eng_ko_spectok.bpe.model"
    assert sha256(released) == modeldir.OFFICIAL_TOKENIZER_SHA256
    listed = dict(line.split()[::-1] for line in (official / "SHA256SUMS").read_text().splitlines())
    assert listed[f"SenseVoiceSmall/{released.name}"] == modeldir.OFFICIAL_TOKENIZER_SHA256


def test_weights_hash_is_sha256sum_and_computed_once_per_file_version(tmp_path):
    weights, cache = tmp_path / "model.pt", tmp_path / "cache" / "hashes.json"
    weights.write_bytes(b"a" * 3_000_000)
    assert file_sha256(weights, cache) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    entry = json.loads(cache.read_text())[str(weights)]
    assert entry["size"] == 3_000_000 and entry["mtime_ns"] == weights.stat().st_mtime_ns
    planted = {str(weights): {**entry, "sha256": "f" * 64}}  # the cache is what answers while the file stands
    cache.write_text(json.dumps(planted))
    assert file_sha256(weights, cache) == "f" * 64
    weights.write_bytes(b"b" * 3_000_000)
    os.utime(weights, ns=(entry["mtime_ns"] + 10**9, entry["mtime_ns"] + 10**9))
    assert file_sha256(weights, cache) == hashlib.sha256(b"b" * 3_000_000).hexdigest()  # rewritten: hashed again
    gone = tmp_path / "deleted.pt"
    gone.write_bytes(b"c")
    file_sha256(gone, cache)
    gone.unlink()
    (tmp_path / "other.pt").write_bytes(b"d")
    file_sha256(tmp_path / "other.pt", cache)  # the next write drops the deleted file's entry
    assert str(gone) not in json.loads(cache.read_text()) and str(weights) in json.loads(cache.read_text())
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert file_sha256(weights, blocked / "hashes.json") == hashlib.sha256(b"b" * 3_000_000).hexdigest()


# ----------------------------------------------------------------------------------------------- doors
def test_every_door_names_the_same_model(tiny_dir, wav_file, tmp_path, capsys, monkeypatch):
    identity = ModelDir(tiny_dir).identity
    banner = f"model: {identity}; from {tiny_dir.resolve()}"

    assert cli.main(["transcribe", str(wav_file), "--model", str(tiny_dir), "--no-vad"]) == cli.EXIT_OK
    assert banner in capsys.readouterr().err.splitlines()[0]

    assert demo.main(["--model", str(tiny_dir), str(wav_file)]) == 0
    assert banner in capsys.readouterr().out.splitlines()[0]

    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: None)  # loaded, never served
    assert cli.main(["serve", "--model", str(tiny_dir), "--port", "0", "--no-vad", "--no-streaming"]) == 1
    assert f"sensevoice serve: {banner}" in capsys.readouterr().err

    app = create_app(Batcher(Transcriber(tiny_dir, vad=False, threads=2), max_wait_ms=2), ServeConfig())
    with TestClient(app) as client:
        health = client.get("/health").json()
        [listed] = client.get("/v1/models").json()["data"]
        response = client.post("/v1/audio/transcriptions", files={"file": (wav_file.name, wav_file.read_bytes())},
                               data={"model": identity.id, "response_format": "verbose_json"})
    assert response.status_code == 200, response.text
    verbose = response.json()
    assert health["model"] == listed["id"] == verbose["model"] == identity.id
    assert health["model_identity"] == verbose["model_identity"] == identity.as_dict()
    assert {k: listed[k] for k in identity.as_dict()} == identity.as_dict()

    # A batch job whose one input is already done: the manifest and the banner, and no Ray to start
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "part-earlier-00001.jsonl").write_text(json.dumps({"key": wav_file.stem}) + "\n")
    assert cli.main(["batch", str(wav_file.parent), "-o", str(out), "--model", str(tiny_dir)]) == 0
    assert f"sensevoice batch: {banner}" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["model_id"] == manifest["model"]["id"] == identity.id
    assert manifest["model"] == identity.as_dict()


def test_a_batch_rerun_with_other_weights_is_refused(tiny_dir, biased_dir, wav_file, tmp_path, capsys):
    """The same folder path with other weights: the model's id differs, so the output folder refuses the rerun."""
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "part-earlier-00001.jsonl").write_text(json.dumps({"key": wav_file.stem}) + "\n")
    assert cli.main(["batch", str(wav_file.parent), "-o", str(out), "--model", str(model)]) == 0
    shutil.copyfile(biased_dir / "model.pt", model / "model.pt")
    assert cli.main(["batch", str(wav_file.parent), "-o", str(out), "--model", str(model)]) == cli.EXIT_USAGE
    assert "model_id: 'custom:model@" in capsys.readouterr().err
