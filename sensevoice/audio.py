"""Reading audio: the one loader every door uses (pipeline, service, bench, training, and model.py's FunASR
``inference`` for anything but an in-memory array). Paths, http(s) URLs and bytes (an audio file, or FunASR's
header-less 16 kHz 16-bit PCM) are decoded here into samples and their rate; ``model.waveform`` makes every input,
decoded here or handed over as an array or tensor, one (N,) float32 mono 16 kHz tensor. ``model.AudioInputError``
names the bad item and what is accepted."""

from __future__ import annotations

import io
import os
import urllib.request
from typing import Any

import numpy as np
import torch
from torch import Tensor

import model as sv

# How audio files start (wav/RF64, flac, ogg, mp3 with or without ID3, webm/matroska); mp4/m4a carry "ftyp" at 4.
CONTAINER_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2",
                   b"\x1a\x45\xdf\xa3")
URL_TIMEOUT_S = 60  # one download, connecting and reading


def is_audio_file(data: bytes) -> bool:
    """Whether bytes start like an audio file (wav, flac, ogg, mp3, webm, mp4) rather than header-less PCM."""
    return data.startswith(CONTAINER_MAGIC) or data[4:8] == b"ftyp"


def _decode_file(source: Any, name: str) -> tuple[np.ndarray, int]:
    import soundfile  # funasr dependency; imported here so that importing this module stays cheap

    try:
        samples, fs = soundfile.read(source, dtype="float32", always_2d=True)  # (N, C)
    except Exception as err:  # soundfile raises several types; all mean "not decodable audio"
        raise sv.AudioInputError(f"{name}: cannot decode audio ({err}); accepted: wav, flac, ogg, mp3 "
                                 f"(any sample rate, mono or multichannel), raw 16-bit PCM bytes, arrays") from err
    return (samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)), int(fs)


def _decode_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    if is_audio_file(data):
        return _decode_file(io.BytesIO(data), name)
    # FunASR's convention: header-less bytes are 16 kHz 16-bit little-endian PCM.
    if len(data) % 2:
        raise sv.AudioInputError(f"{name}: {len(data)} bytes is neither an audio file nor 16-bit PCM (odd length)")
    if data[:256].isascii() and all(32 <= b < 127 or b in b"\t\r\n" for b in data[:256]):
        raise sv.AudioInputError(f"{name}: bytes look like text ({data[:24]!r}…), not audio")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, sv.SAMPLE_RATE


def load_audio(item: Any, name: str, fs: int = sv.SAMPLE_RATE) -> Tensor:
    """Any supported input (path, URL, bytes, numpy array, tensor) -> (N,) float32 mono at 16 kHz; ``fs`` is the
    rate of an array or tensor (files and URLs carry their own, bytes without a header are 16 kHz)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return sv.waveform(item, fs, name)
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, str):
        if item.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(item, timeout=URL_TIMEOUT_S) as response:
                    samples, fs = _decode_bytes(response.read(), name)
            except OSError as err:
                raise sv.AudioInputError(f"{name}: cannot download {item} ({err})") from err
        elif not os.path.isfile(item):
            raise FileNotFoundError(f"{name}: audio file not found: {item!r}")
        else:
            samples, fs = _decode_file(item, name)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        samples, fs = _decode_bytes(bytes(item), name)
    else:
        raise sv.AudioInputError(f"{name}: unsupported input type {type(item).__name__}; accepted: path, URL, "
                                 "bytes, numpy array, torch tensor")
    return sv.waveform(samples, fs, name)
