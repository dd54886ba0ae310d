"""Recipe steps: a model directory from a corpus (tokenizer, am.mvn, config) and fp16 packaging."""

from __future__ import annotations

import json

import numpy as np
import soundfile
import torch

import model as sv
from conftest import TINY_ENCODER, sentences, speechlike
from sensevoice import modeldir, recipe


def test_init_then_package(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "text.txt").write_text("\n".join(sentences()), encoding="utf-8")
    rows = []
    for i in range(3):
        soundfile.write(corpus / f"{i}.wav", speechlike(1.0, seed=i), 16000)
        rows.append({"key": str(i), "source": str(corpus / f"{i}.wav"), "target": "hello", "text_language": "<|en|>",
                     "emo_target": "<|NEUTRAL|>", "event_target": "<|Speech|>", "with_or_wo_itn": "<|woitn|>"})
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    init = recipe.init(corpus, tmp_path / "init", vocab_size=150, encoder_conf=TINY_ENCODER, seed=0)
    config = modeldir.read_config(init / "config.yaml")
    assert config["encoder_conf"]["output_size"] == TINY_ENCODER["output_size"]
    mvn = (init / "am.mvn").read_text()
    assert mvn.startswith("<Nnet>") and "<AddShift> 560 560" in mvn

    automodel = modeldir.load_automodel(init, ncpu=2)
    frontend = automodel.kwargs["frontend"]
    feats, _ = automodel.model.extract_features([speechlike(1.0, seed=0)], ["x"], frontend, 16000)
    # CMVN from the same audio: normalised features have mean ~0 and std ~1 per dimension
    assert abs(float(feats.mean())) < 0.5 and 0.5 < float(feats.std()) < 1.5

    released = recipe.package(init, tmp_path / "release")
    state = torch.load(released / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    assert sorted(p.name for p in released.iterdir()) == sorted([*recipe.RELEASE_FILES, recipe.TOKENIZER_NAME])
    fp32 = modeldir.load_automodel(init, ncpu=2).model.state_dict()
    loaded = modeldir.load_automodel(released, ncpu=2).model
    assert loaded.embed.weight.dtype == torch.float32
    assert all(np.allclose(loaded.state_dict()[k], fp32[k], atol=1e-2) for k in fp32)
    assert isinstance(loaded, sv.SenseVoiceSmall)
