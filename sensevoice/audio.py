"""Reading audio: the one loader every door uses (pipeline, service, bench, training, and model.py's FunASR
``inference``, which imports it lazily). Paths, http(s) URLs and bytes (an audio file, or FunASR's header-less
16 kHz 16-bit PCM) are decoded here into samples and their rate; ``waveform`` makes every input, decoded here or
handed over as an array or tensor, one (N,) float32 mono 16 kHz tensor. ``AudioInputError`` names the bad item
and what is accepted."""

from __future__ import annotations

import io
import os
import urllib.request
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import model as sv

# How audio files start (wav/RF64, flac, ogg, mp3 with or without ID3, webm/matroska); mp4/m4a carry "ftyp" at 4.
CONTAINER_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2",
                   b"\x1a\x45\xdf\xa3")
URL_TIMEOUT_S = 60  # one download, connecting and reading
MIN_SAMPLES = 400  # one 25 ms analysis window; shorter audio is zero-padded to it


class AudioInputError(ValueError):
    """One input item could not be turned into 16 kHz mono audio; the message names the item."""


def waveform(samples: np.ndarray | Tensor, fs: int, name: str) -> Tensor:
    """Samples at ``fs`` Hz, (N,) or (C, N) / (N, C) float or int16/int32 -> (N,) float32 mono at 16 kHz, at
    least MIN_SAMPLES long."""
    x = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else samples
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float32) / 2147483648.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise AudioInputError(f"{name}: array dtype {x.dtype} is not audio; use float32 in [-1, 1] or int16")
    if x.ndim == 2:  # (C, N) or (N, C): channels are the short axis
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1)
    elif x.ndim != 1:
        raise AudioInputError(f"{name}: audio array has shape {x.shape}; expected (samples,) or (channels, samples)")
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise AudioInputError(f"{name}: audio is empty (0 samples)")
    if not np.isfinite(x).all():
        raise AudioInputError(f"{name}: audio contains NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(x))
    if fs != sv.SAMPLE_RATE:
        import torchaudio.functional  # only needed for resampling

        wave = torchaudio.functional.resample(wave, fs, sv.SAMPLE_RATE)
    if wave.numel() < MIN_SAMPLES:
        wave = F.pad(wave, (0, MIN_SAMPLES - wave.numel()))
    return wave


def is_audio_file(data: bytes) -> bool:
    """Whether bytes start like an audio file (wav, flac, ogg, mp3, webm, mp4) rather than header-less PCM."""
    return data.startswith(CONTAINER_MAGIC) or data[4:8] == b"ftyp"


def _decode_file(source: Any, name: str) -> tuple[np.ndarray, int]:
    import soundfile  # funasr dependency; imported here so that importing this module stays cheap

    try:
        samples, fs = soundfile.read(source, dtype="float32", always_2d=True)  # (N, C)
    except Exception as err:  # soundfile raises several types; all mean "not decodable audio"
        raise AudioInputError(f"{name}: cannot decode audio ({err}); accepted: wav, flac, ogg, mp3 "
                                 f"(any sample rate, mono or multichannel), raw 16-bit PCM bytes, arrays") from err
    return (samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)), int(fs)


def _decode_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    if is_audio_file(data):
        return _decode_file(io.BytesIO(data), name)
    # FunASR's convention: header-less bytes are 16 kHz 16-bit little-endian PCM.
    if len(data) % 2:
        raise AudioInputError(f"{name}: {len(data)} bytes is neither an audio file nor 16-bit PCM (odd length)")
    if data[:256].isascii() and all(32 <= b < 127 or b in b"\t\r\n" for b in data[:256]):
        raise AudioInputError(f"{name}: bytes look like text ({data[:24]!r}…), not audio")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, sv.SAMPLE_RATE


def load_audio(item: Any, name: str, fs: int = sv.SAMPLE_RATE) -> Tensor:
    """Any supported input (path, URL, bytes, numpy array, tensor) -> (N,) float32 mono at 16 kHz; ``fs`` is the
    rate of an array or tensor (files and URLs carry their own, bytes without a header are 16 kHz)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return waveform(item, fs, name)
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, str):
        if item.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(item, timeout=URL_TIMEOUT_S) as response:
                    samples, fs = _decode_bytes(response.read(), name)
            except OSError as err:
                raise AudioInputError(f"{name}: cannot download {item} ({err})") from err
        elif not os.path.isfile(item):
            raise FileNotFoundError(f"{name}: audio file not found: {item!r}")
        else:
            samples, fs = _decode_file(item, name)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        samples, fs = _decode_bytes(bytes(item), name)
    else:
        raise AudioInputError(f"{name}: unsupported input type {type(item).__name__}; accepted: path, URL, "
                                 "bytes, numpy array, torch tensor")
    return waveform(samples, fs, name)
