"""FunASR's AutoModel surface, kwarg by kwarg: ours against FunASR's built-in SenseVoiceSmall on the same weights
(the README's parity table), FunASR's VAD merge of our per-segment fields, and ``AutoModel.export``."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import model as sv
from testkit import ROOT, TINY_ENCODER, speechlike
from oracle import build_oracle
from sensevoice import export
from sensevoice.modeldir import ModelDir
from sensevoice.richtext import split_rich_text
from sensevoice.vad import fsmn_vad_dir

WAVES = [speechlike(s, seed=i) for i, s in enumerate((1.3, 2.4, 1.8))]
OPTIONS = {"language": "auto", "use_itn": True}


def twins(model_dir, **kwargs):
    """(ours, builtin): one AutoModel over ``model_dir`` and a copy of it running FunASR's built-in class with the
    same weights. The frontend's dither is 0 for both (the built-in adds dither noise by default; ours never does)."""
    ours = ModelDir(model_dir).automodel(ncpu=2, disable_pbar=True, frontend_conf={"dither": 0.0}, **kwargs)
    builtin = copy.copy(ours)
    builtin.model = build_oracle(ours.model, ModelDir(model_dir).config)
    # The built-in hard-codes the official tokenizer's id of <|EMO_UNKNOWN|> (25009); this tokenizer's in its place.
    builtin.model.emo_dict = {**builtin.model.emo_dict, "unk": ours.model.special.emotion_unknown}
    assert type(ours.model) is sv.SenseVoiceSmall and type(builtin.model) is not sv.SenseVoiceSmall
    return ours, builtin


@pytest.fixture(scope="module")
def sharp_dir(tiny_dir, tiny_bpe, identity_cmvn, tmp_path_factory):
    """The tiny model with its weights scaled by 1.5 (as test_parity does), so that its outputs are far from
    uniform: no near-ties between logits for float rounding to flip."""
    state = {k: v * 1.5 if v.is_floating_point() else v for k, v in torch.load(tiny_dir / "model.pt").items()}
    return ModelDir.create(tmp_path_factory.mktemp("sharp"), tiny_bpe, identity_cmvn, TINY_ENCODER,
                           state_dict=state).path


@pytest.fixture(scope="module")
def pair(sharp_dir):
    return twins(sharp_dir)


@pytest.fixture(scope="module")
def vad_pair(sharp_dir):
    return twins(sharp_dir, vad_model=str(fsmn_vad_dir()), vad_kwargs={"max_single_segment_time": 30000})


@pytest.fixture(scope="module")
def demo_pair():
    return twins(ROOT / "demo")


@pytest.fixture(scope="module")
def long_wave():
    """Three utterances with 2 s pauses: three VAD segments."""
    silence = np.zeros(32000, np.float32)
    return np.concatenate([silence[:8000], WAVES[0], silence, WAVES[1], silence, WAVES[2], silence[:8000]])


def texts(results):
    return [r["text"] for r in results]


def both(pair, data, **kwargs):
    ours, builtin = pair
    return ours.generate(input=data, **kwargs), builtin.generate(input=data, **kwargs)


# ----------------------------------------------------------------------------------------------- agreeing rows
@pytest.mark.parametrize("language", ["auto", "en", "zh", "ko"])
@pytest.mark.parametrize("use_itn", [False, True])
def test_language_and_use_itn(pair, language, use_itn):
    ours, theirs = both(pair, WAVES[1], language=language, use_itn=use_itn)
    assert texts(ours) == texts(theirs)


def test_ban_emo_unk(biased_dir):
    ours, theirs = both(twins(biased_dir), WAVES[0],
                        ban_emo_unk=True, **OPTIONS)
    assert texts(ours) == texts(theirs) and "EMO_UNKNOWN" not in ours[0]["text"]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_batch_size(pair, batch_size):
    ours, theirs = both(pair, WAVES, batch_size=batch_size, **OPTIONS)
    assert texts(ours) == texts(theirs) and len(ours) == 3


def test_fs_of_an_array(pair):
    at_8k = WAVES[1][::2].copy()
    ours, theirs = both(pair, at_8k, fs=8000, **OPTIONS)
    assert texts(ours) == texts(theirs)


def test_progress_callback(pair):
    calls = {"ours": [], "builtin": []}
    ours, builtin = pair
    ours.generate(input=WAVES, batch_size=2, progress_callback=lambda *a: calls["ours"].append(a), **OPTIONS)
    builtin.generate(input=WAVES, batch_size=2, progress_callback=lambda *a: calls["builtin"].append(a), **OPTIONS)
    assert calls["ours"] == calls["builtin"] == [(2, 3), (3, 3)]


