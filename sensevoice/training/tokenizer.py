"""SentencePiece tokenizers that carry the SenseVoice special tokens by name."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

import model as sv

# Every rich tag our models read or write; the official tokenizer holds these pieces too (plus more).
SPECIAL_TOKENS: tuple[str, ...] = tuple(
    sv.tag(name)
    for name in (*sv.LANGUAGES[1:], "zh/en", "en/zh", *sv.EMOTIONS, *sv.EVENTS, *sv.TEXTNORMS)
)


def train_tokenizer(sentences: Iterable[str], model_path: Path, vocab_size: int) -> Path:
    """Train a unigram SentencePiece model whose pieces include SPECIAL_TOKENS; writes ``model_path``."""
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)),
        model_writer=proto,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        user_defined_symbols=list(SPECIAL_TOKENS),
        # As the official tokenizer: no dummy "▁" prefix (so "<|woitn|>hello" decodes without a space), no
        # normalisation; id 0 is <unk> and doubles as the CTC blank.
        add_dummy_prefix=False,
        normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    model_path.write_bytes(proto.getvalue())
    return model_path
