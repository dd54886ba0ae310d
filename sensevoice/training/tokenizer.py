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


def add_pieces(model_path: Path, text: Iterable[str], out_path: Path) -> list[str]:
    """A copy of a SentencePiece model with one new piece for every character of ``text`` it has no piece for
    (scored below every existing piece, so old text keeps its segmentation); returns the pieces added, which get
    the ids after the old ones."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_path).read_bytes())
    known = {piece.piece for piece in proto.pieces}
    lowest = min(piece.score for piece in proto.pieces)
    added = sorted({char for line in text for char in line if not char.isspace()} - known)
    for char in added:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = char, lowest - 1.0, sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_bytes(proto.SerializeToString())
    return added
