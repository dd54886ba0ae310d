"""Loading weights into a built model, strictly and without a second resident copy. ``model.read_checkpoint`` reads
the file as data only (``torch.load(weights_only=True)``: FunASR's door refuses a bad file with it before FunASR's
own lenient loader runs); this module checks its keys and shapes and copies it in. ``SenseVoiceSmall.from_pretrained``
imports it lazily (its body is ``from_pretrained`` here); ModelDir, the backends and the trainer's ``--init`` use it
directly."""

from __future__ import annotations

import ctypes
import mmap
import os
from typing import Any, Mapping

import torch
from torch import Tensor, nn

import model as sv


def check_state_dict(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: str) -> None:
    """CheckpointError unless ``state`` has exactly the keys of ``expected`` with the same shapes (``expected`` may
    live on the meta device: a check before anything is loaded)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise sv.CheckpointError(f"{path} does not match the model: missing {missing[:5]} ({len(missing)}), "
                                 f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatches {wrong[:5]}")


def from_pretrained(model_class: type, model: str | None, kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """``SenseVoiceSmall.from_pretrained``: FunASR builds the model from the directory's config.yaml, then the
    weights load strictly (FunASR's loader keeps random weights for missing keys: not here)."""
    from funasr import AutoModel

    if model is None or not os.path.isdir(model):
        raise FileNotFoundError(f"model={model!r} is not a model directory")
    weights = os.path.join(model, "model.pt")
    if kwargs.get("init_param") is None and not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights} is missing: refusing to run SenseVoiceSmall on random weights")
    kwargs.setdefault("disable_update", True)
    kwargs.setdefault("device", "cpu")
    # FunASR's default of 4 threads oversubscribes small machines, which slows batches down many times.
    kwargs.setdefault("ncpu", min(4, os.cpu_count() or 1))
    built, kwargs = AutoModel.build_model(model=model, trust_remote_code=True, **kwargs)
    if not isinstance(built, model_class):
        raise TypeError(f"FunASR built {type(built)} instead of {model_class.__module__}.{model_class.__name__}")
    load_checkpoint(built, kwargs.get("init_param") or weights)
    return built, kwargs


def load_checkpoint(model: nn.Module, path: str) -> None:
    """Load a FunASR/official checkpoint strictly: every key present, every shape equal.

    The file is memory-mapped and each tensor's pages leave the resident set once copied into the model, so
    loading the 936 MB official checkpoint costs no second resident copy (peak RSS = the model, not twice it).
    """
    state, mapped = sv.read_checkpoint(path)
    expected = model.state_dict()  # detached views of the live parameters and buffers
    check_state_dict(state, expected, path)
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(state[key])  # converts dtype (an fp16 release into an fp32 model)
            if mapped:
                _drop_mapped_pages(state[key])


def _drop_mapped_pages(tensor: Tensor) -> None:
    """Tell the kernel this process no longer needs the memory-mapped file pages under ``tensor`` (they are
    re-read from the file if touched again, so this is safe even for pages shared with a neighbour)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)  # POSIX systems only
    nbytes = tensor.numel() * tensor.element_size()
    if advice is None or nbytes < mmap.PAGESIZE:
        return
    start = tensor.data_ptr() - tensor.data_ptr() % mmap.PAGESIZE
    length = tensor.data_ptr() + nbytes - start
    ctypes.CDLL(None).madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), advice)
