"""Construction: checkpoint keys/shapes = the official ones, strict loading, dims validation, registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import model as sv
from sensevoice.checkpoint import load_checkpoint
from testkit import ROOT, TINY_ENCODER
from helpers import load_parts, write_fault
from oracle import build_oracle
from sensevoice.modeldir import ModelDir
from sensevoice.bench import long as bench_long


@pytest.mark.official
def test_official_config_builds_the_official_state_dict(official_dir):
    model, _, _, config = load_parts(official_dir)
    oracle = build_oracle(model, config)  # strict load inside: same keys and shapes
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == 233_999_167  # "234 M"
    assert model.dims.n_vocab == 25055 and model.dims.n_input == 560
    assert ours["embed.weight"] == (16, 560)


def test_tiny_dims_come_from_config_and_tokenizer(tiny_dir):
    model, tokenizer, _, _ = load_parts(tiny_dir)
    assert model.dims.d_model == TINY_ENCODER["output_size"]
    assert model.dims.n_blocks == 2 and len(model.encoder.encoders) == 1 and len(model.encoder.tp_encoders) == 1
    assert model.ctc.ctc_lo.out_features == tokenizer.get_vocab_size()


def test_special_tokens_are_looked_up_by_name(tiny_dir, official):
    tiny, tiny_tok, _, _ = load_parts(tiny_dir)
    assert tiny_tok.sp.id_to_piece(tiny.special.language["en"]) == "<|en|>"
    assert tiny_tok.sp.id_to_piece(tiny.special.textnorm["withitn"]) == "<|withitn|>"
    from funasr.tokenizer.sentencepiece_tokenizer import SentencepiecesTokenizer

    tok = SentencepiecesTokenizer(bpemodel=str(official / "SenseVoiceSmall" / "chn_jpn_yue_eng_ko_spectok.bpe.model"))
    special = sv.SpecialTokens.from_pieces(sv.tokenizer_pieces(tok))
    # the ids FunASR's built-in model hard-codes
    assert special.language == {"zh": 24884, "en": 24885, "yue": 24888, "ja": 24892, "ko": 24896, "nospeech": 24992}
    assert special.textnorm == {"withitn": 25016, "woitn": 25017} and special.emotion_unknown == 25009


def test_tokenizer_without_special_tokens_is_refused():
    with pytest.raises(ValueError, match=r"<\|zh\|>"):
        sv.SpecialTokens.from_pieces(["<unk>", "<s>", "</s>", "a", "b"])


@pytest.mark.parametrize("conf, message", [
    ({"output_size": 64, "attention_heads": 3}, "divisible"),
    ({"bogus_key": 1}, "unknown key 'bogus_key'"),
    ({"normalize_before": False}, "only True"),
    ({"selfattention_layer_type": "rel_selfattn"}, "only 'sanm'"),
])
def test_bad_encoder_conf_is_an_error(conf, message):
    with pytest.raises(ValueError, match=message):
        sv.ModelDimensions.from_encoder_conf(conf, n_input=560, n_vocab=100)


def test_strict_loading_names_missing_and_mismatched_keys(tiny_dir, tmp_path):
    model, _, _, _ = load_parts(tiny_dir)
    state = model.state_dict()
    broken = dict(state)
    del broken["encoder.tp_norm.weight"]
    broken["ctc.ctc_lo.bias"] = torch.zeros(3)
    torch.save(broken, tmp_path / "model.pt")
    with pytest.raises(ValueError) as err:
        load_checkpoint(model, str(tmp_path / "model.pt"))
    assert "encoder.tp_norm.weight" in str(err.value) and "ctc.ctc_lo.bias" in str(err.value)


def test_loading_accepts_wrapped_checkpoints(tiny_dir, tmp_path):
    model, _, _, _ = load_parts(tiny_dir)
    state = {f"module.{k}": v + 1 for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "model.pt")
    load_checkpoint(model, str(tmp_path / "model.pt"))
    assert torch.equal(model.embed.weight, state["module.embed.weight"])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux /proc")
def test_loading_keeps_no_second_resident_copy_of_the_checkpoint(tmp_path):
    layers = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(32)])  # 128 MiB of fp32 weights
    torch.save(layers.state_dict(), tmp_path / "model.pt")
    expected = {k: v.clone() for k, v in list(layers.state_dict().items())[::16]}
    for p in layers.parameters():
        p.data.zero_()
    checkpoint_mb = (tmp_path / "model.pt").stat().st_size / 2**20
    bench_long.reset_peak_rss()
    before = bench_long.rss_mb()["VmRSS"]
    load_checkpoint(layers, str(tmp_path / "model.pt"))
    growth = bench_long.rss_mb()["VmHWM"] - before
    state = layers.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    assert growth < 0.25 * checkpoint_mb, f"loading raised peak RSS by {growth:.0f} MiB for a {checkpoint_mb:.0f} MiB file"


def test_importing_model_py_after_the_builtin_makes_ours_the_registered_class():
    code = (
        "import funasr.models.sense_voice.model as builtin\n"
        "from funasr.register import tables\n"
        "assert tables.model_classes['SenseVoiceSmall'] is builtin.SenseVoiceSmall\n"
        "import model\n"
        "assert tables.model_classes['SenseVoiceSmall'] is model.SenseVoiceSmall\n"
        "assert tables.encoder_classes['SenseVoiceEncoderSmall'] is model.SenseVoiceEncoderSmall\n"
        "print('ours')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ours")


def test_model_py_imports_nothing_but_stdlib_numpy_torch_funasr():
    """FunASR imports model.py alone, by path. The exceptions are the boundaries of what model.py alone does: the
    sensevoice package beside it is imported inside a function, for everything past the CTC scores (results:
    inference; audio reading: extract_features; FunASR's hotword=: DecodingOptions.from_kwargs; the training loss:
    forward; another backend: scorer; the strict loader: from_pretrained; FunASR's AutoModel.export: export)."""
    import ast

    tree = ast.parse((ROOT / "model.py").read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    boundaries = ["export", "extract_features", "forward", "from_kwargs", "from_pretrained", "inference", "scorer"]
    lazy = {id(node): function.name for function in functions if function.name in boundaries
            for node in ast.walk(function)
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "sensevoice"}
    assert sorted(lazy.values()) == boundaries
    roots = set()
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import makes FunASR's remote-code import fail silently"
            roots.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"numpy", "torch", "funasr"}
    assert roots <= allowed, roots - allowed


MODEL_PY_ALONE = """
import pathlib, sys
sys.modules["sensevoice"] = None  # the package unimportable: model.py as FunASR loads it, alone
import numpy as np
import torch
from funasr import AutoModel

tiny, bad = sys.argv[1], sys.argv[2]
model, kwargs = AutoModel.build_model(model=tiny, trust_remote_code=True, remote_code={model_py!r}, device="cpu",
                                      disable_update=True, ncpu=1)
print("CLASS", type(model).__name__)
sv = sys.modules[type(model).__module__]  # model.py, as FunASR imported it
state = torch.load(pathlib.Path(tiny) / "model.pt", weights_only=True)
ours = model.state_dict()
print("LOADED", sorted(ours) == sorted(state) and all(torch.equal(ours[k], state[k]) for k in state))
feats, lens = torch.randn(2, 30, model.dims.n_input), torch.tensor([30, 17])
logp, out_lens = model.ctc_logprobs(feats, lens, "en", "woitn")
print("SCORES", list(logp.shape) == [2, 4 + 30, model.dims.n_vocab], out_lens.tolist(),
      bool(torch.allclose(logp.exp().sum(-1), torch.ones(2, 34))))
try:
    AutoModel.build_model(model=bad, trust_remote_code=True, remote_code={model_py!r}, device="cpu",
                          disable_update=True, ncpu=1)
except ValueError as err:
    print("REFUSED", type(err).__name__, err)
for name, call in [("DECODE", lambda: model.inference(np.zeros(16000, np.float32), **kwargs)),
                   ("FBANK", lambda: model.inference(feats, [30, 17], data_type="fbank", **kwargs)),
                   ("BACKEND", lambda: model.scorer(sv.BackendOptions("onnxruntime"), {{}})),
                   ("FEATURES", lambda: model.extract_features(["a.wav"], ["a"], kwargs["frontend"], 16000))]:
    try:
        call()
        print(name, "ran")
    except ImportError as err:
        print(name, err)
"""


def test_model_py_alone_builds_loads_scores_and_names_the_package_for_the_rest(tiny_dir, tmp_path):
    """model.py on its own (the sensevoice package unimportable): it builds the network from config.yaml, loads
    model.pt unmodified, refuses a model.pt that is not plain data (nothing in it runs) and computes the CTC scores of
    prompt + features; decoding them into results, reading audio and other backends raise an ImportError that names
    the package."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    marker = tmp_path / "PAYLOAD_RAN"
    write_fault(bad / "model.pt", "pickle_payload", marker)
    code = MODEL_PY_ALONE.format(model_py=str(ROOT / "model.py"))
    done = subprocess.run([sys.executable, "-c", code, str(tiny_dir), str(bad)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    out = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.split(" ", 1)[0].isupper())
    assert out.get("CLASS") == "SenseVoiceSmall", done.stdout + done.stderr[-2000:]
    assert out["LOADED"] == "True"
    assert out["SCORES"] == "True [34, 21] True"  # (B, 4 + T, V) log-probs, lengths with the prompt
    assert out["REFUSED"].startswith("CheckpointError ") and str(bad / "model.pt") in out["REFUSED"]
    assert not marker.exists()
    for name in ("DECODE", "FBANK", "BACKEND", "FEATURES"):
        assert "needs the sensevoice package that ships beside model.py" in out[name], (name, out[name])
    assert out["DECODE"].startswith("decoding CTC scores into transcripts needs")
    assert out["BACKEND"].startswith("backend='onnxruntime' precision='fp32' needs")
    assert out["FEATURES"].startswith("reading audio needs")


def test_random_weight_directory_is_refused(tiny_dir, tmp_path):
    import shutil

    for name in ("config.yaml", "configuration.json", "model.py", "am.mvn", "tiny.bpe.model"):
        shutil.copyfile(tiny_dir / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="random weights"):
        ModelDir(tmp_path).automodel()
    with pytest.raises(FileNotFoundError, match="random weights"):
        sv.SenseVoiceSmall.from_pretrained(model=str(tmp_path))
