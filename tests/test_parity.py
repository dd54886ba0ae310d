"""Numerical parity with FunASR's built-in SenseVoiceSmall (the oracle): same weights, same inputs."""

from __future__ import annotations

import pytest
import torch

import model as sv
from sensevoice.audio import load_audio
from testkit import OFFICIAL_LANGS, speechlike
from helpers import load_parts
from oracle import build_oracle, oracle_decode

TOLERANCE = 1e-4  # max |log p| difference, fp32 on CPU


def compare(model, oracle, tokenizer, feats, lens, keys, **options):
    logits = []  # our CTC logits, captured inside inference() rather than recomputed
    hook = model.ctc.register_forward_hook(lambda module, args, out: logits.append(out.detach()))
    try:
        results, _ = model.inference(feats, data_lengths=lens, key=keys, tokenizer=tokenizer, data_type="fbank",
                                     **options)
    finally:
        hook.remove()
    logp = logits[0].float().log_softmax(dim=-1)
    oracle_results, oracle_logp = oracle_decode(oracle, feats.clone(), tokenizer, data_lengths=lens.clone(),
                                                key=keys, data_type="fbank", **options)
    for i, n in enumerate((lens + sv.N_PROMPT).tolist()):
        ours, theirs = logp[i, :n], oracle_logp[i, :n]
        err = (ours - theirs).abs().max().item()
        assert err < TOLERANCE, f"{keys[i]}: max |Δ log p| = {err:.2e}"
    assert [r["text"] for r in results] == [r["text"] for r in oracle_results]


@pytest.fixture(scope="module")
def official_batch(official_dir, official):
    model, tokenizer, frontend, config = load_parts(official_dir)
    # Real speech, cropped to 1.5-3.5 s (different lengths: a padded batch) to keep 16 official-size runs quick.
    clips = [load_audio(str(official / "example" / f"{lang}.mp3"), lang)[: int((1.5 + 0.5 * i) * 16000)]
             for i, lang in enumerate(OFFICIAL_LANGS)]
    feats, lens = model.extract_features(clips, list(OFFICIAL_LANGS), frontend, 16000)
    assert len(set(lens.tolist())) > 1, "the batch must be padded (clips of different lengths)"
    return model, build_oracle(model, config), tokenizer, frontend, feats, lens


@pytest.mark.official
@pytest.mark.parametrize("language", sv.LANGUAGES)
@pytest.mark.parametrize("use_itn", [False, True])
def test_official_size_logprobs_and_text_match_oracle(official_batch, language, use_itn):
    model, oracle, tokenizer, _, feats, lens = official_batch
    compare(model, oracle, tokenizer, feats, lens, list(OFFICIAL_LANGS), language=language, use_itn=use_itn)


@pytest.mark.official
def test_ban_emo_unk_matches_oracle(official_batch):
    model, oracle, tokenizer, _, feats, lens = official_batch
    compare(model, oracle, tokenizer, feats, lens, list(OFFICIAL_LANGS), language="auto", ban_emo_unk=True)


@pytest.mark.official
def test_audio_to_text_pipeline_matches_oracle(official_batch, official):
    """From file to text: decoding, resampling (44.1 kHz mp3), fbank, LFR, CMVN and the encoder."""
    model, oracle, tokenizer, frontend, _, _ = official_batch
    clips = [str(official / "example" / f"{lang}.mp3") for lang in ("en", "ja")]
    ours, _ = model.inference(clips, key=["en", "ja"], tokenizer=tokenizer, frontend=frontend, language="auto")
    theirs, _ = oracle.inference(clips, key=["en", "ja"], tokenizer=tokenizer, frontend=frontend, device="cpu",
                                 language="auto")
    assert [r["text"] for r in ours] == [r["text"] for r in theirs]


def test_tiny_model_matches_oracle_on_padded_batch(tiny_dir):
    """Runs without the official files: a tiny config, three utterances of different lengths."""
    model, tokenizer, frontend, config = load_parts(tiny_dir)
    with torch.no_grad():  # larger weights than init so that the tiny model's outputs are far from uniform
        for p in model.parameters():
            p.mul_(1.5)
    oracle = build_oracle(model, config)
    audio = [speechlike(s, seed=i) for i, s in enumerate((1.0, 2.7, 1.9))]
    feats, lens = model.extract_features(audio, ["a", "b", "c"], frontend, 16000)
    for language in ("auto", "en", "ko"):
        for use_itn in (False, True):
            compare(model, oracle, tokenizer, feats, lens, ["a", "b", "c"], language=language, use_itn=use_itn)
