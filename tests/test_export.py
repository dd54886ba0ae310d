"""ONNX export: FunASR's I/O, parity with PyTorch (tiny and official size), sherpa-onnx metadata, int8 tokens."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import model as sv
from testkit import OFFICIAL_LANGS, speechlike
from helpers import BATCH, greedy_tokens, load_parts, one_thread, trained_batch
from sensevoice import export, export_command
from sensevoice.backends import OrtBackend
from sensevoice.bench.agreement import token_agreement
from sensevoice.pipeline import Transcriber

LOGIT_TOLERANCE = 1e-3  # max |Δ logit|, ONNX Runtime fp32 vs PyTorch fp32
MIN_INT8_AGREEMENT = 0.99  # greedy tokens, int8 vs fp32, on a trained (confident) model
SHERPA_KEYS = ("model_type", "vocab_size", "lfr_window_size", "lfr_window_shift", "normalize_samples", "neg_mean",
               "inv_stddev", "with_itn", "without_itn", "lang_auto", "lang_zh", "lang_en", "lang_ja", "lang_ko",
               "lang_yue")


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_logits_match(model, onnx_path: Path, feats: torch.Tensor, lens: torch.Tensor, language: str,
                        textnorm: str):
    B = feats.shape[0]
    rows = [torch.full((B,), sv.PROMPT_ROWS[n], dtype=torch.int32) for n in (language, textnorm)]
    with torch.no_grad():
        ref, ref_lens = export.exportable(model)(feats, lens.int(), *rows)
    inputs = dict(zip(export.INPUT_NAMES, (feats.numpy(), lens.numpy().astype(np.int32), *(r.numpy() for r in rows))))
    logits, out_lens = session(onnx_path).run(list(export.OUTPUT_NAMES), inputs)
    assert out_lens.dtype == np.int32 and out_lens.tolist() == (lens + sv.N_PROMPT).tolist() == ref_lens.tolist()
    assert logits.shape == (B, feats.shape[1] + sv.N_PROMPT, model.dims.n_vocab)
    for i, n in enumerate(out_lens.tolist()):
        err = np.abs(logits[i, :n] - ref[i, :n].numpy()).max()
        assert err < LOGIT_TOLERANCE, f"item {i}: max |Δ logit| = {err:.2e}"


@pytest.fixture(scope="module")
def tiny_export(tiny_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_onnx")
    assert export_command.main(["--model", str(tiny_dir), "--out", str(out)]) == 0
    return out


def test_io_names_dtypes_and_dynamic_axes(tiny_export):
    s = session(tiny_export / export.FP32_NAME)
    assert [(i.name, i.type) for i in s.get_inputs()] == [
        ("speech", "tensor(float)"), ("speech_lengths", "tensor(int32)"), ("language", "tensor(int32)"),
        ("textnorm", "tensor(int32)")]
    assert [i.shape for i in s.get_inputs()] == [["batch_size", "feats_length", 560], ["batch_size"], ["batch_size"],
                                                 ["batch_size"]]
    assert [(o.name, o.type) for o in s.get_outputs()] == [("ctc_logits", "tensor(float)"),
                                                           ("encoder_out_lens", "tensor(int32)")]
    assert s.get_outputs()[0].shape[:2] == ["batch_size", "logits_length"]


@pytest.mark.parametrize("language,textnorm", [("auto", "woitn"), ("en", "withitn"), ("ko", "woitn")])
def test_tiny_onnx_logits_match_pytorch_on_padded_batch(tiny_dir, tiny_export, language, textnorm):
    model, _, frontend, _ = load_parts(tiny_dir)
    audio = [speechlike(s, seed=i) for i, s in enumerate((1.0, 2.7, 1.9))]  # batch 3, lengths the trace never saw
    feats, lens = model.extract_features(audio, ["a", "b", "c"], frontend, 16000)
    assert_logits_match(model, tiny_export / export.FP32_NAME, feats, lens, language, textnorm)


def test_attention_is_fused_by_default_and_standard_on_request(tiny_dir, tiny_export, tmp_path):
    import onnx

    model, _, frontend, _ = load_parts(tiny_dir)
    blocks = model.dims.n_blocks + model.dims.n_tp_blocks
    fused = onnx.load(str(tiny_export / export.FP32_NAME))
    assert [n.domain for n in fused.graph.node if n.op_type == "MultiHeadAttention"] == ["com.microsoft"] * blocks
    assert not {"Softmax", "IsNaN"} & {n.op_type for n in fused.graph.node}  # no unfused attention left

    assert export_command.main(["--model", str(tiny_dir), "--out", str(tmp_path), "--standard-ops"]) == 0
    standard = onnx.load(str(tmp_path / export.FP32_NAME))
    assert {n.domain for n in standard.graph.node} <= {"", "ai.onnx"}
    assert sum(n.op_type == "Softmax" for n in standard.graph.node) == blocks
    audio = [speechlike(s, seed=i) for i, s in enumerate((2.2, 1.1))]
    feats, lens = model.extract_features(audio, ["a", "b"], frontend, 16000)
    assert_logits_match(model, tmp_path / export.FP32_NAME, feats, lens, "auto", "woitn")
    with export.ort_fused_attention(model):
        assert all("attend" in vars(m) for m in model.modules() if isinstance(m, sv.SANMAttention))
    assert not any("attend" in vars(m) for m in model.modules())  # the class's own method again


def test_sherpa_metadata_tokens_and_model_files(tiny_dir, tiny_export):
    import onnx

    model, tokenizer, _, _ = load_parts(tiny_dir)
    proto = onnx.load(str(tiny_export / export.FP32_NAME), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert set(SHERPA_KEYS) <= set(meta)
    assert meta["model_type"] == "sense_voice_ctc" and int(meta["vocab_size"]) == model.dims.n_vocab
    assert (int(meta["lfr_window_size"]), int(meta["lfr_window_shift"])) == (7, 6)
    assert {n: int(meta[f"lang_{n}"]) for n in ("auto", "zh", "en", "yue", "ja", "ko")} == \
        {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12}  # FunASR's lid_dict
    assert (int(meta["with_itn"]), int(meta["without_itn"])) == (14, 15)  # FunASR's textnorm_dict
    neg_mean = np.array(meta["neg_mean"].split(","), dtype=np.float32)
    inv_stddev = np.array(meta["inv_stddev"].split(","), dtype=np.float32)
    assert neg_mean.shape == inv_stddev.shape == (560,)  # identity_cmvn: mean 10, std 3
    np.testing.assert_allclose(neg_mean, -10.0, rtol=1e-6)
    np.testing.assert_allclose(inv_stddev, 1 / 3, rtol=1e-6)

    lines = (tiny_export / export.TOKENS_NAME).read_text(encoding="utf-8").splitlines()
    assert lines == [f"{tokenizer.sp.id_to_piece(i)} {i}" for i in range(tokenizer.get_vocab_size())]
    config = yaml.safe_load((tiny_export / "config.yaml").read_text())
    assert config["frontend_conf"]["dither"] == 0.0
    bpe = json.loads((tiny_export / "configuration.json").read_text())["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    assert (tiny_export / bpe).is_file() and (tiny_export / "am.mvn").is_file()


def test_onnx_backend_decodes_the_same_text_as_pytorch(tiny_dir, tiny_export, wav_file):
    """The pipeline on the export directory (its model.onnx, no model.pt) against model.py's own inference."""
    model, tokenizer, frontend, _ = load_parts(tiny_dir)
    runner = Transcriber(tiny_export, backend=sv.BackendOptions("onnxruntime"), vad=False, threads=1)
    assert isinstance(runner.backend, OrtBackend)
    audio = [str(wav_file), speechlike(1.3, seed=5)]
    for options in ({"language": "auto"}, {"language": "en", "use_itn": True, "ban_emo_unk": True},
                    {"language": "auto", "blank_penalty": 3.0}):
        ours, _ = model.inference(audio, key=["f", "a"], tokenizer=tokenizer, frontend=frontend, **options)
        theirs = runner.transcribe_many(audio, ["f", "a"], sv.DecodingOptions.from_kwargs(options))
        assert [r.text for r in theirs] == [r["text"] for r in ours]
        assert [r.language for r in theirs] == [r["language"] for r in ours]


