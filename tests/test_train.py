"""The fine-tuning recipe: official jsonl in, a loadable model directory out, resumable and seeded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import model as sv
from testkit import ROOT
from sensevoice import modeldir
from sensevoice.modeldir import ModelDir
from sensevoice.training import train

def args(tiny_dir, corpus, out, steps, resume=False):
    return ["--init", str(tiny_dir), "--train", str(corpus), "--val", str(corpus), "--out", str(out),
            "--max-steps", str(steps), "--batch-frames", "80", "--save-every", "3", "--val-every", "3",
            "--warmup", "2", "--lr", "3e-3", "--seed", "1", *(["--resume"] if resume else [])]


def test_trains_a_directory_that_automodel_loads(tiny_dir, corpus, tmp_path):
    out = tmp_path / "run"
    assert train.main(args(tiny_dir, corpus, out, 6)) == 0
    history = json.loads((out / "train_history.json").read_text())
    assert [s for s, _ in history["val_loss"]] == [3, 6]
    assert history["val_loss"][-1][1] < history["val_loss"][0][1] * 1.5
    automodel = ModelDir(out).automodel(ncpu=2)
    assert type(automodel.model) is sv.SenseVoiceSmall
    trained = torch.load(out / "model.pt", weights_only=True)
    assert not torch.equal(trained["ctc.ctc_lo.weight"], torch.load(tiny_dir / "model.pt", weights_only=True)["ctc.ctc_lo.weight"])
    loaded = automodel.model.state_dict()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
    assert isinstance(automodel.generate(input=str(corpus.parent / "u0.wav"))[0]["text"], str)


def test_resume_continues_exactly(tiny_dir, corpus, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train.main(args(tiny_dir, corpus, straight, 6))
    train.main(args(tiny_dir, corpus, resumed, 3))
    train.main(args(tiny_dir, corpus, resumed, 6, resume=True))
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(resumed / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_stop_at_then_resume_equals_one_run(tiny_dir, corpus, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train.main(args(tiny_dir, corpus, straight, 7))
    train.main([*args(tiny_dir, corpus, stopped, 7), "--stop-at", "4"])
    assert train.latest_checkpoint(stopped).name == "step0000004.pt"
    assert [s for s, _ in json.loads((stopped / "train_history.json").read_text())["train_loss"]] == [1, 2, 3, 4]
    train.main(args(tiny_dir, corpus, stopped, 7, resume=True))
    a = torch.load(straight / "model.pt", weights_only=True)
    b = torch.load(stopped / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    curves = [json.loads((run / "train_history.json").read_text()) for run in (straight, stopped)]
    assert curves[0]["train_loss"] == curves[1]["train_loss"]
    assert [s for s, _ in curves[1]["val_loss"]] == [3, 4, 6, 7]  # validated where it stopped, too


def test_several_train_lists_pool_their_utterances(tiny_dir, corpus, tmp_path):
    """--train a.jsonl b.jsonl trains exactly as one list holding both (same order, same batches)."""
    lines = corpus.read_text().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(lines[:2]))
    second.write_text("".join(lines[2:]))
    runs = {"one": tmp_path / "one", "two": tmp_path / "two"}
    train.main(args(tiny_dir, corpus, runs["one"], 3))
    two = args(tiny_dir, corpus, runs["two"], 3)
    two[two.index("--train") + 1: two.index("--train") + 2] = [str(first), str(second)]
    train.main(two)
    a, b = (torch.load(out / "model.pt", weights_only=True) for out in runs.values())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(list((runs["two"] / "features").glob("*.pt"))) == 3  # a, b and the validation list


def test_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"key": "x", "source": "a.wav"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing keys \['target'"):
        train.read_jsonl(path)


def test_learning_rate_schedule():
    rates = [train.lr_at(s, 1.0, 10, 100) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.05, abs=0.01) and max(rates) == pytest.approx(1.0)


def test_bf16_autocast_trains_and_keeps_fp32_weights(tiny_dir, corpus, tmp_path):
    out = tmp_path / "bf16"
    assert train.main([*args(tiny_dir, corpus, out, 3), "--precision", "bf16"]) == 0
    trained = torch.load(out / "model.pt", weights_only=True)
    initial = torch.load(tiny_dir / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in trained.values() if v.is_floating_point())
    assert not torch.equal(trained["encoder.encoders0.0.feed_forward.w_1.weight"],
                           initial["encoder.encoders0.0.feed_forward.w_1.weight"])
    history = json.loads((out / "train_history.json").read_text())
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in history["train_loss"])


def test_no_specaug_turns_off_the_configs_specaugment(tiny_dir, corpus, tmp_path):
    assert modeldir.read_config(tiny_dir / "config.yaml")["specaug"]  # the official config has SpecAugment
    runs = {flag: tmp_path / ("plain" if flag else "augmented") for flag in (False, True)}
    for flag, out in runs.items():
        train.main([*args(tiny_dir, corpus, out, 2), *(["--no-specaug"] if flag else [])])
    a, b = (torch.load(out / "model.pt", weights_only=True) for out in runs.values())
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_specaug_conf_overrides_reach_the_model_and_the_config(tiny_dir, corpus, tmp_path):
    out = tmp_path / "run"
    assert modeldir.read_config(tiny_dir / "config.yaml")["specaug_conf"]["apply_time_mask"] is True
    train.main([*args(tiny_dir, corpus, out, 1), "--specaug-conf", '{"apply_time_mask": false, "num_freq_mask": 2}'])
    conf = modeldir.read_config(out / "config.yaml")["specaug_conf"]
    assert conf["apply_time_mask"] is False and conf["num_freq_mask"] == 2
    assert conf["freq_mask_width_range"] == modeldir.read_config(tiny_dir / "config.yaml")["specaug_conf"][
        "freq_mask_width_range"]  # the keys not named are kept
    model = ModelDir(out).build()
    assert model.specaug.time_mask is None and model.specaug.freq_mask.num_mask == 2

    x = torch.ones(4, 40, model.dims.n_input)
    torch.manual_seed(0)
    train.set_specaug_conf(model, out / "config.yaml", {"apply_time_mask": True, "apply_freq_mask": False})
    masked, _ = model.specaug(x, torch.full((4,), 40))
    assert (masked == 0).all(-1).any()  # whole frames masked: the rebuilt module is the one the model runs


@pytest.mark.parametrize("bad, message", [("[1]", "expected a JSON object"), ("{apply", "not JSON")])
def test_specaug_conf_must_be_a_json_object(tiny_dir, corpus, tmp_path, capsys, bad, message):
    with pytest.raises(SystemExit):
        train.main([*args(tiny_dir, corpus, tmp_path / "run", 1), "--specaug-conf", bad])
    assert message in capsys.readouterr().err


def test_specaug_conf_refuses_unknown_keys_and_no_specaug(tiny_dir, corpus, tmp_path):
    with pytest.raises(ValueError, match="SpecAugLFR refuses it"):
        train.main([*args(tiny_dir, corpus, tmp_path / "run", 1), "--specaug-conf", '{"no_such_key": 1}'])
    with pytest.raises(ValueError, match="contradict"):
        train.main([*args(tiny_dir, corpus, tmp_path / "run2", 1), "--no-specaug",
                    "--specaug-conf", '{"num_time_mask": 1}'])


def test_dropout_option_sets_every_rate_in_model_and_config(tiny_dir, corpus, tmp_path):
    out = tmp_path / "run"
    assert modeldir.read_config(tiny_dir / "config.yaml")["encoder_conf"]["dropout_rate"] == 0.0  # TINY_ENCODER
    train.main([*args(tiny_dir, corpus, out, 1), "--dropout", "0.3"])
    conf = modeldir.read_config(out / "config.yaml")["encoder_conf"]
    assert [conf[k] for k in train.DROPOUT_KEYS] == [0.3, 0.3, 0.3]
    model = ModelDir(out).build()
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}

    x, lens, rows = torch.randn(2, 30, model.dims.n_input), torch.tensor([30, 21]), torch.zeros(2, dtype=torch.long)
    model.specaug = None
    def train_equals_eval() -> bool:
        with torch.no_grad():
            return torch.equal(model.train().encode(x, lens, rows, rows)[0], model.eval().encode(x, lens, rows, rows)[0])

    assert not train_equals_eval()
    train.set_dropout(model, out / "config.yaml", 0.0)  # every dropout off: training mode computes eval mode
    assert train_equals_eval()
    assert modeldir.read_config(out / "config.yaml")["encoder_conf"]["attention_dropout_rate"] == 0.0
    with pytest.raises(ValueError, match="--dropout 1.5"):
        train.set_dropout(model, out / "config.yaml", 1.5)


def test_device_option_rejects_what_is_not_there():
    with pytest.raises(ValueError, match="expected cpu, cuda or cuda:N"):
        train.resolve_device("gpu0")
    with pytest.raises(ValueError, match="supports cpu and cuda"):
        train.resolve_device("meta")
    if not torch.cuda.is_available():  # a CPU-only machine: asking for a GPU must fail loudly, not train on the CPU
        with pytest.raises(ValueError, match="no CUDA device is visible"):
            train.resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match="CUDA device\\(s\\) are visible"):
            train.resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert train.resolve_device("cpu") == torch.device("cpu")


def test_feature_bank_gathers_padded_fp32_batches():
    utts = [train.Utterance("a", torch.randn(5, 4).half(), [1, 2, 3]),
            train.Utterance("b", torch.randn(3, 4).half(), [4]),
            train.Utterance("c", torch.randn(2, 4).half(), [5, 6])]
    batch = train.FeatureBank(utts).collate([2, 1], ignore_id=-1, device="cpu")  # any order, any subset
    assert batch["speech"].dtype == torch.float32 and batch["speech"].shape == (2, 3, 4)
    assert torch.equal(batch["speech"][0, :2], utts[2].feats.float()) and not batch["speech"][0, 2:].any()
    assert torch.equal(batch["speech"][1], utts[1].feats.float())
    assert batch["text"].tolist() == [[5, 6], [4, -1]]
    assert batch["speech_lengths"].tolist() == [2, 3] and batch["text_lengths"].tolist() == [2, 1]


def test_time_budget_sets_the_schedule_from_the_pace_of_the_first_steps(monkeypatch):
    monkeypatch.setattr(train.time, "perf_counter", lambda: 110.0)  # 20 steps took 10 s: 0.5 s a step
    assert train.budget_steps(step=20, since_step=0, since=100.0, deadline=160.0) == 20 + 100
    assert train.budget_steps(step=20, since_step=0, since=100.0, deadline=105.0) == 21  # past it: one more
    assert train.budget_steps(step=100, since_step=20, since=106.0, deadline=160.0) == 100 + 1000  # 0.05 s a step now


def test_checkpoints_hold_cpu_tensors_whatever_the_device(tiny_dir, corpus, tmp_path):
    device = "cuda" if torch.cuda.is_available() else "cpu"  # on a GPU machine this trains on the GPU
    out = tmp_path / "dev"
    assert train.main([*args(tiny_dir, corpus, out, 3), "--device", device, "--precision", "bf16"]) == 0
    checkpoint = torch.load(train.latest_checkpoint(out), weights_only=True)
    tensors = [*checkpoint["model"].values(),
               *(v for state in checkpoint["optimizer"]["state"].values() for v in state.values()
                 if isinstance(v, torch.Tensor))]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert ("cuda_rng" in checkpoint) == (device == "cuda")
    resumed = tmp_path / "resumed"  # a checkpoint written on one device resumes on another
    train.main([*args(tiny_dir, corpus, resumed, 2), "--device", device])
    assert train.main([*args(tiny_dir, corpus, resumed, 3, resume=True), "--device", "cpu"]) == 0


def test_two_processes_train_as_one_with_their_joint_batch(tiny_dir, corpus, tmp_path):
    """torchrun --nproc_per_node 2 (DDP over gloo) follows the single-process loss curve of the same arguments,
    and a 1-process --resume continues its checkpoint. --batch-frames 100 makes batches of 3 and 1 utterances:
    shares of 2 + 1 (unequal weights) and 1 + 0 (an idle rank). The curves agree to float rounding until the
    processes' own prompt-dropout draws differ (20 % of utterances get the 'auto' language prompt; each process
    draws for its own utterances): here < 0.2 %. A plain average of the per-process mean losses, DDP's default,
    is 1.4 % off at step 1 and 2x at step 2; the tolerance, 0.5 %, lies between the two."""
    def run_args(out, **extra):
        return [*args(tiny_dir, corpus, out, 8), "--batch-frames", "100", "--save-every", "4", "--val-every", "4",
                "--no-specaug", "--threads", "1", *extra.get("more", [])]

    one, two = tmp_path / "one", tmp_path / "two"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "-m", "sensevoice.training.train", *run_args(two, more=["--stop-at", "4"])],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained ") == 1  # rank 0 reports; the others stay quiet
    train.main(run_args(one))

    checkpoint = torch.load(train.latest_checkpoint(two), weights_only=True)
    assert checkpoint["step"] == 4 and list((two / "checkpoints").iterdir()) == [two / "checkpoints" / "step0000004.pt"]
    assert set(checkpoint["model"]) == set(torch.load(tiny_dir / "model.pt", weights_only=True))  # no "module."
    train.main(run_args(two, more=["--resume"]))  # two processes' checkpoint, continued in one

    curves = [json.loads((out / "train_history.json").read_text()) for out in (one, two)]
    for name in ("train_loss", "val_loss"):
        steps = [[s for s, _ in curve[name]] for curve in curves]
        assert steps[0] == steps[1] == ([1, 2, 3, 4, 5, 6, 7, 8] if name == "train_loss" else [4, 8])
        for (step, a), (_, b) in zip(curves[0][name], curves[1][name]):
            assert b == pytest.approx(a, rel=5e-3), (name, step, curves)
    assert curves[1]["train_loss"][-1][1] < 0.5 * curves[1]["train_loss"][0][1]


def test_a_time_budget_ends_a_run_with_an_endless_schedule(tiny_dir, corpus, tmp_path):
    out = tmp_path / "budget"
    argv = args(tiny_dir, corpus, out, 10**9)  # without the budget this run would not end
    assert train.main([*argv, "--time-budget", "0.5"]) == 0
    history = json.loads((out / "train_history.json").read_text())
    assert train.BUDGET_PROBES[0] < len(history["train_loss"]) < 1000  # ended soon after the first fit


def test_features_from_worker_processes_equal_the_serial_ones(tiny_dir, corpus):
    source = ModelDir(tiny_dir)
    featurize = train.Featurizer(source.load(), source.tokenizer, source.frontend())
    rows = train.read_jsonl(corpus)
    serial, parallel = featurize(rows, "serial"), featurize(rows, "parallel", jobs=2)
    assert [u.key for u in parallel] == [row["key"] for row in rows]
    for one, other in zip(serial, parallel):
        assert torch.equal(one.feats, other.feats) and one.target == other.target
