"""Shared fixtures: tokenizers, model directories (official-size and tiny), synthetic audio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # model.py, importable as FunASR imports it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # testkit.py, oracle.py, helpers.py

import model as sv  # noqa: E402
from sensevoice import modeldir  # noqa: E402
from sensevoice.modeldir import ModelDir
from sensevoice.training.tokenizer import train_tokenizer  # noqa: E402
from testkit import TINY_ENCODER, sentences, speechlike  # noqa: E402



def pytest_configure(config):
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def official() -> Path:
    found = modeldir.official_dir()
    if found is None:
        pytest.skip(f"official release files not found (set ${modeldir.OFFICIAL_ENV} or put them in ../shared/official)")
    return found


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory) -> Path:
    return train_tokenizer(sentences(), tmp_path_factory.mktemp("tok") / "tiny.bpe.model", vocab_size=200)


@pytest.fixture(scope="session")
def identity_cmvn(tmp_path_factory) -> Path:
    dim = 560
    return modeldir.write_cmvn(tmp_path_factory.mktemp("cmvn") / "am.mvn", np.full(dim, 10.0), np.full(dim, 3.0))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_bpe, identity_cmvn) -> Path:
    """Tiny random model (d 64, 2 + 1 blocks) with a 200-piece tokenizer: fast tests of the plumbing."""
    return ModelDir.create(tmp_path_factory.mktemp("tiny"), tiny_bpe, identity_cmvn, TINY_ENCODER, seed=0).path


@pytest.fixture(scope="session")
def mismatched_dir(tmp_path_factory, tiny_dir) -> Path:
    """The tiny model directory with embed.weight dropped from its model.pt: a checkpoint that does not match the
    model. Read only (tests hand it to a door and check the refusal)."""
    import shutil

    folder = tmp_path_factory.mktemp("mismatched") / "broken"
    shutil.copytree(tiny_dir, folder)
    state = torch.load(folder / "model.pt")
    state.pop("embed.weight")
    torch.save(state, folder / "model.pt")
    return folder


@pytest.fixture(scope="session")
def biased_dir(tmp_path_factory, tiny_dir, tiny_bpe, identity_cmvn) -> Path:
    """The tiny model with its CTC biases raised: <|EMO_UNKNOWN|> by 100 nats (it wins wherever it may) and the
    blank by 3 (once <|EMO_UNKNOWN|> is banned, the blank wins every frame). So ``ban_emo_unk`` and a blank
    penalty of 3 each visibly change this model's answers."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(tiny_bpe))
    special = sv.SpecialTokens.from_pieces([processor.id_to_piece(i) for i in range(processor.get_piece_size())])
    state = torch.load(tiny_dir / "model.pt", map_location="cpu")
    state["ctc.ctc_lo.bias"][special.emotion_unknown] += 100.0
    state["ctc.ctc_lo.bias"][special.blank] += 3.0
    return ModelDir.create(tmp_path_factory.mktemp("biased"), tiny_bpe, identity_cmvn, TINY_ENCODER,
                                   state_dict=state).path


@pytest.fixture(scope="session")
def official_dir(tmp_path_factory, official) -> Path:
    """Official config/tokenizer/am.mvn with random official-size weights saved as model.pt."""
    src = official / "SenseVoiceSmall"
    return ModelDir.create(tmp_path_factory.mktemp("official"), src / "chn_jpn_yue_eng_ko_spectok.bpe.model",
                                   src / "am.mvn", seed=0).path


@pytest.fixture(scope="session")
def wav_file(tmp_path_factory) -> Path:
    import soundfile

    path = tmp_path_factory.mktemp("audio") / "speechlike.wav"
    soundfile.write(path, speechlike(2.5), 16000)
    return path


@pytest.fixture(scope="session")
def trained_tiny_dir(tiny_dir) -> Path:
    from helpers import train_tiny

    return train_tiny(tiny_dir, tiny_dir.parent / f"{tiny_dir.name}_trained")


TRAIN_ROWS = [  # (text, language, emotion, event, itn): the corpus fixture's official-format rows
    ("hello world", "<|en|>", "<|HAPPY|>", "<|Speech|>", "<|woitn|>"),
    ("你好", "<|zh|>", "<|NEUTRAL|>", "<|BGM|>", "<|withitn|>"),
    ("one two three", "<|en|>", "<|SAD|>", "<|Speech|>", "<|woitn|>"),
    ("안녕하세요", "<|ko|>", "<|ANGRY|>", "<|Laughter|>", "<|woitn|>")]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """TRAIN_ROWS as an official-format jsonl with speech-like wavs (the trainers' tests)."""
    import soundfile

    folder = tmp_path_factory.mktemp("corpus")
    lines = []
    for i, (text, lang, emo, event, itn) in enumerate(TRAIN_ROWS):
        wav = folder / f"u{i}.wav"
        audio = speechlike(1.0 + 0.4 * i, seed=i)
        soundfile.write(wav, audio, 16000)
        lines.append({"key": f"u{i}", "source": str(wav), "source_len": len(audio) // 160, "target": text,
                      "target_len": len(text), "text_language": lang, "emo_target": emo, "event_target": event,
                      "with_or_wo_itn": itn})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path


@pytest.fixture(scope="session")
def page_client():
    """clients/web/page_client.py (headless Chromium through chromedriver) as a module; skips, naming the install
    script, when Chromium or chromedriver is missing."""
    import importlib.util
    import shutil

    install = "install with: bash scripts/install_client_toolchains.sh"
    if shutil.which("chromedriver") is None:
        pytest.skip(f"chromedriver not installed ({install})")
    spec = importlib.util.spec_from_file_location("page_client", ROOT / "clients" / "web" / "page_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.find_chromium() is None:  # looked up the way the client looks it up
        pytest.skip(f"chromium not installed ({install})")
    return module