def test_onnx_runner_spins_only_while_a_run_is_in_progress(tiny_export):
    def config(runner, key):
        return runner.session.get_session_options().get_session_config_entry(key)

    path, options = tiny_export / export.FP32_NAME, sv.BackendOptions("onnxruntime")
    spinning = OrtBackend(path, options, threads=2, spin=True)
    assert config(spinning, "session.force_spinning_stop") == "1"  # idle between requests
    assert config(OrtBackend(path, options, threads=2), "session.intra_op.allow_spinning") == "0"


def test_export_refuses_random_weights_and_in_place_output(tiny_dir, tmp_path):
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_dir, no_weights, ignore=shutil.ignore_patterns("model.pt"))
    with pytest.raises(FileNotFoundError, match="model.pt"):
        export.export(no_weights, tmp_path / "out")
    with pytest.raises(ValueError, match="model directory"):
        export.export(tiny_dir, tiny_dir)


def test_sherpa_onnx_runs_the_export(tiny_export):
    sherpa_onnx = pytest.importorskip("sherpa_onnx", reason="sherpa-onnx is optional (the benchmark compares it)")
    recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
        model=str(tiny_export / export.FP32_NAME), tokens=str(tiny_export / export.TOKENS_NAME), num_threads=1,
        language="en", use_itn=False)
    stream = recognizer.create_stream()
    stream.accept_waveform(16000, speechlike(1.5))
    recognizer.decode_stream(stream)
    pieces = {line.split(" ")[0].replace("\u2581", " ") for line in
              (tiny_export / export.TOKENS_NAME).read_text(encoding="utf-8").splitlines()}
    assert stream.result.tokens and set(stream.result.tokens) <= pieces


