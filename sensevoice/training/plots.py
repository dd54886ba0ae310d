"""Figures drawn from files the project writes (training history, evaluation results).

    python -m sensevoice.training.plots training --history exp/demo/train_history.json --out demo/fig/training.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from sensevoice.door import module_main


def training_curve(history_path: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads(Path(history_path).read_text())
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps, losses = zip(*history["train_loss"])
    ax.plot(steps, losses, lw=0.8, alpha=0.6, label="train loss (per batch)")
    if history["val_loss"]:
        val_steps, val_losses = zip(*history["val_loss"])
        ax.plot(val_steps, val_losses, "o-", label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("CTC + tag CE loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True)
    training = sub.add_parser("training", help="training and validation loss curves")
    training.add_argument("--history", type=Path, required=True)
    training.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    print(training_curve(args.history, args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("python -m sensevoice.training.plots", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
