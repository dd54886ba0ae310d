"""FunASR's own trainer (``funasr-train``, the single-process twin of the official ``train_ds.py``) fine-tunes
this project's model.py from official-format jsonl, and the ``model.pt`` it writes loads strictly into our model.

FunASR only *prints* a failed remote-code import and then trains its built-in SenseVoiceSmall, so every run is
checked for which class was built: FunASR's registry table (printed at start-up) names the file the registered
``SenseVoiceSmall`` came from, and that must be our model.py; a run with a broken model.py shows the check fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import funasr.datasets.audio_datasets.index_ds  # noqa: F401  (registers IndexDSJsonl)
import torch
from funasr.datasets.sense_voice_datasets.datasets import SenseVoiceCTCDataset

from sensevoice.checkpoint import load_checkpoint
from sensevoice import modeldir
from sensevoice.modeldir import ModelDir
from sensevoice.training import train

EPOCHS = 6  # the four utterances fit one batch: one optimizer step per epoch, validated after each
# "| SenseVoiceSmall | SenseVoiceSmall | /path/to/model.py:507 |" in FunASR's model_classes table
REGISTERED_RE = re.compile(r"^\|\s*SenseVoiceSmall\s*\|\s*\w+\s*\|\s*(\S+?):\d+\s*\|", re.MULTILINE)
VAL_LOSS_RE = re.compile(r"\] - val, rank: 0, epoch: (\d+)/\d+, .*?\(loss_avg_rank: ([-\d.]+)\)")


def funasr_train(model_dir: Path, remote_code: Path, jsonl: Path, out: Path, epochs: int) -> str:
    """Run FunASR's trainer on the CPU in a fresh process (as a user would); returns its log."""
    script = Path(sys.executable).parent / "funasr-train"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "funasr.bin.train"]
    command += [f"++model={model_dir}", "++trust_remote_code=true", f"++remote_code={remote_code}",
                f"++train_data_set_list={jsonl}", f"++valid_data_set_list={jsonl}", "++device=cpu",
                "++dataset_conf.batch_sampler=BatchSampler", "++dataset_conf.batch_type=token",
                "++dataset_conf.batch_size=6000", "++dataset_conf.data_split_num=1", "++dataset_conf.num_workers=0",
                f"++train_conf.max_epoch={epochs}", "++train_conf.log_interval=1", "++train_conf.resume=false",
                "++train_conf.avg_keep_nbest_models_type=loss",  # our stats carry no ASR 'acc' to rank by
                "++optim_conf.lr=0.003", "++scheduler_conf.warmup_steps=2", f"++output_dir={out}"]
    # cwd away from the repository: FunASR imports remote code as module "model", and a model.py on sys.path
    # ahead of --remote_code's folder would be imported instead
    done = subprocess.run([*command, "++ncpu=2"], cwd=out.parent, capture_output=True, text=True, timeout=120)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    return log


def registered_class_file(log: str) -> Path:
    """The file FunASR's registry took ``SenseVoiceSmall`` from, as its start-up table prints it."""
    found = REGISTERED_RE.findall(log)
    assert len(found) == 1, "FunASR's model_classes table has no single SenseVoiceSmall row"
    return Path(found[0])


def test_funasr_train_fine_tunes_our_model(tiny_dir, corpus, tmp_path):
    out = tmp_path / "exp"
    log = funasr_train(tiny_dir, modeldir.MODEL_PY, corpus, out, EPOCHS)

    assert f"Loading remote code successfully: {modeldir.MODEL_PY}" in log
    assert registered_class_file(log) == modeldir.MODEL_PY  # not funasr/models/sense_voice/model.py
    assert "(ctc): CTCHead(" in log  # the module tree FunASR printed is ours (its built-in has CTC)

    val = [(int(epoch), float(loss)) for epoch, loss in VAL_LOSS_RE.findall(log)]
    assert [epoch for epoch, _ in val] == list(range(1, EPOCHS + 1))
    assert val[-1][1] < 0.6 * val[0][1], val  # one batch seen six times: the loss on it must fall clearly

    checkpoint = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == EPOCHS
    model = ModelDir(tiny_dir).build(seed=None)
    load_checkpoint(model, str(out / "model.pt"))  # strict: every key and shape, FunASR's wrapper unwrapped
    initial = torch.load(tiny_dir / "model.pt", weights_only=True)
    trained = model.state_dict()
    assert set(trained) == set(initial)
    assert not torch.equal(trained["ctc.ctc_lo.weight"], initial["ctc.ctc_lo.weight"])

    package = tmp_path / "package"  # FunASR's model.pt dropped into a model directory serves as it is
    shutil.copytree(tiny_dir, package)
    shutil.copyfile(out / "model.pt", package / "model.pt")
    automodel = ModelDir(package).automodel(ncpu=2)
    assert all(torch.equal(automodel.model.state_dict()[k], v) for k, v in trained.items())
    assert isinstance(automodel.generate(input=str(corpus.parent / "u0.wav"))[0]["text"], str)


def test_a_broken_model_py_is_caught(tiny_dir, corpus, tmp_path):
    """FunASR falls back to its built-in class when model.py fails to import, and says so only in passing:
    the class check above must see it (zero epochs: FunASR builds the model and stops, exit status 0)."""
    source = modeldir.MODEL_PY.read_text()
    head = "from __future__ import annotations\n"
    assert head in source
    broken = tmp_path / "broken" / "model.py"  # as on a machine that lacks one of its imports
    broken.parent.mkdir()
    broken.write_text(source.replace(head, head + "import no_such_dependency\n", 1))
    log = funasr_train(tiny_dir, broken, corpus, tmp_path / "exp", epochs=0)
    assert f"Loading remote code failed: {broken}" in log
    assert registered_class_file(log) != broken
    assert registered_class_file(log).as_posix().endswith("funasr/models/sense_voice/model.py")


def test_funasr_dataset_gives_forward_our_targets(tiny_dir, corpus):
    """FunASR's SenseVoiceCTCDataset (what funasr-train feeds ``forward``) builds each row's text ids exactly as our
    trainer does: the four tags first, then the transcript; its collator pads them with our ignore_id."""
    source = ModelDir(tiny_dir)
    model, tokenizer, frontend = source.load(), source.tokenizer, source.frontend()
    dataset = SenseVoiceCTCDataset(str(corpus), index_ds="IndexDSJsonl", frontend=frontend, tokenizer=tokenizer,
                                   batch_size=6000, batch_type="token")
    ours = train.Featurizer(model, tokenizer, frontend)
    rows = train.read_jsonl(corpus)
    assert [dataset[i]["text"].tolist() for i in range(len(rows))] == [ours.target(row) for row in rows]
    batch = dataset.collator([dataset[i] for i in range(len(rows))])
    assert batch["text"].min() == model.ignore_id  # padded
    loss, stats, _ = model(**batch)  # (B, 1) int32 lengths, as the collator gives them
    assert torch.isfinite(loss) and stats["batch_size"] == len(rows)