def test_funasr_onnx_runs_the_export(trained_tiny_dir, tmp_path):
    """funasr-onnx (its own kaldi-native-fbank frontend; setup_env.sh installs both) on our export decodes the
    tokens our ONNX runner decodes, on the trained tiny model's utterances with the prompts they were trained on."""
    from funasr_onnx import SenseVoiceSmall as FunasrOnnxSenseVoice

    from sensevoice.bench.backends import funasr_onnx_view

    export.export(trained_tiny_dir, tmp_path)
    theirs = FunasrOnnxSenseVoice(funasr_onnx_view(tmp_path), batch_size=1, intra_op_num_threads=1)
    ours = Transcriber(tmp_path, backend=sv.BackendOptions("onnxruntime"), vad=False, threads=1)
    audio = [speechlike(s, seed=i) for i, s in enumerate((1.6, 2.0, 1.8))]  # trained_batch's training utterances
    for wave, (language, _, _, itn, transcript) in zip(audio, BATCH):
        got = theirs(wave, language=language, textnorm=itn)[0]
        want = ours.transcribe(wave, options=sv.DecodingOptions(language=language, textnorm=itn))
        assert want.clean_text == transcript
        assert got == want.text, (got, want)


# ----------------------------------------------------------------------------------------------- int8, trained model



def test_int8_onnx_tokens_agree_with_fp32_on_a_trained_model(trained_tiny_dir, tmp_path):
    model, _, frontend, _ = load_parts(trained_tiny_dir)
    feats, lens = trained_batch(model, frontend)
    export.export(trained_tiny_dir, tmp_path, int8=True)
    runner = OrtBackend(tmp_path / export.INT8_NAME, sv.BackendOptions("onnxruntime", "int8"), threads=1)
    hyps, refs = [], []
    for i, (language, _, _, itn, _) in enumerate(BATCH):  # each utterance with the prompt it was trained with
        with torch.no_grad():
            logp, out_lens = model.ctc_logprobs(feats[i:i + 1], lens[i:i + 1], language, itn)
        logits, onnx_lens = runner.ctc_scores(feats[i:i + 1], lens[i:i + 1], language, itn)
        refs += greedy_tokens(logp, out_lens)
        hyps += greedy_tokens(logits, onnx_lens)
    assert sum(map(len, refs)) >= 20
    assert token_agreement(hyps, refs) >= MIN_INT8_AGREEMENT


# ----------------------------------------------------------------------------------------------- official size
@pytest.mark.official
@pytest.mark.slow
def test_official_size_onnx_logits_match_pytorch(official_dir, official, tmp_path):
    """One trace of the 234 M model (about 1 GB on disk, ~30 s on 2 cores); real clips of different lengths.
    ``export.export`` around it (files, metadata, self-check) is covered on the tiny model."""
    with one_thread():
        model, _, frontend, _ = load_parts(official_dir)
        export.to_onnx(model, {}, tmp_path / export.FP32_NAME)
        clips = [str(official / "example" / f"{lang}.mp3") for lang in OFFICIAL_LANGS[:2]]
        feats, lens = model.extract_features(clips, list(OFFICIAL_LANGS[:2]), frontend, 16000)
        assert len(set(lens.tolist())) == 2
        assert_logits_match(model, tmp_path / export.FP32_NAME, feats, lens, "auto", "withitn")
