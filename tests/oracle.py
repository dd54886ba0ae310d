"""FunASR's built-in SenseVoiceSmall (funasr/models/sense_voice/model.py), the numerical oracle.

Our model.py registers the same names, so the built-in class is constructed with its own encoder swapped
back into the registry for the duration of the call."""

from __future__ import annotations

from typing import Any

import torch
from funasr.models.sense_voice import model as builtin
from funasr.register import tables


def build_oracle(ours: torch.nn.Module, config: dict[str, Any]) -> builtin.SenseVoiceSmall:
    """The built-in model with exactly our weights (strict load)."""
    ours_encoder = tables.encoder_classes["SenseVoiceEncoderSmall"]
    tables.encoder_classes["SenseVoiceEncoderSmall"] = builtin.SenseVoiceEncoderSmall
    try:
        oracle = builtin.SenseVoiceSmall(encoder="SenseVoiceEncoderSmall", encoder_conf=config["encoder_conf"],
                                         input_size=ours.dims.n_input, vocab_size=ours.dims.n_vocab,
                                         **config["model_conf"])
    finally:
        tables.encoder_classes["SenseVoiceEncoderSmall"] = ours_encoder
    oracle.load_state_dict(ours.state_dict(), strict=True)
    return oracle.eval()


def oracle_decode(oracle: builtin.SenseVoiceSmall, data_in: Any, tokenizer: Any, **kwargs: Any):
    """Run the oracle's inference; returns (results, recorded CTC log-probs (B, T, V))."""
    recorded = []
    original = oracle.ctc.log_softmax

    def record(x):
        out = original(x)
        recorded.append(out.detach().clone())
        return out

    oracle.ctc.log_softmax = record
    try:
        with torch.no_grad():
            results, _ = oracle.inference(data_in, tokenizer=tokenizer, device="cpu", **kwargs)
    finally:
        oracle.ctc.log_softmax = original
    return results, recorded[0]
