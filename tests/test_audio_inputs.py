"""Inputs of every supported kind decode to the same result; bad inputs fail with errors naming the item."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional

from sensevoice.audio import MIN_SAMPLES, load_audio
from testkit import speechlike
from helpers import load_parts

AUDIO = speechlike(2.0, seed=3)


@pytest.fixture(scope="module")
def parts(tiny_dir):
    model, tokenizer, frontend, config = load_parts(tiny_dir)
    with torch.no_grad():  # sharper outputs so that different inputs give different texts
        for p in model.parameters():
            p.mul_(1.5)
    return model, tokenizer, frontend


def decode(parts, items, **options):
    model, tokenizer, frontend = parts
    keys = [f"item{i}" for i in range(len(items))]
    results, _ = model.inference(items, key=keys, tokenizer=tokenizer, frontend=frontend, **options)
    return [r["text"] for r in results]


def encoded(fmt: str, audio=AUDIO, fs=16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, fs, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def reference(parts):
    return decode(parts, [AUDIO])[0]


def test_reference_is_not_trivial(parts, reference):
    assert reference != decode(parts, [speechlike(2.0, seed=9)])[0]


@pytest.mark.parametrize("kind", ["wav_path", "flac_path", "wav_bytes", "pcm_bytes", "tensor", "int16", "stereo_cn",
                                  "stereo_nc", "float64"])
def test_lossless_inputs_match_the_array(parts, reference, tmp_path, kind):
    if kind.endswith("_path"):
        fmt = kind.split("_")[0]
        item = str(tmp_path / f"a.{fmt}")
        soundfile.write(item, AUDIO, 16000, subtype="FLOAT" if fmt == "wav" else "PCM_24")
    else:
        item = {
            "wav_bytes": _float_wav_bytes,
            "pcm_bytes": lambda: (AUDIO * 32768).clip(-32768, 32767).astype("<i2").tobytes(),
            "tensor": lambda: torch.from_numpy(AUDIO),
            "int16": lambda: (AUDIO * 32768).clip(-32768, 32767).astype(np.int16),
            "stereo_cn": lambda: np.stack([AUDIO, AUDIO]),
            "stereo_nc": lambda: np.stack([AUDIO, AUDIO], axis=1),
            "float64": lambda: AUDIO.astype(np.float64),
        }[kind]()
    assert decode(parts, [item]) == [reference]


def _float_wav_bytes() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, AUDIO, 16000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@pytest.mark.parametrize("fs", [8000, 44100, 48000])
def test_other_sample_rates_are_resampled(parts, tmp_path, fs):
    audio = torchaudio.functional.resample(torch.from_numpy(AUDIO), 16000, fs).numpy()
    path = tmp_path / f"a{fs}.wav"
    soundfile.write(path, audio, fs, subtype="FLOAT")
    from_file = decode(parts, [str(path)])
    assert from_file == decode(parts, [audio], fs=fs)  # arrays say their rate with fs=
    expected = torchaudio.functional.resample(torch.from_numpy(audio), fs, 16000)
    assert from_file == decode(parts, [expected])
    assert load_audio(str(path), "x").shape[0] == pytest.approx(AUDIO.shape[0], abs=2)


def test_mp3_file_and_bytes(parts, tmp_path):
    path = tmp_path / "a.mp3"
    soundfile.write(path, AUDIO, 16000)
    by_path, by_bytes = decode(parts, [str(path), path.read_bytes()])
    assert by_path == by_bytes


def test_a_few_samples_still_decode(parts):
    assert len(decode(parts, [AUDIO[:10]])) == 1
    assert load_audio(AUDIO[:10], "x").shape[0] == MIN_SAMPLES


@pytest.mark.parametrize("item, message", [
    (np.zeros(0, dtype=np.float32), "bad: audio is empty"),
    (np.array([0.1, np.nan] * 800, dtype=np.float32), "bad: audio contains NaN or infinite"),
    (np.array([0.1, np.inf] * 800, dtype=np.float32), "bad: audio contains NaN or infinite"),
    (b"this is certainly not audio, it is a sentence.", "bad: bytes look like text"),
    (b"\x01\x02\x03", "bad: 3 bytes is neither an audio file nor 16-bit PCM"),
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunk", "bad: cannot decode audio"),
    (np.zeros((2, 3, 4), dtype=np.float32), r"bad: audio array has shape \(2, 3, 4\)"),
    (np.array(["a", "b"]), "bad: array dtype <U1 is not audio"),
    ({"not": "audio"}, "bad: unsupported input type dict"),
])
def test_bad_items_are_named(parts, item, message):
    model, tokenizer, frontend = parts
    with pytest.raises(ValueError, match=message):
        model.inference([AUDIO, item], key=["good", "bad"], tokenizer=tokenizer, frontend=frontend)


def test_missing_file_is_named(parts, tmp_path):
    model, tokenizer, frontend = parts
    with pytest.raises(FileNotFoundError, match=r"lost: audio file not found: '.*nope\.wav'"):
        model.inference([str(tmp_path / "nope.wav")], key=["lost"], tokenizer=tokenizer, frontend=frontend)


def test_truncated_mp3_is_an_error_or_a_result(parts, tmp_path):
    data = encoded("MP3", speechlike(3.0, seed=1))
    truncated = data[: len(data) // 2]
    model, tokenizer, frontend = parts
    try:
        results, _ = model.inference([truncated], key=["cut"], tokenizer=tokenizer, frontend=frontend)
    except ValueError as err:
        assert "cut:" in str(err)
    else:
        assert results[0]["key"] == "cut" and results[0]["text"].startswith("<|")
        assert load_audio(truncated, "cut").shape[0] < 3.0 * 16000


def test_batch_results_equal_single_results(parts):
    """Padding never changes an item's answer: each item of a mixed-length batch decodes as it does alone."""
    items = [speechlike(s, seed=i) for i, s in enumerate((0.7, 2.9, 1.6, 2.2))]
    assert decode(parts, items) == [decode(parts, [item])[0] for item in items]


def test_timestamps_are_per_item_in_a_batch(parts):
    items = [speechlike(0.8, seed=1), speechlike(3.0, seed=2)]
    model, tokenizer, frontend = parts
    batch, _ = model.inference(items, key=["a", "b"], tokenizer=tokenizer, frontend=frontend, output_timestamp=True)
    for result, item in zip(batch, items):
        alone, _ = model.inference([item], key=[result["key"]], tokenizer=tokenizer, frontend=frontend,
                                   output_timestamp=True)
        assert result == alone[0]
        duration_ms = len(item) / 16
        spans = result["token_timestamp"]
        assert spans, "the sharpened tiny model emits tokens on this audio"
        assert all(0 <= s <= e <= duration_ms + 60 for s, e in spans)
        assert all(a[0] <= b[0] for a, b in zip(spans, spans[1:]))
