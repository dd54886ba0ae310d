"""Recipe steps around training: start a model directory from a corpus, deepen a trained one, package it.

    python -m sensevoice.training.recipe init --corpus data/corpus --out exp/demo_init --vocab-size 1500 \
        --encoder-conf '{"output_size": 256, "num_blocks": 6, "tp_blocks": 2, "linear_units": 1024}'
    python -m sensevoice.training.recipe init --tokenizer T.bpe.model --cmvn am.mvn --out DIR   # the files exist
    python -m sensevoice.training.recipe grow --model exp/demo --num-blocks 12 --out exp/demo_deep
    python -m sensevoice.training.recipe widen --model demo --text data/tokenizer.txt --out exp/demo_wide
    python -m sensevoice.training.recipe package --model exp/demo --out demo

``init`` trains a SentencePiece tokenizer on the corpus text (with every SenseVoice special token by name),
computes CMVN statistics (am.mvn) from the training audio, and writes a model directory with random weights.
``grow`` gives a trained model more encoder blocks without changing what it computes: the new blocks sit between
the trained ones and start as identities, so training goes on from the trained model's loss with more capacity.
``widen`` gives a trained model a piece and a CTC output for every character of a text its tokenizer lacks, again
without changing what it computes (the new outputs start far below the old ones).
``package`` copies a trained directory into a release folder with fp16 weights (they load into the fp32 model
unchanged: ``load_state_dict`` casts).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from sensevoice.audio import load_audio
from sensevoice import modeldir
from sensevoice.door import module_main
from sensevoice.modeldir import ModelDir
from sensevoice.training.tokenizer import add_pieces, train_tokenizer
from sensevoice.datalist import read_jsonl

TOKENIZER_NAME = "sensevoice.bpe.model"
RELEASE_FILES = ("model.py", "config.yaml", "configuration.json", "am.mvn", "model.pt")


def corpus_cmvn(jsonl: Path, out: Path, sample: int = 2000, seed: int = 0) -> Path:
    """Mean/std of the LFR-stacked fbank features over (a sample of) the corpus, written as am.mvn."""
    from funasr.frontends.wav_frontend import WavFrontend

    config = modeldir.read_config()
    frontend = WavFrontend(**{**config["frontend_conf"], "cmvn_file": None, "dither": 0.0})
    rows = read_jsonl(jsonl)
    rows = random.Random(seed).sample(rows, min(sample, len(rows)))
    total, total_sq, count = 0.0, 0.0, 0
    for row in tqdm(rows, desc="cmvn", unit="utt"):
        wave = load_audio(row["source"], row["key"])
        feats, _ = frontend(wave[None], torch.tensor([wave.numel()]))
        feats = feats[0].double()
        total = total + feats.sum(0)
        total_sq = total_sq + (feats ** 2).sum(0)
        count += feats.shape[0]
    mean = total / count
    std = (total_sq / count - mean ** 2).clamp(min=1e-8).sqrt()
    return modeldir.write_cmvn(out, mean.numpy(), std.numpy())


def init(out: Path, vocab_size: int, encoder_conf: dict, seed: int, corpus: Path | None = None,
         text: Path | None = None, tokenizer: Path | None = None, cmvn: Path | None = None) -> Path:
    """A random-weight model directory. Its tokenizer is trained on ``text`` (default: the corpus's text.txt)
    unless an existing ``tokenizer`` is given; its am.mvn is computed from the corpus's training audio unless an
    existing ``cmvn`` is given (a machine that has the two files needs neither the text nor the audio)."""
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        text = text or (corpus / "text.txt" if corpus else None)
        if text is None:
            raise ValueError("init needs --tokenizer, --text or --corpus (whose text.txt trains the tokenizer)")
        sentences = [line for line in Path(text).read_text(encoding="utf-8").splitlines() if line.strip()]
        tokenizer = train_tokenizer(sentences, out / TOKENIZER_NAME, vocab_size)
    if cmvn is None:
        if corpus is None:
            raise ValueError("init needs --cmvn or --corpus (whose training audio gives the CMVN statistics)")
        cmvn = corpus_cmvn(corpus / "train.jsonl", out / "am.mvn", seed=seed)
    return ModelDir.create(out, tokenizer, cmvn, encoder_conf, seed=seed).path


def copy_model_files(model_dir: Path, out: Path) -> None:
    """Everything of a model directory but its weights: model.py, config, descriptor, am.mvn, tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    descriptor = json.loads((model_dir / "configuration.json").read_text())
    tokenizer = descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    for name in (*RELEASE_FILES[:-1], tokenizer):
        shutil.copyfile(model_dir / name, out / name)


def identity_block(state: dict[str, torch.Tensor], prefix: str) -> None:
    """Zero what a pre-norm SAN-M block adds to its residual stream, in place: the value projection (which feeds
    both attention and the FSMN memory), the attention output bias and the feed-forward output. The block then
    passes its input through unchanged, while every one of its weights still gets a gradient."""
    qkv_weight, qkv_bias = state[prefix + "self_attn.linear_q_k_v.weight"], state[prefix + "self_attn.linear_q_k_v.bias"]
    d_model = qkv_weight.shape[0] // 3  # rows are [query; key; value]
    qkv_weight[2 * d_model:] = 0
    qkv_bias[2 * d_model:] = 0
    for name in ("self_attn.linear_out.bias", "feed_forward.w_2.weight", "feed_forward.w_2.bias"):
        state[prefix + name].zero_()


def grow(model_dir: Path, out: Path, num_blocks: int, seed: int = 0) -> Path:
    """A copy of a trained model with ``num_blocks`` encoder blocks that computes the same outputs: the trained
    blocks keep their order, identity blocks are spread evenly between them."""
    config = modeldir.read_config(model_dir / "config.yaml")
    old_blocks = int(config["encoder_conf"]["num_blocks"])
    if num_blocks <= old_blocks:
        raise ValueError(f"{model_dir} already has {old_blocks} encoder blocks; grow needs --num-blocks above that, "
                         f"got {num_blocks}")
    copy_model_files(model_dir, out)
    config["encoder_conf"]["num_blocks"] = num_blocks
    modeldir.write_config(config, out / "config.yaml")
    state = ModelDir(out).build(seed=seed).state_dict()
    trained = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)

    # encoders0 (the block that changes width) stays first; the n - 1 blocks after it are the ones that grow.
    n_old, n_new = old_blocks - 1, num_blocks - 1
    slots = [round(j * n_new / n_old) for j in range(n_old)] if n_old else []  # where trained block j lands
    moved = {f"encoder.encoders.{j}.": f"encoder.encoders.{slot}." for j, slot in enumerate(slots)}
    for key, value in trained.items():
        prefix = next((p for p in moved if key.startswith(p)), None)
        new_key = moved[prefix] + key[len(prefix):] if prefix else key
        if new_key not in state:
            raise ValueError(f"{model_dir}/model.pt: {key} is not a parameter of the model its config.yaml describes")
        if state[new_key].shape != value.shape:
            raise ValueError(f"{model_dir}/model.pt: {key} has shape {tuple(value.shape)}, its config.yaml "
                             f"describes {tuple(state[new_key].shape)}")
        state[new_key] = value.to(state[new_key].dtype)
    for slot in sorted(set(range(n_new)) - set(slots)):
        identity_block(state, f"encoder.encoders.{slot}.")
    torch.save(state, out / "model.pt")
    return out


