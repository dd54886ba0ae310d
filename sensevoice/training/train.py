"""Fine-tuning recipe: train any SenseVoiceSmall model directory on official-format jsonl.

    python -m sensevoice.training.train --init DIR --train train.jsonl [more.jsonl ...] --val val.jsonl --out exp/run [--max-steps N]

``--init`` is a model directory (the official release, our demo model, or a fresh one made by
``sensevoice.modeldir.make_model_dir``). ``--out`` becomes a complete model directory (model.py, config,
tokenizer, am.mvn, model.pt) that ``AutoModel(model=OUT, trust_remote_code=True)`` loads unchanged, plus
``checkpoints/`` with optimizer state for ``--resume``. Runs are seeded; features are computed once and kept in
memory (fp16), and SpecAugment (config.yaml ``specaug``) supplies the training-time randomness.
``--precision bf16`` runs forward and backward under bf16 autocast (weights and optimizer stay fp32): on CPUs
with AMX or AVX512-BF16 it is the fast choice. ``--device cuda`` trains on a GPU (features stay in host memory;
each batch is copied over); checkpoints and ``model.pt`` are always written with CPU tensors.

``torchrun --nproc_per_node N -m sensevoice.training.train ...`` trains one model in N processes with
DistributedDataParallel (gloo on CPUs; NCCL with ``--device cuda``, process i on cuda:LOCAL_RANK). The batch plan
does not depend on N: ``--batch-frames`` is the whole step's budget and each process computes every N-th utterance of
each batch, so N processes train as one process with the same arguments would (and ``--resume`` may change N).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

import model as sv
from sensevoice import modeldir
from sensevoice.datalist import read_jsonl
from sensevoice.door import module_main
from sensevoice.modeldir import ModelDir

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class Utterance:
    key: str
    feats: torch.Tensor  # (T, n_input) float16, CMVN applied
    target: list[int]  # [language, emotion, event, itn] tag ids + transcript ids


class Featurizer:
    """Audio rows -> utterances (features + target ids) with a model directory's frontend and tokenizer."""

    def __init__(self, model: sv.SenseVoiceSmall, tokenizer: Any, frontend: Any):
        self.model, self.tokenizer, self.frontend = model, tokenizer, frontend
        self.piece_id = {piece: i for i, piece in enumerate(model.special.pieces)}

    def target(self, row: dict[str, Any]) -> list[int]:
        tags = [row["text_language"], row["emo_target"], row["event_target"], row["with_or_wo_itn"]]
        unknown = [t for t in tags if t not in self.piece_id]
        if unknown:
            raise ValueError(f"{row['key']}: tags {unknown} are not pieces of the tokenizer")
        return [self.piece_id[t] for t in tags] + list(self.tokenizer.encode(row["target"]))

    def features(self, source: str) -> np.ndarray:
        """(T, n_input) float16 features of one recording (numpy: worker processes return it by value)."""
        feats, _ = self.model.extract_features([source], [source], self.frontend, sv.SAMPLE_RATE)
        return feats[0].half().numpy()

    def __call__(self, rows: Sequence[dict[str, Any]], desc: str, jobs: int = 1) -> list[Utterance]:
        sources = list(dict.fromkeys(row["source"] for row in rows))  # ITN pairs share one recording
        progress = functools.partial(tqdm, total=len(sources), desc=desc, unit="utt", leave=False, mininterval=10)
        if jobs > 1 and len(sources) > 1:
            global _FEATURIZER
            _FEATURIZER = self  # forked workers inherit it: the model is not pickled per task
            with multiprocessing.get_context("fork").Pool(jobs, initializer=torch.set_num_threads,
                                                          initargs=(1,)) as pool:
                feats = list(progress(pool.imap(_worker_features, sources, chunksize=32)))
        else:
            feats = [self.features(source) for source in progress(sources)]
        by_source = {source: torch.from_numpy(f) for source, f in zip(sources, feats)}
        return [Utterance(row["key"], by_source[row["source"]], self.target(row)) for row in rows]


_FEATURIZER: Featurizer | None = None


def _worker_features(source: str) -> np.ndarray:
    return _FEATURIZER.features(source)


