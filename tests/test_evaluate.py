"""Scoring of the evaluation command: error rates per language and tag accuracies."""

from __future__ import annotations

import pytest

from sensevoice.bench.evaluate import markdown, normalize, score


def row(target, lang="en", emo="NEUTRAL", event="Speech", itn="woitn"):
    return {"target": target, "text_language": f"<|{lang}|>", "emo_target": f"<|{emo}|>",
            "event_target": f"<|{event}|>", "with_or_wo_itn": f"<|{itn}|>"}


def hyp(clean, lang="en", emo="NEUTRAL", event="Speech"):
    return {"clean_text": clean, "language": lang, "emotion": emo, "event": event}


def test_normalize_ignores_case_and_punctuation():
    assert normalize("Hello, World!") == "hello world"
    assert normalize("你好，世界。") == "你好 世界"


def test_scores():
    rows = [row("the cat sat"), row("你好世界", lang="zh"), row("twenty five dollars"), row("$25.", itn="withitn"),
            row("", lang="nospeech", event="BGM")]
    hyps = [hyp("the bat sat"), hyp("你好世", lang="zh", emo="HAPPY"), hyp("twenty five dollars"), hyp("$25"),
            hyp("", lang="nospeech", event="Applause")]
    result = score(rows, hyps)
    assert result["error_rate"]["en"]["value"] == pytest.approx(1 / 7)  # 1 substitution over 3 + 3 + 1 words
    assert result["error_rate"]["zh"]["value"] == pytest.approx(1 / 4)  # 1 deletion over 4 characters
    assert "nospeech" not in result["error_rate"]
    assert result["accuracy"]["emotion"]["value"] == pytest.approx(4 / 5)
    assert result["accuracy"]["event"]["value"] == pytest.approx(4 / 5)
    assert result["accuracy"]["language"]["value"] == 1.0
    assert result["accuracy"]["itn_form"] == {"value": 1.0, "count": 2}
    assert "| WER en | 14.29 % |" in markdown(result, "t")


def test_itn_form_mismatch_counts():
    result = score([row("$25.", itn="withitn")], [hyp("twenty five dollars")])
    assert result["accuracy"]["itn_form"]["value"] == 0.0


def test_command_writes_one_set_of_tables_per_out_name(tiny_dir, tmp_path):
    import json

    import soundfile

    from testkit import speechlike
    from sensevoice.bench import evaluate

    rows = []
    for i in range(2):
        soundfile.write(tmp_path / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
        rows.append({**row("hello world"), "key": f"u{i}", "source": str(tmp_path / f"u{i}.wav")})
    test = tmp_path / "val.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for penalty in ("0", "0.5"):  # "val_blank0.5" must not overwrite "val_blank0"'s tables (no with_suffix)
        assert evaluate.main(["--model", str(tiny_dir), "--test", str(test), "--blank-penalty", penalty,
                              "--out", str(tmp_path / f"val_blank{penalty}")]) == 0
    for penalty in (0.0, 0.5):
        saved = json.loads((tmp_path / f"val_blank{penalty:g}.json").read_text())
        assert saved["blank_penalty"] == penalty and saved["utterances"] == 2
        assert ("blank penalty 0.5" in (tmp_path / f"val_blank{penalty:g}.md").read_text()) == (penalty == 0.5)
        assert len((tmp_path / f"val_blank{penalty:g}_hyps.jsonl").read_text().splitlines()) == 2


def test_negative_blank_penalty_is_a_usage_error(tmp_path, capsys):
    from sensevoice.bench import evaluate

    with pytest.raises(SystemExit) as exit_info:  # before the model directory or the test list is read
        evaluate.main(["--model", str(tmp_path / "none"), "--test", str(tmp_path / "none.jsonl"),
                       "--blank-penalty", "-1"])
    assert exit_info.value.code == 2
    assert "argument --blank-penalty: expected a number >= 0, got '-1'" in capsys.readouterr().err
