"""Backends behind one interface: PyTorch bf16/int8 decode what fp32 decodes (>= 99 % of tokens on a trained model),
ONNX Runtime exactly so; the options are validated; every backend is reachable through FunASR's AutoModel."""

from __future__ import annotations

import copy

import pytest
import torch

import model as sv
from testkit import ROOT, speechlike
from helpers import BATCH, greedy_tokens, load_parts, trained_batch
import sensevoice
from sensevoice import backends
from sensevoice.bench.agreement import token_agreement

MIN_AGREEMENT = 0.99  # greedy tokens, reduced precision vs fp32


@pytest.mark.parametrize("kwargs,message", [
    ({"backend": "tensorrt"}, "backend='tensorrt'; expected one of \\['torch', 'onnxruntime'\\]"),
    ({"backend": "onnxruntime", "precision": "bf16"}, "not available with backend='onnxruntime'"),
    ({"precision": "int4"}, "precision='int4'"),
    ({"quantize": "int4"}, "quantize='int4'"),
    ({"quantize": True, "precision": "bf16"}, "contradicts"),
])
def test_bad_backend_options_name_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sv.BackendOptions.from_kwargs(kwargs)


def test_backend_option_spellings():
    assert sv.BackendOptions.from_kwargs({}) == sv.BackendOptions("torch", "fp32")
    assert sv.BackendOptions.from_kwargs({"backend": "onnxruntime", "quantize": "int8"}) == \
        sv.BackendOptions("onnxruntime", "int8")
    assert sv.BackendOptions.from_kwargs({"quantize": True}).name == "torch-int8"


def decode(backend, feats, lens) -> list[list[int]]:
    """Each training utterance with the prompt it was trained with."""
    tokens = []
    for i, (language, _, _, itn, _) in enumerate(BATCH):
        with torch.no_grad():
            scores, out_lens = backend.ctc_scores(feats[i:i + 1], lens[i:i + 1], language, itn)
        tokens += greedy_tokens(scores.float(), out_lens)
    return tokens


@pytest.fixture(scope="module")
def trained(trained_tiny_dir):
    model, tokenizer, frontend, _ = load_parts(trained_tiny_dir)
    feats, lens = trained_batch(model, frontend)
    return model, tokenizer, frontend, feats, lens, decode(backends.TorchBackend(model), feats, lens)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_tokens_agree_with_fp32(trained, precision):
    model, tokenizer, frontend, feats, lens, reference = trained
    backend = backends.TorchBackend(copy.deepcopy(model), sv.BackendOptions("torch", precision))
    assert sum(map(len, reference)) >= 20
    assert token_agreement(decode(backend, feats, lens), reference) >= MIN_AGREEMENT
    # and the FunASR entry point runs on the converted model (features cast to its dtype, fp32 log-probs)
    results, _ = backend.model.inference(feats[:1], data_lengths=lens[:1], key=["a"], tokenizer=tokenizer,
                                         data_type="fbank", language=BATCH[0][0], backend="torch", precision=precision)
    assert results[0]["language"] == BATCH[0][0]


def test_default_backend_changes_nothing(trained):
    model, _, _, feats, lens, reference = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert backends.TorchBackend(model).model is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert decode(backends.TorchBackend(model), feats, lens) == reference


def test_fp16_on_cpu_warns_and_int8_quantises_every_linear(trained):
    with pytest.warns(UserWarning, match="bf16"):
        backends.TorchBackend(copy.deepcopy(trained[0]), sv.BackendOptions("torch", "fp16"))
    model = backends.TorchBackend(copy.deepcopy(trained[0]), sv.BackendOptions("torch", "int8")).model
    assert isinstance(model.ctc.ctc_lo, torch.ao.nn.quantized.dynamic.Linear)
    assert not any(type(m) is torch.nn.Linear for m in model.modules())


def test_a_converted_model_refuses_another_precision(trained):
    model, tokenizer, _, feats, lens, _ = trained
    model = copy.deepcopy(model)
    call = dict(data_lengths=lens[:1], key=["a"], tokenizer=tokenizer, data_type="fbank")
    model.inference(feats[:1], backend="torch", precision="int8", **call)
    with pytest.raises(ValueError, match="already runs as torch-int8"):
        model.inference(feats[:1], **call)


def test_onnx_cache_is_keyed_by_the_weights(trained_tiny_dir, tmp_path, monkeypatch):
    """No model.onnx in the directory: exported once into the cache, reused for the same weights, a new entry for
    other weights."""
    from sensevoice.modeldir import ModelDir

    monkeypatch.setenv(sensevoice.CACHE_ENV, str(tmp_path / "cache"))
    source = ModelDir(trained_tiny_dir)
    model = source.load()
    first = backends.onnx_file(model, source, "int8")
    assert first.parent.parent == tmp_path / "cache" / "onnx" and first.name == "model_quant.onnx"
    stamp = first.stat().st_mtime_ns
    assert backends.onnx_file(source.load(), source, "int8") == first and first.stat().st_mtime_ns == stamp
    assert (first.parent / "model.onnx").is_file()  # the fp32 graph comes with it
    with torch.no_grad():
        model.ctc.ctc_lo.bias += 1.0
    assert backends.onnx_file(model, source, "fp32").parent != first.parent


@pytest.mark.parametrize("backend,quantize", [("onnxruntime", None), ("onnxruntime", "int8"), ("torch", "int8")])
def test_automodel_runs_every_backend(trained_tiny_dir, tmp_path, monkeypatch, backend, quantize):
    """AutoModel(..., backend=, quantize=) - the plugin's own entry point - on each backend: ONNX Runtime fp32
    decodes the text PyTorch fp32 decodes; int8 agrees on the trained utterances' text."""
    from funasr import AutoModel

    monkeypatch.setenv(sensevoice.CACHE_ENV, str(tmp_path / "cache"))
    audio = [speechlike(s, seed=i) for i, s in enumerate((1.6, 2.0, 1.8))]  # trained_batch's training utterances
    common = dict(model=str(trained_tiny_dir), trust_remote_code=True, remote_code=str(ROOT / "model.py"),
                  device="cpu", disable_update=True, ncpu=1, disable_pbar=True)
    fast = AutoModel(**common, backend=backend, quantize=quantize)
    reference = AutoModel(**common)
    assert type(fast.model) is sv.SenseVoiceSmall
    for wave, (language, _, _, itn, transcript) in zip(audio, BATCH):
        want = reference.generate(input=wave, language=language, use_itn=itn == "withitn")[0]
        got = fast.generate(input=wave, language=language, use_itn=itn == "withitn")[0]
        assert want["clean_text"] == transcript
        assert got["text"] == want["text"]
    assert isinstance(fast.model._backend, backends.OrtBackend if backend == "onnxruntime" else backends.TorchBackend)


def test_automodel_refuses_an_unknown_backend(trained_tiny_dir):
    from funasr import AutoModel

    automodel = AutoModel(model=str(trained_tiny_dir), trust_remote_code=True, remote_code=str(ROOT / "model.py"),
                          device="cpu", disable_update=True, ncpu=1, disable_pbar=True, backend="tensorrt")
    with pytest.raises(ValueError, match="backend='tensorrt'; expected one of"):
        automodel.generate(input=speechlike(1.0))


def test_a_missing_runtime_package_is_named(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ImportError, match="needs the onnxruntime package"):
        backends.OrtBackend(tmp_path / "model.onnx", sv.BackendOptions("onnxruntime"))