def test_output_dir_writes_1best_recog_text(pair, tmp_path):
    ours, builtin = pair
    for automodel, folder in ((ours, tmp_path / "ours"), (builtin, tmp_path / "builtin")):
        automodel.generate(input=WAVES, key=["a", "b", "c"], batch_size=3, output_dir=str(folder), **OPTIONS)
    written = (tmp_path / "ours" / "1best_recog" / "text").read_text(encoding="utf-8")
    assert written == (tmp_path / "builtin" / "1best_recog" / "text").read_text(encoding="utf-8")
    assert [line.split(" ", 1)[0] for line in written.splitlines()] == ["a", "b", "c"]


def test_a_key_list_names_the_inputs(pair):
    ours, theirs = both(pair, WAVES[:2], key=["a", "b"], batch_size=2, **OPTIONS)
    assert [r["key"] for r in ours] == [r["key"] for r in theirs] == ["a", "b"]
    assert texts(ours) == texts(theirs)


def test_postprocess_hotwords_corrects_text_and_clean_text(pair):
    ours, builtin = pair
    text = ours.generate(input=WAVES[1], **OPTIONS)[0]["text"]
    word = max(sv.TAG_RE.sub("|", text).split("|"), key=len).strip()  # in both text and clean_text
    fix = {"postprocess_hotwords": [f"{word}=>FIXED"], "postprocess_hotword_fuzzy": False}
    ours_result, theirs = both(pair, WAVES[1], **fix, **OPTIONS)
    assert texts(ours_result) == texts(theirs) and "FIXED" in ours_result[0]["text"]
    assert ours_result[0]["clean_text"] == split_rich_text(ours_result[0]["text"])["clean_text"]


@pytest.mark.parametrize("merge_vad", [False, True])
@pytest.mark.parametrize("batch_size_s", [1, 300])
def test_vad_model_batch_size_s_and_merge_vad(vad_pair, long_wave, merge_vad, batch_size_s):
    ours, theirs = both(vad_pair, long_wave, batch_size_s=batch_size_s, merge_vad=merge_vad, **OPTIONS)
    assert texts(ours) == texts(theirs)


def test_modelscope_pipeline_passes_options(sharp_dir, pair, tmp_path):
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    path = tmp_path / "two.wav"
    soundfile.write(path, WAVES[1], 16000)
    asr = pipeline(task=Tasks.auto_speech_recognition, model=str(sharp_dir), trust_remote_code=True,
                   remote_code=str(ROOT / "model.py"), device="cpu", disable_update=True, ncpu=2, disable_pbar=True)
    assert type(asr.model.model.model) is sv.SenseVoiceSmall
    _, theirs = both(pair, str(path), **OPTIONS)
    assert texts(asr(str(path), **OPTIONS)) == texts(theirs)