def widen(model_dir: Path, text: Path, out: Path) -> Path:
    """A copy of a trained model whose tokenizer also has a piece for every character of ``text`` (one sentence a
    line) and whose CTC head has a row for each new piece. The new rows start with zero weights and a bias below
    every old one, so the copy decodes exactly as the original until training teaches it the new characters."""
    copy_model_files(model_dir, out)
    descriptor = json.loads((model_dir / "configuration.json").read_text())
    tokenizer = descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    lines = Path(text).read_text(encoding="utf-8").splitlines()
    added = add_pieces(model_dir / tokenizer, lines, out / tokenizer)
    state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    weight, bias = state["ctc.ctc_lo.weight"].float(), state["ctc.ctc_lo.bias"].float()
    state["ctc.ctc_lo.weight"] = torch.cat([weight, weight.new_zeros(len(added), weight.shape[1])])
    state["ctc.ctc_lo.bias"] = torch.cat([bias, bias.new_full((len(added),), float(bias.min()) - 10.0)])
    torch.save(state, out / "model.pt")
    ModelDir(out).load()  # the widened directory builds and loads strictly
    return out


def package(model_dir: Path, out: Path) -> Path:
    """Release folder: model files + tokenizer, weights stored as fp16."""
    copy_model_files(model_dir, out)
    state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, out / "model.pt")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="step", required=True)
    p_init = sub.add_parser("init", help="tokenizer + am.mvn + random-weight model directory from a corpus")
    p_init.add_argument("--corpus", type=Path, help="folder with text.txt and train.jsonl")
    p_init.add_argument("--text", type=Path, help="tokenizer training text, a sentence a line (default: CORPUS/text.txt)")
    p_init.add_argument("--tokenizer", type=Path, help="an existing SentencePiece model to use instead of training one")
    p_init.add_argument("--cmvn", type=Path, help="an existing am.mvn to use instead of computing one from CORPUS")
    p_init.add_argument("--out", type=Path, required=True)
    p_init.add_argument("--vocab-size", type=int, default=1500)
    p_init.add_argument("--encoder-conf", type=json.loads, default={}, help="JSON overrides of config.yaml encoder_conf")
    p_init.add_argument("--seed", type=int, default=0)
    p_grow = sub.add_parser("grow", help="more encoder blocks for a trained model, same outputs (identity blocks)")
    p_grow.add_argument("--model", type=Path, required=True, help="trained model directory")
    p_grow.add_argument("--num-blocks", type=int, required=True, help="encoder_conf num_blocks of the result")
    p_grow.add_argument("--out", type=Path, required=True)
    p_grow.add_argument("--seed", type=int, default=0, help="seed of the new blocks' query/key/feed-forward weights")
    p_widen = sub.add_parser("widen", help="a piece (and CTC row) for every new character of a text, same outputs")
    p_widen.add_argument("--model", type=Path, required=True, help="trained model directory")
    p_widen.add_argument("--text", type=Path, required=True, help="text whose characters the tokenizer must cover")
    p_widen.add_argument("--out", type=Path, required=True)
    p_package = sub.add_parser("package", help="copy a trained model directory into a release folder (fp16)")
    p_package.add_argument("--model", type=Path, required=True)
    p_package.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    if args.step == "init":
        print(init(args.out, args.vocab_size, args.encoder_conf, args.seed, corpus=args.corpus, text=args.text,
                   tokenizer=args.tokenizer, cmvn=args.cmvn))
    elif args.step == "grow":
        print(grow(args.model, args.out, args.num_blocks, args.seed))
    elif args.step == "widen":
        print(widen(args.model, args.text, args.out))
    else:
        print(package(args.model, args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.training.recipe", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
