"""The embedded demo model: a complete, small model directory that works through all three entry points."""

from __future__ import annotations

import json

import pytest

import model as sv
from testkit import ROOT
from sensevoice import modeldir
from sensevoice.modeldir import ModelDir

DEMO = modeldir.DEMO_DIR
EXAMPLES = sorted((ROOT / "examples").glob("*.flac"))


@pytest.fixture(scope="module")
def automodel():
    return ModelDir(DEMO).automodel(ncpu=2)


def test_demo_directory_is_complete_and_small():
    descriptor = json.loads((DEMO / "configuration.json").read_text())
    tokenizer = descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    for name in ("model.py", "config.yaml", "configuration.json", "am.mvn", "model.pt", tokenizer):
        assert (DEMO / name).is_file(), name
    assert (DEMO / "model.pt").stat().st_size <= 50 * 2**20
    # a link, not a second copy: the folder loads on its own (FunASR imports its model.py) and never goes stale;
    # ModelDir.copy_to writes a real file where a copy of the folder must stand alone
    assert (DEMO / "model.py").is_symlink() and (DEMO / "model.py").resolve() == ROOT / "model.py"


def test_examples_are_small_and_labelled():
    assert len(EXAMPLES) == 5 and all(p.stat().st_size < 100_000 for p in EXAMPLES)
    labels = [json.loads(line) for line in (ROOT / "examples" / "labels.jsonl").read_text().splitlines()]
    assert {row["file"] for row in labels} == {p.name for p in EXAMPLES}


def test_three_entry_points_agree_on_the_examples(automodel):
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    files = [str(p) for p in EXAMPLES]
    via_automodel = [automodel.generate(input=f, language="auto", use_itn=True)[0]["text"] for f in files]
    m, kwargs = sv.SenseVoiceSmall.from_pretrained(model=str(DEMO), device="cpu", ncpu=2)
    via_card, _ = m.inference(data_in=files, language="auto", use_itn=True, **kwargs)
    asr = pipeline(task=Tasks.auto_speech_recognition, model=str(DEMO), trust_remote_code=True,
                   remote_code=str(ROOT / "model.py"), device="cpu", disable_update=True, ncpu=2)
    assert type(asr.model.model.model) is sv.SenseVoiceSmall
    via_pipeline = [asr(f, language="auto", use_itn=True)[0]["text"] for f in files]
    assert via_automodel == [r["text"] for r in via_card] == via_pipeline
    assert all(text.startswith("<|") for text in via_automodel), "the demo model emits its rich tags"


def test_automodel_with_offline_vad(automodel):
    from funasr import AutoModel

    from sensevoice.vad import fsmn_vad_dir

    with_vad = AutoModel(model=str(DEMO), trust_remote_code=True, remote_code=str(ROOT / "model.py"),
                         vad_model=fsmn_vad_dir(), vad_kwargs={"max_single_segment_time": 30000}, device="cpu",
                         disable_update=True, ncpu=2)
    assert type(with_vad.model) is sv.SenseVoiceSmall
    (result,) = with_vad.generate(input=str(EXAMPLES[0]), batch_size_s=60, language="auto")
    assert result["text"].startswith("<|")
