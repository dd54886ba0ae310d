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
from helpers import load_parts
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
    """FunASR imports model.py alone, by path. The exceptions are the boundaries of what model.py alone does not do:
    the sensevoice package beside it is imported inside a function, only for what greedy fp32 decoding of arrays never
    needs (another backend: SenseVoiceSmall.scorer; a search beyond greedy: decode_scores; FunASR's hotword=:
    DecodingOptions.from_kwargs; timestamps: describe_path; paths, URLs and bytes: read_audio; the strict loader:
    SenseVoiceSmall.from_pretrained; FunASR's AutoModel.export: SenseVoiceSmall.export)."""
    import ast

    tree = ast.parse((ROOT / "model.py").read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    boundaries = ["decode_scores", "describe_path", "export", "from_kwargs", "from_pretrained", "read_audio", "scorer"]
    lazy = {id(node): function.name for function in functions if function.name in boundaries
            for node in ast.walk(function) if isinstance(node, ast.ImportFrom) and node.module == "sensevoice"}
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
    allowed = set(sys.stdlib_module_names) | {"numpy", "torch", "torchaudio", "funasr", "soundfile"}
    assert roots <= allowed, roots - allowed


def test_default_backend_needs_no_sensevoice_package(tiny_dir):
    """model.py on its own (the sensevoice package unimportable): the default backend decodes an array; another
    backend, and a file input, say which package they need."""
    code = (
        "import sys; sys.modules['sensevoice'] = None\n"
        "from funasr import AutoModel\n"
        f"m = AutoModel(model={str(tiny_dir)!r}, trust_remote_code=True, remote_code={str(ROOT / 'model.py')!r}, "
        "device='cpu', disable_update=True, ncpu=1, disable_pbar=True)\n"
        "import numpy as np\n"
        "print('TEXT', type(m.generate(input=np.zeros(16000, np.float32))[0]['text']).__name__)\n"
        "try:\n"
        "    m.generate(input=np.zeros(16000, np.float32), backend='onnxruntime')\n"
        "except ImportError as err:\n"
        "    print('ERROR', err)\n"
        "try:\n"
        f"    m.generate(input={str(tiny_dir / 'model.pt')!r})\n"
        "except ImportError as err:\n"
        "    print('FILE', err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tiny_dir, timeout=300)
    assert "TEXT str" in done.stdout, done.stderr[-2000:]
    assert "ERROR backend='onnxruntime' precision='fp32' needs the sensevoice package" in done.stdout
    assert "reading audio files, URLs and bytes needs the sensevoice package" in done.stdout, done.stdout


def test_random_weight_directory_is_refused(tiny_dir, tmp_path):
    import shutil

    for name in ("config.yaml", "configuration.json", "model.py", "am.mvn", "tiny.bpe.model"):
        shutil.copyfile(tiny_dir / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="random weights"):
        ModelDir(tmp_path).automodel()
    with pytest.raises(FileNotFoundError, match="random weights"):
        sv.SenseVoiceSmall.from_pretrained(model=str(tmp_path))
