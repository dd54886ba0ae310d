"""model.forward is the official training objective: a tiny model overfits one batch, tags included."""

from __future__ import annotations

import torch

from testkit import speechlike
from helpers import BATCH, encode_targets, load_parts

STEPS = 150


def test_tiny_model_overfits_one_batch_and_decodes_its_targets(tiny_dir):
    torch.manual_seed(0)
    model, tokenizer, frontend, _ = load_parts(tiny_dir)
    feats, feat_lens = model.extract_features([speechlike(s, seed=i) for i, s in enumerate((1.6, 2.0, 1.8))],
                                              ["a", "b", "c"], frontend, 16000)
    text, text_lens = encode_targets(model, tokenizer, BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(STEPS):
        loss, stats, weight = model(feats, feat_lens, text, text_lens, tokenizer=tokenizer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert set(stats) >= {"loss", "loss_ctc", "loss_rich", "acc_rich"} and weight > 0
    assert losses[-1] < losses[0] / 10, f"loss {losses[0]:.2f} -> {losses[-1]:.2f}"

    model.eval()
    for (language, emotion, event, itn, transcript), i in zip(BATCH, range(3)):
        # the training prompt carried the language and itn choice; inference passes the same options
        results, _ = model.inference(feats[i: i + 1], data_lengths=feat_lens[i: i + 1], key=["k"], tokenizer=tokenizer,
                                     data_type="fbank", language=language, use_itn=itn == "withitn")
        result = results[0]
        assert result["text"] == f"<|{language}|><|{emotion}|><|{event}|><|{itn}|>{transcript}"
        assert (result["language"], result["emotion"], result["event"], result["itn"]) == (language, emotion, event, itn)
        assert result["clean_text"] == transcript


def test_language_prompt_dropout_only_in_training(tiny_dir):
    model, tokenizer, frontend, _ = load_parts(tiny_dir)
    feats, lens = model.extract_features([speechlike(1.0)], ["a"], frontend, 16000)
    text, text_lens = encode_targets(model, tokenizer, BATCH[:1])
    model.eval()
    with torch.no_grad():
        first = model(feats, lens, text, text_lens, tokenizer=tokenizer)[0]
        assert all(torch.equal(first, model(feats, lens, text, text_lens, tokenizer=tokenizer)[0]) for _ in range(5))
