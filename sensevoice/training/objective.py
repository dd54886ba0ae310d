"""SenseVoiceSmall's training objective: CTC on the text frames + label-smoothed cross-entropy on the four tag
frames. ``model.SenseVoiceSmall.forward`` (what FunASR's trainer and ours call) imports this module lazily: model.py
on its own stops at the CTC scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import model as sv

LANGUAGE_PROMPT_DROPOUT = 0.2  # share of utterances whose language prompt is "auto": they learn to identify it


def prompt_row(special: sv.SpecialTokens, token_id: int) -> int:
    """Prompt-embedding row for a language or text-norm target token."""
    for name, i in (*special.language.items(), *special.textnorm.items()):
        if i == token_id:
            return sv.PROMPT_ROWS[name]
    raise ValueError(f"token id {token_id} is not a language or text-norm tag")


def training_loss(model: sv.SenseVoiceSmall, speech: Tensor, speech_lengths: Tensor, text: Tensor,
                  text_lengths: Tensor, special: sv.SpecialTokens) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """(loss, stats, weight) as FunASR's trainer expects. speech: (B, T, n_input) features; text: (B, L) =
    [language, emotion, event, itn] tag ids followed by the transcript ids, padded with ``model.ignore_id``;
    lengths: (B,) or (B, 1) (FunASR's collate)."""
    speech_lengths = speech_lengths.reshape(speech_lengths.shape[0], -1)[:, 0]
    text_lengths = text_lengths.reshape(text_lengths.shape[0], -1)[:, 0]
    language_rows = torch.tensor([prompt_row(special, int(t)) for t in text[:, 0]], device=speech.device)
    if model.training:
        dropped = torch.rand(len(language_rows), device=speech.device) < LANGUAGE_PROMPT_DROPOUT
        language_rows = language_rows.masked_fill(dropped, sv.PROMPT_ROWS["auto"])
    textnorm_rows = torch.tensor([prompt_row(special, int(t)) for t in text[:, 3]], device=speech.device)
    x, out_lens = model.encode(speech, speech_lengths, language_rows, textnorm_rows)
    logits = model.ctc(x).float()  # (B, 4 + T, V)
    B = x.shape[0]

    targets = text[:, sv.N_PROMPT:]
    target_lens = text_lengths - sv.N_PROMPT
    logp = logits[:, sv.N_PROMPT:].log_softmax(dim=-1).transpose(0, 1)  # (T, B, V)
    loss_ctc = F.ctc_loss(logp, targets.clamp(min=0), out_lens - sv.N_PROMPT, target_lens, blank=special.blank,
                          reduction="sum", zero_infinity=True) / B
    tag_logits = logits[:, :sv.N_PROMPT]  # (B, 4, V)
    tag_targets = text[:, :sv.N_PROMPT]  # (B, 4)
    loss_rich = F.cross_entropy(tag_logits.reshape(-1, tag_logits.shape[-1]), tag_targets.reshape(-1),
                                ignore_index=model.ignore_id, label_smoothing=model.lsm_weight, reduction="sum")
    loss_rich = loss_rich / (sv.N_PROMPT * B if model.length_normalized_loss else B)
    acc_rich = (tag_logits.argmax(-1) == tag_targets).float().mean()
    loss = loss_ctc + loss_rich
    weight = (text_lengths + 1).sum() if model.length_normalized_loss else torch.tensor(B)
    stats = {"loss": loss.detach(), "loss_ctc": loss_ctc.detach(), "loss_rich": loss_rich.detach(),
             "acc_rich": acc_rich.detach(), "batch_size": torch.tensor(float(B))}
    return loss, stats, weight.to(loss.device)
