"""Recipe steps: a model directory from a corpus (tokenizer, am.mvn, config) and fp16 packaging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

import model as sv
from testkit import TINY_ENCODER, sentences, speechlike
from sensevoice import modeldir
from sensevoice.modeldir import ModelDir
from sensevoice.training import recipe


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

    init = recipe.init(tmp_path / "init", vocab_size=150, encoder_conf=TINY_ENCODER, seed=0, corpus=corpus)
    config = modeldir.read_config(init / "config.yaml")
    assert config["encoder_conf"]["output_size"] == TINY_ENCODER["output_size"]
    mvn = (init / "am.mvn").read_text()
    assert mvn.startswith("<Nnet>") and "<AddShift> 560 560" in mvn

    automodel = ModelDir(init).automodel(ncpu=2)
    frontend = automodel.kwargs["frontend"]
    feats, _ = automodel.model.extract_features([speechlike(1.0, seed=0)], ["x"], frontend, 16000)
    # CMVN from the same audio: normalised features have mean ~0 and std ~1 per dimension
    assert abs(float(feats.mean())) < 0.5 and 0.5 < float(feats.std()) < 1.5

    released = recipe.package(init, tmp_path / "release")
    state = torch.load(released / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    assert sorted(p.name for p in released.iterdir()) == sorted([*recipe.RELEASE_FILES, recipe.TOKENIZER_NAME])
    fp32 = ModelDir(init).automodel(ncpu=2).model.state_dict()
    loaded = ModelDir(released).automodel(ncpu=2).model
    assert loaded.embed.weight.dtype == torch.float32
    assert all(np.allclose(loaded.state_dict()[k], fp32[k], atol=1e-2) for k in fp32)
    assert isinstance(loaded, sv.SenseVoiceSmall)


def test_init_from_an_existing_tokenizer_and_cmvn_needs_no_corpus(tiny_dir, tmp_path):
    source = ModelDir(tiny_dir)
    made = recipe.init(tmp_path / "again", vocab_size=0, encoder_conf=TINY_ENCODER, seed=3,
                       tokenizer=source.bpemodel, cmvn=tiny_dir / "am.mvn")
    assert (made / "am.mvn").read_bytes() == (tiny_dir / "am.mvn").read_bytes()
    assert ModelDir(made).tokenizer.get_vocab_size() == source.tokenizer.get_vocab_size()
    with pytest.raises(ValueError, match="--cmvn or --corpus"):
        recipe.init(tmp_path / "none", vocab_size=0, encoder_conf=TINY_ENCODER, seed=3,
                    tokenizer=source.bpemodel)


def test_widen_adds_pieces_for_new_characters_and_keeps_the_greedy_output(tiny_dir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("hello 謝謝\n안녕 world\n", encoding="utf-8")
    wide = recipe.widen(tiny_dir, text, tmp_path / "wide")
    old, new = ModelDir(tiny_dir), ModelDir(wide)
    n_old = old.tokenizer.get_vocab_size()
    added = [new.tokenizer.sp.id_to_piece(i) for i in range(n_old, new.tokenizer.get_vocab_size())]
    assert added and set(added) <= set("謝안녕") and len(added) == len(set(added))
    for sentence in sentences()[:20]:  # text the old tokenizer covers keeps its ids
        assert new.tokenizer.encode(sentence) == old.tokenizer.encode(sentence)
    assert "<unk>" not in new.tokenizer.sp.encode("謝謝", out_type=str)

    narrow_model, wide_model = old.load().eval(), new.load().eval()
    feats, lens = torch.randn(2, 30, 560), torch.tensor([30, 17])
    want, _ = narrow_model.ctc_logprobs(feats, lens, "auto", "woitn")
    got, _ = wide_model.ctc_logprobs(feats, lens, "auto", "woitn")
    assert got.shape[-1] == want.shape[-1] + len(added)
    assert torch.equal(got.argmax(-1), want.argmax(-1))  # the new outputs start far below every old one


def test_grow_keeps_outputs_and_trains_new_blocks(tiny_dir, tmp_path):
    deep = recipe.grow(tiny_dir, tmp_path / "deep", num_blocks=5, seed=1)
    assert modeldir.read_config(deep / "config.yaml")["encoder_conf"]["num_blocks"] == 5
    shallow_model = ModelDir(tiny_dir).automodel(ncpu=2).model.eval()
    deep_model = ModelDir(deep).automodel(ncpu=2).model.eval()
    assert len(deep_model.encoder.encoders) == 4 and len(shallow_model.encoder.encoders) == 1

    feats, lens = torch.randn(2, 30, 560), torch.tensor([30, 17])
    for language, textnorm in (("auto", "woitn"), ("en", "withitn")):
        want, want_lens = shallow_model.ctc_logprobs(feats, lens, language, textnorm)
        got, got_lens = deep_model.ctc_logprobs(feats, lens, language, textnorm)
        assert torch.equal(got_lens, want_lens)
        for b, n in enumerate(want_lens.tolist()):
            torch.testing.assert_close(got[b, :n], want[b, :n], atol=1e-5, rtol=1e-5)

    # the trained block keeps its weights (now at slot 0); the identity blocks learn from the first step
    trained = torch.load(tiny_dir / "model.pt", weights_only=True)
    grown = deep_model.state_dict()
    assert torch.equal(grown["encoder.encoders.0.feed_forward.w_2.weight"], trained["encoder.encoders.0.feed_forward.w_2.weight"])
    deep_model.train()
    logp, _ = deep_model.ctc_logprobs(feats, lens, "en", "woitn")
    logp[:, :, 5].sum().backward()
    for slot in (1, 2, 3):
        block = deep_model.encoder.encoders[slot]
        assert not block.feed_forward.w_2.weight.any()
        assert block.feed_forward.w_2.weight.grad.abs().sum() > 0
        assert block.self_attn.linear_q_k_v.weight.grad.abs().sum() > 0


def test_grow_refuses_fewer_blocks(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="already has 2 encoder blocks"):
        recipe.grow(tiny_dir, tmp_path / "same", num_blocks=2)
