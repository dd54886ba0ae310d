"""sensevoice.bench.agreement: fast paths against the fp32 reference on an official-format test set."""

from __future__ import annotations

import json

import pytest
import soundfile

from testkit import speechlike
from sensevoice.bench import agreement


def test_agreement_counts_token_edits_against_the_reference():
    result = agreement.agreement([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 6, 7]])  # 1 substitution + 1 deletion
    assert result == {"tokens": pytest.approx(1 - 2 / 6), "identical_utterances": 0.5, "reference_tokens": 6}


@pytest.fixture()
def test_jsonl(tmp_path):
    rows = []
    for i, seconds in enumerate((1.6, 2.0, 1.8, 2.4, 1.2)):
        wav = tmp_path / f"u{i}.wav"
        soundfile.write(wav, speechlike(seconds, seed=i), 16000)
        rows.append({"key": f"u{i}", "source": str(wav), "target": "x", "text_language": "<|en|>",
                     "emo_target": "<|NEUTRAL|>", "event_target": "<|Speech|>",
                     "with_or_wo_itn": "<|withitn|>" if i % 2 else "<|woitn|>"})
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_command_measures_each_path_and_writes_tables(trained_tiny_dir, test_jsonl, tmp_path):
    out = tmp_path / "results" / "agree.fp32"  # a dot in the name: OUT.json, not a replaced suffix
    assert agreement.main(["--model", str(trained_tiny_dir), "--test", str(test_jsonl), "--paths",
                           "ort,ort-int8,torch-int8", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    saved = json.loads((out.parent / "agree.fp32.json").read_text())
    assert saved["utterances"] == 5 and list(saved["paths"]) == ["ort", "ort-int8", "torch-int8"]
    for result in saved["paths"].values():
        assert result["reference_tokens"] >= 5 * 4  # at least the four tags per utterance
        assert 0.0 <= result["tokens"] <= 1.0
    assert saved["paths"]["ort"]["tokens"] == 1.0  # fp32 on ONNX Runtime: the same tokens
    assert "| ort-int8 |" in (out.parent / "agree.fp32.md").read_text()


def test_unknown_path_is_refused_by_name(trained_tiny_dir, test_jsonl, tmp_path):
    with pytest.raises(ValueError, match="ort-int4"):
        agreement.measure(trained_tiny_dir, [], ["ort-int4"], tmp_path)


def test_token_agreement():
    assert agreement.edit_distance([1, 2, 3], [1, 3]) == 1 and agreement.edit_distance([], [4, 5]) == 2
    assert agreement.token_agreement([[1, 2, 3], [7]], [[1, 2, 3], [7]]) == 1.0
    assert agreement.token_agreement([[1, 2], [7, 8]], [[1, 2, 3], [7]]) == 0.5  # one deletion + one insertion / 4
    with pytest.raises(ValueError):
        agreement.token_agreement([[1]], [])
