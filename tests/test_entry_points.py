"""The three entry points on a local directory, offline: AutoModel, ModelScope pipeline, from_pretrained.

Every test asserts the model that was built is this project's class: FunASR silently falls back to its
built-in SenseVoiceSmall when the remote import fails."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import model as sv
from testkit import OFFICIAL_LANGS, ROOT, speechlike
from helpers import load_parts
from sensevoice import modeldir
from sensevoice.modeldir import ModelDir
from sensevoice.richtext import split_rich_text

CLIPS = {name: speechlike(s, seed=i) for i, (name, s) in enumerate((("one", 1.2), ("two", 2.6), ("three", 1.9)))}


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for name, audio in CLIPS.items():
        soundfile.write(folder / f"{name}.wav", audio, 16000)
    return folder


@pytest.fixture(scope="module")
def automodel(tiny_dir):
    return ModelDir(tiny_dir).automodel(device="cpu", ncpu=2)


@pytest.fixture(scope="module")
def expected(tiny_dir, audio_dir):
    """Texts from model.inference directly, the reference for every entry point."""
    model, tokenizer, frontend, _ = load_parts(tiny_dir)
    results, _ = model.inference([str(audio_dir / f"{n}.wav") for n in CLIPS], key=list(CLIPS),
                                 tokenizer=tokenizer, frontend=frontend, language="en")
    return {r["key"]: r["text"] for r in results}


def generate(automodel, data, **options):
    return automodel.generate(input=data, cache={}, language="en", use_itn=False, **options)


def test_automodel_builds_our_class_from_a_relative_remote_code(tiny_dir, monkeypatch):
    from funasr import AutoModel

    monkeypatch.chdir(ROOT)  # remote_code="./model.py" is resolved against the working directory
    automodel = AutoModel(model=str(tiny_dir), trust_remote_code=True, remote_code="./model.py", device="cpu",
                          disable_update=True, ncpu=2)
    assert type(automodel.model) is sv.SenseVoiceSmall


@pytest.mark.parametrize("kind", ["path", "numpy", "tensor", "bytes"])
def test_automodel_single_inputs(automodel, audio_dir, expected, kind):
    path = audio_dir / "two.wav"
    data = {"path": str(path), "numpy": CLIPS["two"], "tensor": torch.from_numpy(CLIPS["two"]),
            "bytes": path.read_bytes()}[kind]
    (result,) = generate(automodel, data)
    assert result["text"] == expected["two"]
    assert result["clean_text"] == split_rich_text(result["text"])["clean_text"]


def test_automodel_list_of_mixed_inputs(automodel, audio_dir, expected):
    data = [str(audio_dir / "one.wav"), CLIPS["two"], (audio_dir / "three.wav").read_bytes()]
    results = generate(automodel, data, batch_size=3)
    assert [r["text"] for r in results] == [expected["one"], expected["two"], expected["three"]]


@pytest.mark.parametrize("listing", ["wav.scp", "list.jsonl"])
def test_automodel_list_files(automodel, audio_dir, expected, tmp_path, listing):
    path = tmp_path / listing
    if listing.endswith(".scp"):
        path.write_text("".join(f"{n} {audio_dir / n}.wav\n" for n in CLIPS))
    else:
        path.write_text("".join(json.dumps({"key": n, "source": f"{audio_dir / n}.wav"}) + "\n" for n in CLIPS))
    results = generate(automodel, str(path))
    assert {r["key"]: r["text"] for r in results} == expected


def test_automodel_http_url(automodel, audio_dir, expected):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(audio_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (result,) = generate(automodel, f"http://127.0.0.1:{server.server_port}/three.wav")
    finally:
        server.shutdown()
    assert result["text"] == expected["three"]


def test_automodel_bad_language_lists_valid_values(automodel, audio_dir):
    with pytest.raises(ValueError, match="expected one of"):
        automodel.generate(input=str(audio_dir / "one.wav"), language="klingon")


def test_modelscope_pipeline(tiny_dir, audio_dir, expected):
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    asr = pipeline(task=Tasks.auto_speech_recognition, model=str(tiny_dir), trust_remote_code=True,
                   remote_code=str(ROOT / "model.py"), device="cpu", disable_update=True, ncpu=2)
    assert type(asr.model.model.model) is sv.SenseVoiceSmall
    (result,) = asr(str(audio_dir / "one.wav"), language="en", use_itn=False)
    assert result["text"] == expected["one"]


def test_from_pretrained_as_in_the_model_card(tiny_dir, audio_dir, expected):
    m, kwargs = sv.SenseVoiceSmall.from_pretrained(model=str(tiny_dir), device="cpu")
    assert type(m) is sv.SenseVoiceSmall and not m.training
    results, _ = m.inference(data_in=str(audio_dir / "three.wav"), language="en", use_itn=False, **kwargs)
    assert results[0]["text"] == expected["three"]


@pytest.mark.official
def test_official_files_through_all_three_entry_points(official_dir, official):
    """Official tokenizer/config/am.mvn + random official-size weights on the official example clips."""
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    clips = [str(official / "example" / f"{lang}.mp3") for lang in OFFICIAL_LANGS]
    m, kwargs = sv.SenseVoiceSmall.from_pretrained(model=str(official_dir), device="cpu")
    reference, _ = m.inference(data_in=clips, key=list(OFFICIAL_LANGS), language="auto", use_itn=True, **kwargs)
    reference = [r["text"] for r in reference]
    assert len(set(reference)) == len(clips)  # five different clips, five different (random-weight) texts

    automodel = ModelDir(official_dir).automodel(device="cpu", ncpu=2)
    assert type(automodel.model) is sv.SenseVoiceSmall
    assert [r["text"] for r in automodel.generate(input=clips, language="auto", use_itn=True)] == reference

    asr = pipeline(task=Tasks.auto_speech_recognition, model=str(official_dir), trust_remote_code=True,
                   remote_code=str(ROOT / "model.py"), device="cpu", disable_update=True, ncpu=2)
    assert type(asr.model.model.model) is sv.SenseVoiceSmall
    assert [asr(c, language="auto", use_itn=True)[0]["text"] for c in clips[:2]] == reference[:2]
