"""Helpers for tests that drive a model directory directly."""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch

from testkit import speechlike
from sensevoice.modeldir import ModelDir
from sensevoice.decoding import ctc_greedy

BATCH = [  # (language, emotion, event, itn, transcript)
    ("en", "HAPPY", "Speech", "woitn", "hello world"),
    ("zh", "SAD", "BGM", "withitn", "你好世界"),
    ("ko", "ANGRY", "Laughter", "woitn", "안녕하세요"),
]


def encode_targets(model, tokenizer, rows):
    """[lang, emo, event, itn] tag ids + transcript ids, padded with ignore_id, as FunASR's dataset builds them."""
    piece_id = {p: i for i, p in enumerate(model.special.pieces)}
    seqs = [[piece_id[f"<|{t}|>"] for t in row[:4]] + tokenizer.encode(row[4]) for row in rows]
    lens = torch.tensor([len(s) for s in seqs])
    text = torch.full((len(seqs), int(lens.max())), model.ignore_id)
    for i, s in enumerate(seqs):
        text[i, : len(s)] = torch.tensor(s)
    return text, lens


class Payload:
    """Unpickled by a trusting loader, this creates ``marker``: the proof that a model file ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_fault(path: Path, fault: str, marker: Path) -> None:
    """A faulty model.pt at ``path``: one of test_hardening.FAULTS; the payload faults would create ``marker``."""
    if fault == "empty":
        path.write_bytes(b"")
    elif fault == "random":
        path.write_bytes(os.urandom(4096))
    elif fault == "pickle_payload":  # torch.save's zip format, as a real model.pt
        torch.save({"encoder.embed.weight": Payload(marker)}, path)
    elif fault == "legacy_pickle_payload":  # a bare pickle, as torch's legacy format
        path.write_bytes(pickle.dumps({"encoder.embed.weight": Payload(marker)}))
    else:
        torch.save([torch.zeros(3)], path)


@contextlib.contextmanager
def one_thread():
    """torch on one thread: on a busy 2-core machine a second OpenMP thread makes every op wait for a time slice
    (10-30x slower here); on an idle one it costs these tests little."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_parts(model_dir: Path):
    """(model in eval mode, tokenizer, frontend with dither 0, config) of a directory, without AutoModel."""
    source = ModelDir(model_dir)
    return source.load(), source.tokenizer, source.frontend(), source.config


@functools.cache
def train_tiny(tiny_dir: Path, out: Path, steps: int = 200) -> Path:
    """tiny_dir's model overfitted on test_training_objective's batch (confident outputs, as a trained model has:
    random weights put near-ties everywhere, which any rounding flips), saved as a model directory."""
    with one_thread():  # tiny ops: a second thread only adds synchronisation
        return _train_tiny(tiny_dir, out, steps)


def _train_tiny(tiny_dir: Path, out: Path, steps: int) -> Path:
    torch.manual_seed(0)
    model, tokenizer, frontend, _ = load_parts(tiny_dir)
    model.specaug = None  # memorising one batch: augmentation would only slow it down
    feats, lens = trained_batch(model, frontend)
    feats, lens = feats[:len(BATCH)], lens[:len(BATCH)]
    text, text_lens = encode_targets(model, tokenizer, BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss, _, _ = model(feats, lens, text, text_lens, tokenizer=tokenizer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    shutil.copytree(tiny_dir, out, dirs_exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    return out


def trained_batch(model, frontend):
    """The training utterances of train_tiny (plus one it never saw)."""
    audio = [speechlike(s, seed=i) for i, s in enumerate((1.6, 2.0, 1.8, 2.4))]
    return model.extract_features(audio, ["a", "b", "c", "unseen"], frontend, 16000)


def greedy_tokens(logp_or_logits: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    return [[t for t, _, _ in path] for path in ctc_greedy(logp_or_logits, lens, blank=0)]


def joined(official: Path, names, pause_s: float = 0.6) -> np.ndarray:
    """The official example clips ``names`` (official/example/<name>), each followed by ``pause_s`` of silence, as
    one 16 kHz float32 wave: real speech of several people, or of one person several times."""
    from sensevoice.audio import load_audio

    parts = []
    for name in names:
        parts += [load_audio(str(official / "example" / name), name).numpy(),
                  np.zeros(int(pause_s * 16000), np.float32)]
    return np.concatenate(parts)


def pcm16(wave: np.ndarray) -> bytes:
    """A [-1, 1] float wave as little-endian 16-bit PCM (as a client streams it), clipped at full scale."""
    return (np.clip(wave, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
