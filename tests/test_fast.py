"""Fast paths decode what the fp32 reference path decodes: bf16 and int8 (>= 99 % of tokens on a trained model),
torch.compile (same log-probs); options are validated."""

from __future__ import annotations

import copy

import pytest
import torch

import model as sv
from helpers import load_parts
from sensevoice import fast
from test_export import BATCH, greedy_tokens, trained_batch, trained_tiny_dir  # noqa: F401 (fixture)

MIN_AGREEMENT = 0.99  # greedy tokens, reduced precision vs fp32


@pytest.mark.parametrize("kwargs,error", [
    ({"dtype": "float16"}, ValueError), ({"dtype": "bf16", "int8": True}, ValueError), ({"threads": 0}, ValueError),
    ({"threads": True}, ValueError), ({"compile": "yes"}, TypeError), ({"int8": 1}, TypeError),
])
def test_bad_options_raise(kwargs, error):
    with pytest.raises(error):
        fast.FastOptions(**kwargs)


def test_token_agreement():
    assert fast.edit_distance([1, 2, 3], [1, 3]) == 1 and fast.edit_distance([], [4, 5]) == 2
    assert fast.token_agreement([[1, 2, 3], [7]], [[1, 2, 3], [7]]) == 1.0
    assert fast.token_agreement([[1, 2], [7, 8]], [[1, 2, 3], [7]]) == 0.5  # one deletion + one insertion / 4
    with pytest.raises(ValueError):
        fast.token_agreement([[1]], [])


def decode(model, feats, lens) -> list[list[int]]:
    """Each training utterance with the prompt it was trained with; (B, T) tokens via the inference path."""
    tokens = []
    for i, (language, _, _, itn, _) in enumerate(BATCH):
        with torch.no_grad():
            logp, out_lens = model.ctc_logprobs(feats[i:i + 1].to(model.embed.weight.dtype), lens[i:i + 1], language,
                                                itn)
        tokens += greedy_tokens(logp, out_lens)
    return tokens


@pytest.fixture(scope="module")
def trained(trained_tiny_dir):
    model, tokenizer, frontend, _ = load_parts(trained_tiny_dir)
    feats, lens = trained_batch(model, frontend)
    return model, tokenizer, frontend, feats, lens, decode(model, feats, lens)


@pytest.mark.parametrize("options", [fast.FastOptions(dtype="bf16"), fast.FastOptions(int8=True)],
                         ids=["bf16", "int8"])
def test_reduced_precision_tokens_agree_with_fp32(trained, options):
    model, tokenizer, frontend, feats, lens, reference = trained
    fast_model = fast.accelerate(copy.deepcopy(model), options)
    assert sum(map(len, reference)) >= 20
    assert fast.token_agreement(decode(fast_model, feats, lens), reference) >= MIN_AGREEMENT
    # and the FunASR entry point runs on the converted model (features cast to its dtype, fp32 log-probs)
    results, _ = fast_model.inference(feats[:1], data_lengths=lens[:1], key=["a"], tokenizer=tokenizer,
                                      data_type="fbank", language=BATCH[0][0])
    assert results[0]["language"] == BATCH[0][0]


def test_default_options_change_nothing(trained):
    model, _, _, feats, lens, reference = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert fast.accelerate(model, fast.FastOptions()) is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert decode(model, feats, lens) == reference


@pytest.mark.slow
def test_compiled_blocks_match_eager(trained):
    """torch.compile per block (inductor, C++ codegen: ~20 s on 2 cores); fp32, so log-probs match closely."""
    model, _, _, feats, lens, _ = trained
    compiled = fast.accelerate(copy.deepcopy(model), fast.FastOptions(compile=True))
    with torch.no_grad():
        for n in (2, 3):  # a batch-size class and a second shape: dynamic, not recompiled per length
            ref, ref_lens = model.ctc_logprobs(feats[:n], lens[:n], "auto", "woitn")
            out, out_lens = compiled.ctc_logprobs(feats[:n], lens[:n], "auto", "woitn")
            assert torch.equal(out_lens, ref_lens)
            torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


def test_fp16_on_cpu_warns_and_int8_threads_apply(trained):
    model = copy.deepcopy(trained[0])
    with pytest.warns(UserWarning, match="bf16"):
        fast.accelerate(copy.deepcopy(model), fast.FastOptions(dtype="fp16"))
    threads = torch.get_num_threads()
    try:
        fast.accelerate(model, fast.FastOptions(int8=True, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert isinstance(model.ctc.ctc_lo, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(model, sv.SenseVoiceSmall)


@pytest.mark.slow
def test_bench_quick_runs_the_reference_and_ours_on_one_model(tiny_dir, tmp_path):
    """`sensevoice bench --quick` end to end on the tiny model (two backends, one process each, ~20 s)."""
    import json

    from sensevoice.bench import speed as bench

    assert bench.main(["--model", str(tiny_dir), "--quick", "--threads", "1", "--backends", "funasr,ort-int8",
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--name", "tiny",
                       "--fig", str(tmp_path / "fig.png"), "--ort-spin"]) == 0
    report = json.loads((tmp_path / "out" / "tiny.json").read_text())
    reference, ort = report["backends"]["funasr"], report["backends"]["ort-int8"]
    assert reference["agreement"]["tokens"] == 1.0 and reference["vs_reference"]["e2e_10s"] == 1.0
    assert set(ort["latency"]) == {"3", "10"} and ort["mixed"]["x_rt"] > 0 and ort["long"]["segments"] >= 1
    assert 0 <= ort["agreement"]["tokens"] <= 1 and ort["peak_rss_mb"] > 0
    assert report["backends"]["torch"] == {"skipped": "not selected"}
    assert "| ort-int8 | int8 |" in (tmp_path / "out" / "tiny.md").read_text()
    assert json.loads((tmp_path / "work" / "plan.json").read_text())["ort_spin"] is True  # reaches the workers
    assert "ONNX Runtime threads spin while a run is in progress" in (tmp_path / "out" / "tiny.md").read_text()
    assert (tmp_path / "fig.png").stat().st_size > 10_000