def run_funasr_command(command: str, *overrides: str, cwd) -> str:
    """One of FunASR's hydra commands (``funasr-hydra``, ``funasr-export``) in a subprocess; returns its stdout."""
    executable = Path(sys.executable).with_name(command)
    done = subprocess.run([str(executable), *overrides, "++device=cpu", "++ncpu=2", "++disable_update=true",
                           "++disable_pbar=true", "++trust_remote_code=true", f"++remote_code={ROOT / 'model.py'}"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # a fresh Python importing torch and FunASR
def test_funasr_hydra_command_with_output_dir(sharp_dir, pair, tmp_path):
    path = tmp_path / "two.wav"
    soundfile.write(path, WAVES[1], 16000)
    run_funasr_command("funasr-hydra", f"++model={sharp_dir}", f"++input={path}", f"++output_dir={tmp_path / 'out'}",
                       "++language=auto", "++use_itn=true", cwd=tmp_path)
    _, theirs = both(pair, str(path), **OPTIONS)
    assert (tmp_path / "out" / "1best_recog" / "text").read_text(encoding="utf-8") == f"two {theirs[0]['text']}\n"


def test_output_timestamp_on_chinese(demo_pair):
    """Same words and times as the built-in's forced alignment (English words differ: see the next test)."""
    wave = soundfile.read(ROOT / "examples" / "zh.flac", dtype="float32")[0]
    ours, theirs = both(demo_pair, wave, output_timestamp=True, **OPTIONS)
    assert texts(ours) == texts(theirs)
    assert (ours[0]["words"], ours[0]["timestamp"]) == (theirs[0]["words"], theirs[0]["timestamp"])


# ----------------------------------------------------------------------------------------------- intended differences
def test_output_timestamp_splits_words_at_every_word_boundary(demo_pair):
    """The built-in joins the words around a bare "▁" piece ("on ▁ the ▁ 26 th" -> "onthe", "26", "th")."""
    wave = soundfile.read(ROOT / "examples" / "en.flac", dtype="float32")[0]
    ours, theirs = both(demo_pair, wave, output_timestamp=True, **OPTIONS)
    assert texts(ours) == texts(theirs)
    assert ours[0]["words"][3:6] == ["on", "the", "26th"] and theirs[0]["words"][3:6] == ["onthe", "26", "th"]


def test_the_builtin_cannot_export_with_the_pinned_torch(sharp_dir, tmp_path):
    """torch >= 2.9 exports with the dynamo exporter by default, which needs onnxscript (not in our pins); ours
    exports with the TorchScript exporter (tests below). A fresh built-in: once it has written an output_dir it
    holds an open file, and AutoModel.export's deepcopy of it fails before that (ours keeps no file open)."""
    with pytest.raises(ModuleNotFoundError, match="onnxscript"):
        twins(sharp_dir)[1].export(type="onnx", output_dir=str(tmp_path))


def test_zn_means_zh_where_the_builtin_falls_back_to_auto(pair):
    ours, builtin = pair
    assert texts(ours.generate(input=WAVES[0], language="zn")) == texts(builtin.generate(input=WAVES[0], language="zh"))
    assert texts(builtin.generate(input=WAVES[0], language="zn")) == \
        texts(builtin.generate(input=WAVES[0], language="auto"))


def test_unknown_language_is_refused_where_the_builtin_falls_back_to_auto(pair):
    ours, builtin = pair
    assert texts(builtin.generate(input=WAVES[0], language="fr")) == texts(builtin.generate(input=WAVES[0]))
    with pytest.raises(ValueError, match="expected one of"):
        ours.generate(input=WAVES[0], language="fr")


def test_a_key_list_longer_than_the_batch_is_refused_where_the_builtin_repeats_its_first_key(pair):
    ours, builtin = pair
    assert [r["key"] for r in builtin.generate(input=WAVES[:2], key=["a", "b"], **OPTIONS)] == ["a", "a"]
    with pytest.raises(ValueError, match=r"pass batch_size=2"):
        ours.generate(input=WAVES[:2], key=["a", "b"], **OPTIONS)


@pytest.mark.parametrize("hotword", [123, 1.5, {"a": 1}])
def test_bad_hotword_is_a_clear_error_where_the_builtin_ignores_it(pair, hotword):
    ours, builtin = pair
    assert builtin.generate(input=WAVES[0], hotword=hotword, **OPTIONS)
    with pytest.raises(ValueError, match="hotword=.*expected a string of space-separated words"):
        ours.generate(input=WAVES[0], hotword=hotword, **OPTIONS)


# ----------------------------------------------------------------------------------------------- VAD merge
def segments_alone(automodel, wave, **options):
    """The VAD's segments of ``wave`` and the model's own decode of each (no merge)."""
    spans = automodel.inference(wave, model=automodel.vad_model, kwargs=automodel.vad_kwargs)[0]["value"]
    results, _ = automodel.model.inference([wave[s * 16:e * 16] for s, e in spans], tokenizer=automodel.kwargs["tokenizer"],
                                           frontend=automodel.kwargs["frontend"], **OPTIONS, **options)
    return spans, results


def test_per_segment_fields_survive_funasrs_vad_merge(vad_pair, long_wave):
    """Each field of the merged result lists the segments' own values, in order; times are on the file's timeline."""
    ours, _ = vad_pair
    (merged,) = ours.generate(input=long_wave, output_timestamp=True, **OPTIONS)
    spans, alone = segments_alone(ours, long_wave, output_timestamp=True)
    assert len(spans) == 3
    for name in ("language", "emotion", "event", "itn", "avg_logprob", "no_speech_prob"):
        assert merged[name] == [a[name] for a in alone], name
    assert merged["text"] == " ".join(a["text"] for a in alone)
    assert merged["timestamp_token"] == [[t0 + s, t1 + s] for a, (s, _) in zip(alone, spans)
                                         for t0, t1 in a["token_timestamp"]]
    assert merged["timestamp"] == [[t0 + s, t1 + s] for a, (s, _) in zip(alone, spans) for t0, t1 in a["timestamp"]]
    assert merged["tokens"] == [t for a in alone for t in a["tokens"]] and "token_timestamp" not in merged


@pytest.mark.slow
def test_demo_model_on_several_languages_reports_each_segments_language(tmp_path):
    """The model card's usage (vad_model) on the example clips joined with pauses: one language per segment."""
    silence = np.zeros(32000, np.float32)
    langs = ("en", "ko", "yue", "zh", "ja")
    wave = np.concatenate([np.concatenate([soundfile.read(ROOT / "examples" / f"{lang}.flac", dtype="float32")[0],
                                           silence]) for lang in langs])
    automodel = ModelDir(ROOT / "demo").automodel(ncpu=2, disable_pbar=True, vad_model=str(fsmn_vad_dir()),
                                                 vad_kwargs={"max_single_segment_time": 30000})
    (merged,) = automodel.generate(input=wave, **OPTIONS)
    _, alone = segments_alone(automodel, wave)
    assert merged["language"] == [a["language"] for a in alone] == list(langs)
    for name in ("emotion", "avg_logprob", "no_speech_prob"):
        assert merged[name] == [a[name] for a in alone], name


# ----------------------------------------------------------------------------------------------- export
def check_onnx_dir(folder, model, quantized: bool):
    from funasr_onnx import SenseVoiceSmall as FunasrOnnxSenseVoice

    from sensevoice.bench.backends import funasr_onnx_view

    assert (folder / export.INT8_NAME).is_file() == quantized
    inputs = export.dummy_inputs(model.dims.n_input)  # a padded batch of two, different prompts
    with torch.no_grad():
        reference, reference_lens = export.exportable(model)(*inputs)
    for int8 in {False, quantized}:
        runner = FunasrOnnxSenseVoice(funasr_onnx_view(folder), batch_size=1, quantize=int8, intra_op_num_threads=1)
        logits, lens = runner.ort_infer([t.numpy() for t in inputs])  # funasr-onnx's own session on our graph
        assert lens.tolist() == reference_lens.tolist() and logits.shape == reference.shape
        if not int8:
            for i, n in enumerate(lens.tolist()):  # valid frames (padding is never read)
                assert np.abs(logits[i, :n] - reference[i, :n].numpy()).max() < export.VERIFY_TOLERANCE
        (text,) = runner(WAVES[1], language="en", textnorm="woitn")  # and its whole pipeline runs
        assert isinstance(text, str)


def test_automodel_export_onnx_into_an_output_dir_loads_in_funasr_onnx(pair, tmp_path):
    ours, _ = pair
    ours.generate(input=WAVES[0], output_dir=str(tmp_path / "1best"))  # export deep-copies the model after this
    out = ours.export(type="onnx", quantize=True, output_dir=str(tmp_path / "onnx"))
    assert out == str(tmp_path / "onnx")
    assert ModelDir(out).special.pieces == ModelDir(ours.kwargs["model_path"]).special.pieces
    check_onnx_dir(tmp_path / "onnx", ours.model, quantized=True)


def test_automodel_export_defaults_to_the_model_directory(sharp_dir, tmp_path):
    folder = shutil.copytree(sharp_dir, tmp_path / "model")
    config = (folder / "config.yaml").read_text()
    automodel = ModelDir(folder).automodel(ncpu=2, disable_pbar=True)
    automodel.generate(input=WAVES[0])  # generate resets FunASR's kwargs to their snapshot: init_param must survive
    assert automodel.export(type="onnx") == str(folder.resolve())
    assert (folder / "config.yaml").read_text() == config
    check_onnx_dir(folder, automodel.model, quantized=False)


@pytest.mark.slow  # a fresh Python importing torch and FunASR
def test_funasr_export_command(sharp_dir, pair, tmp_path):
    out = tmp_path / "onnx"
    stdout = run_funasr_command("funasr-export", f"++model={sharp_dir}", "++type=onnx", "++quantize=true",
                                f"++output_dir={out}", cwd=tmp_path)
    assert stdout.strip().splitlines()[-1] == str(out)
    check_onnx_dir(out, pair[0].model, quantized=True)


def test_automodel_export_after_decoding_on_onnx_runtime(sharp_dir, tmp_path, monkeypatch):
    """An ONNX Runtime session cannot be deep-copied: the copy that AutoModel.export makes leaves it out."""
    monkeypatch.setenv("SENSEVOICE_CACHE", str(tmp_path / "cache"))
    automodel = ModelDir(sharp_dir).automodel(ncpu=2, disable_pbar=True, backend="onnxruntime")
    automodel.generate(input=WAVES[0])
    assert automodel.model._backend.options.backend == "onnxruntime"
    check_onnx_dir(Path(automodel.export(type="onnx", output_dir=str(tmp_path / "onnx"))), automodel.model,
                   quantized=False)


def test_automodel_export_refuses_a_model_converted_to_int8_in_place(sharp_dir, tmp_path):
    automodel = ModelDir(sharp_dir).automodel(ncpu=2, disable_pbar=True, quantize="int8")  # torch dynamic int8
    automodel.generate(input=WAVES[0])
    with pytest.raises(ValueError, match="converted to torch-int8 in place"):
        automodel.export(type="onnx", output_dir=str(tmp_path))


def test_automodel_export_refuses_other_types(pair, tmp_path):
    with pytest.raises(ValueError, match="type='onnx' only"):
        pair[0].export(type="torchscript", output_dir=str(tmp_path))
