"""Our speaker encoder as a FunASR model, so that FunASR's own ``AutoModel(..., spk_model=...)`` diarizes with it:

    import sensevoice.funasr_speaker  # registers the model class "resemblyzer" with FunASR
    AutoModel(model=..., vad_model=fsmn_vad_dir(), spk_model="resemblyzer", spk_kwargs={"model_conf": {}}, ...)

FunASR resolves ``spk_model`` from a hub unless ``spk_kwargs`` carries ``model_conf`` (then it builds the registered
class by name, as it does for ``silero-vad``); the weights are the resemblyzer wheel's (sensevoice/diarize.py).
FunASR then cuts each VAD segment into 1.5 s chunks every 0.75 s, embeds them with this class, clusters with its
own ClusterBackend and returns ``sentence_info`` with a ``spk`` per sentence. ``transcribe --diarize`` and the
service use our own windows and clustering instead (sensevoice/diarize.py), measured in bench/results/.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from funasr.register import tables
from torch import nn

from sensevoice.diarize import WINDOW_SAMPLES, GE2EEncoder, loudness_gain

SPK_MODEL = "resemblyzer"  # the name AutoModel's spk_model takes


def fit_window(chunk: np.ndarray) -> np.ndarray:
    """A chunk of any length as one encoder window: centred in WINDOW_SAMPLES of zeros, or its middle when longer."""
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    if len(chunk) >= WINDOW_SAMPLES:
        start = (len(chunk) - WINDOW_SAMPLES) // 2
        return chunk[start:start + WINDOW_SAMPLES].astype(np.float32)
    start = (WINDOW_SAMPLES - len(chunk)) // 2
    out[start:start + len(chunk)] = chunk
    return out


@tables.register("model_classes", SPK_MODEL)
class ResemblyzerSpeakerModel(nn.Module):
    """FunASR's speaker-model contract (as CAM++ keeps it): ``inference(data_in)`` -> one ``{"spk_embedding":
    (1, D)}`` per audio chunk."""

    def __init__(self, **kwargs: Any):
        super().__init__()
        self.encoder = GE2EEncoder.pretrained()

    @torch.no_grad()
    def inference(self, data_in: Any, data_lengths: Any = None, key: Any = None, **kwargs: Any
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        chunks = [torch.as_tensor(x).float().reshape(-1).numpy() for x in
                  (data_in if isinstance(data_in, (list, tuple)) else [data_in])]
        windows = np.stack([fit_window(c) * loudness_gain(c) for c in chunks])
        embeddings = self.encoder.embed(torch.from_numpy(windows))  # (B, D)
        return [{"spk_embedding": e[None]} for e in embeddings], {}