def cached_features(featurize: Featurizer, jsonl: Path, limit: int, model_dir: Path, cache_dir: Path | None,
                    jobs: int = 1) -> list[Utterance]:
    """Features of a jsonl, computed once per (jsonl, limit, am.mvn, tokenizer) and kept in ``cache_dir`` for
    restarts (``None``: not kept; for a one-off run whose features take longer to write than to compute)."""
    descriptor = json.loads((model_dir / "configuration.json").read_text())
    tokenizer_file = model_dir / descriptor["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    digest = hashlib.sha1()
    for part in (jsonl.read_bytes(), str(limit).encode(), (model_dir / "am.mvn").read_bytes(), tokenizer_file.read_bytes()):
        digest.update(part)
    path = cache_dir / f"{jsonl.stem}-{digest.hexdigest()[:16]}.pt" if cache_dir else None
    if path and path.is_file():
        return [Utterance(**u) for u in torch.load(path, weights_only=True)]  # plain data: str, tensor, ints
    utts = featurize(read_jsonl(jsonl)[: limit or None], f"features ({jsonl.name})", jobs)
    if path is None:
        return utts
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save([u.__dict__ for u in utts], path)
    return utts


def length_batches(utts: Sequence[Utterance], max_frames: int, rng: random.Random | None) -> list[list[int]]:
    """Indices grouped by similar length, each batch at most ``max_frames`` padded frames; shuffled if rng."""
    order = sorted(range(len(utts)), key=lambda i: utts[i].feats.shape[0])
    batches, current = [], []
    for i in order:
        longest = max([utts[j].feats.shape[0] for j in current] + [utts[i].feats.shape[0]])
        if current and longest * (len(current) + 1) > max_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def epoch_batches(utts: Sequence[Utterance], max_frames: int, seed: int, skip: int = 0) -> Iterator[list[int]]:
    """Endless batches, epoch by epoch, each epoch shuffled by (seed, epoch): resuming at step n skips exactly
    the n batches a run without interruption would have taken."""
    for epoch in itertools.count():
        for batch in length_batches(utts, max_frames, random.Random(seed * 100_003 + epoch)):
            if skip:
                skip -= 1
                continue
            yield batch


class FeatureBank:
    """Every utterance's features in one (total frames, n_input) fp16 tensor on one device, so that a batch is a
    single gather there rather than B copies on the host (``--features-on-device`` keeps them on the GPU)."""

    def __init__(self, utts: Sequence[Utterance], device: torch.device | str = "cpu"):
        lengths = torch.tensor([u.feats.shape[0] for u in utts])
        self.flat = torch.cat([u.feats for u in utts]).to(device)  # (sum of T, n_input) float16
        self.lengths = lengths.to(device)
        self.starts = (lengths.cumsum(0) - lengths).to(device)
        self.targets = [u.target for u in utts]

    def collate(self, indices: Sequence[int], ignore_id: int, device: torch.device | str = "cpu"
                ) -> dict[str, torch.Tensor]:
        """The padded batch of ``indices`` on ``device``: speech (B, T, n_input) fp32, zeros past each length."""
        index = torch.tensor(list(indices), device=self.flat.device)
        lengths = self.lengths[index]
        frame = torch.arange(int(lengths.max()), device=self.flat.device)
        rows = (self.starts[index, None] + frame).clamp(max=self.flat.shape[0] - 1)  # (B, T)
        speech = self.flat[rows].masked_fill((frame >= lengths[:, None])[..., None], 0)
        targets = [self.targets[i] for i in indices]
        text = torch.full((len(targets), max(len(t) for t in targets)), ignore_id, dtype=torch.long)
        for i, target in enumerate(targets):
            text[i, : len(target)] = torch.tensor(target)
        batch = {"speech": speech, "speech_lengths": lengths, "text": text,
                 "text_lengths": torch.tensor([len(t) for t in targets])}
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        batch["speech"] = batch["speech"].float()
        return batch


def resolve_device(name: str) -> torch.device:
    """``--device`` checked up front: a CUDA device that is not there is an error, never a quiet CPU run."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r}: {error}; expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: training supports cpu and cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name!r}: no CUDA device is visible to PyTorch "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job, from the variables torchrun sets (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Distributed":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """``--device cuda`` means cuda:LOCAL_RANK for each process of a multi-process run."""
        if not self.enabled or requested.type == "cpu":
            return requested
        if requested.index is not None:
            raise ValueError(f"--device {requested}: under torchrun pass --device cuda; process i uses cuda:LOCAL_RANK")
        return resolve_device(f"cuda:{self.local_rank}")

    def start(self, device: torch.device) -> None:
        if self.enabled:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def stop(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()  # nobody leaves while rank 0 still validates or writes
            dist.destroy_process_group()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block (writes the output directory, builds the feature cache), then the others do."""
        if self.enabled and not self.is_main:
            dist.barrier()
        yield
        if self.enabled and self.is_main:
            dist.barrier()

    def shard(self, batch: Sequence[int]) -> tuple[list[int], float]:
        """This rank's utterances of a global batch (every world_size-th) and the factor on its mean loss that
        makes DDP's gradient average the gradient of the whole batch's mean loss: len(mine) * world / len(batch).
        A rank left without utterances computes the batch's first one with factor 0 (every rank joins each step)."""
        mine = list(batch[self.rank::self.world_size])
        if not mine:
            return list(batch[:1]), 0.0
        return mine, len(mine) * self.world_size / len(batch)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to train through: DDP over ``model`` (which keeps the checkpoint keys) when distributed."""
        if not self.enabled:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)

    def batch_loss(self, loss: torch.Tensor, factor: float) -> float:
        """The whole batch's mean loss (this rank's share weighted by ``factor``, summed over ranks)."""
        if not self.enabled:
            return loss.item()
        total = loss.detach().float() * factor / self.world_size
        dist.all_reduce(total)
        return total.item()

    def seed(self, seed: int, step: int) -> None:
        """Ranks > 0 draw their own SpecAugment and prompt-dropout randomness (rank 0 keeps the single-process
        stream, restored from the checkpoint on resume), from (seed, rank, step)."""
        if self.rank > 0:
            torch.manual_seed((seed * 1_000_003 + self.rank) * 1_000_003 + step)


# Steps into a run at which --time-budget fits the schedule's length to the time left, each time at the pace of the
# steps since the previous fit: the first steps are slow (CUDA kernels chosen, memory pools grown), so the first
# estimate is corrected by the later ones (a run on an H200 sped up 4x after step 20).
BUDGET_PROBES = (20, 100, 400, 1600, 6400)


def budget_steps(step: int, since_step: int, since: float, deadline: float) -> int:
    """The last step that ends by ``deadline`` (a ``time.perf_counter()`` value), at the pace of the steps taken
    since ``since_step`` (which began at ``since``)."""
    now = time.perf_counter()
    per_step = (now - since) / max(1, step - since_step)
    return step + max(1, int((deadline - now) / per_step))


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to 5 % of it at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validation_loss(model: sv.SenseVoiceSmall, utts: Sequence[Utterance], max_frames: int, tokenizer: Any,
                    device: torch.device | str = "cpu") -> float:
    model.eval()
    total, weight = 0.0, 0.0
    bank = FeatureBank(utts, device)
    for batch in length_batches(utts, max_frames, rng=None):
        loss, _, _ = model(**bank.collate(batch, model.ignore_id, device), tokenizer=tokenizer)
        total += loss.item() * len(batch)
        weight += len(batch)
    model.train()
    return total / max(weight, 1)


def prepare_out_dir(init: Path, out: Path) -> None:
    """Copy everything but the weights from the init directory: the output is a complete model directory."""
    out.mkdir(parents=True, exist_ok=True)
    for src in init.iterdir():
        if src.is_file() and src.name != "model.pt":
            shutil.copyfile(src, out / src.name)
    shutil.copyfile(modeldir.MODEL_PY, out / "model.py")


def set_specaug_conf(model: torch.nn.Module, config_path: Path, overrides: dict[str, Any]) -> None:
    """Merge ``overrides`` into config.yaml's ``specaug_conf`` and rebuild the model's SpecAugment from it."""
    from funasr.register import tables

    config = modeldir.read_config(config_path)
    if not config.get("specaug"):
        raise ValueError(f"--specaug-conf: {config_path} names no specaug class to configure")
    conf = {**(config.get("specaug_conf") or {}), **overrides}
    try:
        model.specaug = tables.specaug_classes[config["specaug"]](**conf)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--specaug-conf {json.dumps(overrides)}: {config['specaug']} refuses it: {error}") from error
    config["specaug_conf"] = conf
    modeldir.write_config(config, config_path)


def parse_json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"apply_time_mask\": false}}', got {text!r}")
    return value


DROPOUT_KEYS = ("dropout_rate", "attention_dropout_rate", "positional_dropout_rate")


def set_dropout(model: torch.nn.Module, config_path: Path, p: float) -> None:
    """Every dropout of the model (and the output directory's config.yaml) set to ``p``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"--dropout {p}: expected 0 <= p < 1")
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if isinstance(module, sv.SANMAttention):
            module.dropout_p = p
    config = modeldir.read_config(config_path)
    config["encoder_conf"].update({key: p for key in DROPOUT_KEYS})
    modeldir.write_config(config, config_path)


def to_cpu(state: Any) -> Any:
    """Nested state (model or optimizer state dict) with every tensor on the CPU: files load anywhere."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: to_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_cpu(value) for value in state)
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def save_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    rng: dict[str, Any], keep: int = 3) -> None:
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    weights = to_cpu(model.state_dict())
    torch.save({"model": weights, "optimizer": to_cpu(optimizer.state_dict()), "step": step, **rng},
               ckpt_dir / f"step{step:07d}.pt")
    torch.save(weights, out / "model.pt.tmp")
    (out / "model.pt.tmp").replace(out / "model.pt")  # atomically: a crash never leaves a half-written model
    for old in sorted(ckpt_dir.glob("step*.pt"))[:-keep]:
        old.unlink()


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step*.pt")) if (out / "checkpoints").is_dir() else []
    return found[-1] if found else None


def autocast(precision: str, device: torch.device):
    """Autocast context for the training forward pass (a no-op for fp32)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.perf_counter() + (args.time_budget or 0.0)  # --time-budget counts the features too
    if args.no_specaug and args.specaug_conf:
        raise ValueError("--no-specaug and --specaug-conf contradict each other; pass one")
    ranks = Distributed.from_env()
    device = ranks.device(resolve_device(args.device))
    ranks.start(device)
    torch.manual_seed(args.seed)
    init, out = Path(args.init), Path(args.out)
    source = ModelDir(init)
    model, tokenizer, frontend = source.load(), source.tokenizer, source.frontend()
    if args.no_specaug:
        model.specaug = None
    with ranks.main_first():  # rank 0 writes the output directory and the feature cache; the others then read it
        prepare_out_dir(init, out)
        if args.dropout is not None:
            set_dropout(model, out / "config.yaml", args.dropout)
        if args.specaug_conf:
            set_specaug_conf(model, out / "config.yaml", args.specaug_conf)
        featurize = Featurizer(model, tokenizer, frontend)
        cache = None if args.no_feature_cache else out / "features"
        train_utts = [utt for jsonl in args.train for utt in cached_features(
            featurize, Path(jsonl), args.limit, init, cache, args.feature_jobs)]
        val_utts = (cached_features(featurize, Path(args.val), args.limit, init, cache, args.feature_jobs)
                    if args.val and ranks.is_main else [])  # rank 0 validates
    bank = FeatureBank(train_utts, device if args.features_on_device else "cpu")

    model.to(device)  # before the optimizer exists, so its state lives beside the parameters
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step = 0
    resume_from = latest_checkpoint(out) if args.resume else None
    if resume_from is not None:
        state = torch.load(resume_from, map_location="cpu", weights_only=True)  # tensors, numbers, dicts only
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        torch.set_rng_state(state["torch_rng"])  # dropout and SpecAugment continue where they stopped
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        log.info("resumed from %s at step %d", resume_from, step)
    ranks.seed(args.seed, step)
    net = ranks.wrap(model, device)  # trains through DDP when distributed; ``model`` keeps the checkpoint keys

    history = {"train_loss": [], "val_loss": []}
    if resume_from is not None and (out / "train_history.json").is_file():  # keep the curve of earlier runs
        earlier = json.loads((out / "train_history.json").read_text())
        history = {name: [entry for entry in earlier.get(name, []) if entry[0] <= step] for name in history}
    model.train()
    first_step, started = step, time.perf_counter()  # validation and checkpoint time included
    progress = tqdm(total=args.max_steps, initial=step, desc="train", unit="step", mininterval=10,
                    disable=not ranks.is_main)
    last_step = min(args.max_steps, args.stop_at or args.max_steps)
    pace_since = (step, started)
    for batch in epoch_batches(train_utts, args.batch_frames, args.seed, skip=step):
        if step >= last_step:
            break
        if args.time_budget and step - first_step in BUDGET_PROBES:
            last_step = args.max_steps = budget_steps(step, *pace_since, deadline)
            pace_since = (step, time.perf_counter())
            progress.total = last_step
            log.info("--time-budget %.0f s: the schedule ends at step %d", args.time_budget, last_step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.lr, args.warmup, args.max_steps)
        shard, factor = ranks.shard(batch)  # the whole batch, factor 1, in a single process
        with autocast(args.precision, device):
            loss, stats, _ = net(**bank.collate(shard, model.ignore_id, device), tokenizer=tokenizer)
        optimizer.zero_grad(set_to_none=True)
        (loss * factor if ranks.enabled else loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        step += 1
        batch_loss = ranks.batch_loss(loss, factor)
        history["train_loss"].append((step, batch_loss))
        progress.update(1)
        progress.set_postfix(loss=f"{batch_loss:.3f}", ctc=f"{stats['loss_ctc'].item():.3f}",
                             tags=f"{stats['acc_rich'].item():.2f}")
        if val_utts and (step % args.val_every == 0 or step == last_step):
            val = validation_loss(model, val_utts, args.batch_frames, tokenizer, device)
            history["val_loss"].append((step, val))
            progress.write(f"step {step}: validation loss {val:.4f}")
        if ranks.is_main and (step % args.save_every == 0 or step == last_step):
            save_checkpoint(out, model, optimizer, step, rng_state(device))
            (out / "train_history.json").write_text(json.dumps(history))  # the curve survives a killed run
    progress.close()
    if ranks.is_main:
        (out / "train_history.json").write_text(json.dumps(history))
    ranks.stop()
    return {**history, "seconds_per_step": (time.perf_counter() - started) / max(1, step - first_step)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init", required=True, help="model directory to start from (config, tokenizer, am.mvn, model.pt)")
    parser.add_argument("--train", required=True, nargs="+",
                        help="official-format training jsonl (several: their utterances are pooled)")
    parser.add_argument("--val", help="official-format validation jsonl")
    parser.add_argument("--out", required=True, help="output model directory")
    parser.add_argument("--max-steps", type=int, default=2000, help="length of the learning-rate schedule")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="stop after this step (a checkpoint is written) while keeping the --max-steps schedule; "
                             "resume later with --resume (the schedule then follows that run's --max-steps)")
    parser.add_argument("--batch-frames", type=int, default=6000,
                        help="padded feature frames per batch (60 ms each); under torchrun, of all processes together")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--grad-clip", type=float, default=5.0)
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32",
                        help="bf16: autocast forward/backward (fast on AMX/AVX512-BF16 CPUs); weights stay fp32")
    parser.add_argument("--no-specaug", action="store_true", help="train without config.yaml's SpecAugment")
    parser.add_argument("--specaug-conf", type=parse_json_object, default=None, metavar="JSON",
                        help="keys merged into config.yaml's specaug_conf, in the model and the output config.yaml, "
                             "e.g. '{\"apply_time_mask\": false}' (frequency masks only)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="set every dropout rate (encoder_conf's three) to this, in the model and the output "
                             "config.yaml (default: the init directory's config)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N (a missing GPU is an error); bf16 autocast works on both")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N utterances of each list")
    parser.add_argument("--feature-jobs", type=int, default=1, metavar="N",
                        help="processes computing the features of a jsonl the first time (default 1)")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="do not keep the features in OUT/features (a one-off run on a fresh machine)")
    parser.add_argument("--features-on-device", action="store_true",
                        help="keep every training feature in the training device's memory (a GPU's: batches are "
                             "gathered there instead of copied from the host each step)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="finish about this long after starting, features included: after %s steps the "
                             "cosine schedule's length (--max-steps) is fitted to the time left, at the pace of "
                             "the steps since the previous fit" % ", ".join(map(str, BUDGET_PROBES)))
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    history = train(args)
    if not Distributed.from_env().is_main:
        return 0
    last = history["val_loss"][-1][1] if history["val_loss"] else float("nan")
    print(f"trained {args.out}: final train loss {history['train_loss'][-1][1]:.4f}, validation loss {last:.4f}, "
          f"{history['seconds_per_step']:.3f} s per step ({args.precision})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.training.train", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
