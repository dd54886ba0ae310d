"""The backends ``sensevoice bench`` compares, and the worker that measures one of them in its own process.

Each backend runs in a fresh process (``python -m sensevoice.bench --worker NAME``), so that its peak memory is
its own, its thread settings cannot leak into the next one, and FunASR's built-in SenseVoiceSmall (the
reference) is built without our model.py registered over it. This module must therefore not import model.py
(or anything that does) at the top: the reference worker never loads it.

A runner offers the pipeline in stages (``load_audio`` -> ``features`` -> ``decode``), end to end
(``transcribe``: files or arrays -> hypotheses, one batch) and for long audio (``transcribe_long``: VAD +
batches of ``batch_size_s`` -> (text, number of segments)).
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

SAMPLE_RATE = 16000
OFFICIAL_BPE = "chn_jpn_yue_eng_ko_spectok.bpe.model"  # the tokenizer name funasr-onnx hard-codes
TAG_RE = re.compile(r"<\|[^|]*\|>")


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    runner: str  # key of RUNNERS
    precision: str  # fp32 | bf16 | fp16 | int8
    devices: tuple[str, ...] = ("cpu", "cuda")
    package: str | None = None  # an optional package the backend needs
    in_quick: bool = True  # measured by --quick


REFERENCE = "funasr"
BACKENDS = {b.name: b for b in (
    Backend("funasr", "FunASR's built-in SenseVoiceSmall via AutoModel (the reference)", "funasr", "fp32"),
    Backend("torch", "ours, PyTorch eager", "torch", "fp32"),
    Backend("torch-bf16", "ours, PyTorch bf16 weights (AMX/AVX512-BF16 on CPU)", "torch", "bf16"),
    Backend("torch-fp16", "ours, PyTorch fp16 (GPU)", "torch", "fp16", devices=("cuda",)),
    Backend("torch-int8", "ours, PyTorch dynamic int8 nn.Linear", "torch", "int8", devices=("cpu",)),
    Backend("ort", "ours, ONNX Runtime (our export)", "ort", "fp32"),
    Backend("ort-int8", "ours, ONNX Runtime, int8 MatMuls (our export --int8)", "ort", "int8"),
    Backend("sherpa-onnx", "sherpa-onnx on our export", "sherpa", "fp32", package="sherpa_onnx"),
    Backend("sherpa-onnx-int8", "sherpa-onnx on our int8 export", "sherpa", "int8",
            package="sherpa_onnx"),
    Backend("funasr-onnx", "funasr-onnx on our export", "funasr-onnx", "fp32", package="funasr_onnx"),
    Backend("funasr-onnx-int8", "funasr-onnx on our int8 export", "funasr-onnx", "int8",
            package="funasr_onnx"),
)}


@dataclass(frozen=True)
class Plan:
    """What every worker measures (written by the parent as JSON)."""

    model_dir: str
    onnx_dir: str
    vad_dir: str
    threads: int
    device: str
    clips: dict[str, str]  # seconds ("3") -> 16 kHz wav
    mixed_batches: list[list[str]]  # wavs, length-sorted batches of <= batch_size_s (pipeline.plan_batches)
    long: str  # a long wav for VAD + batching
    warmup: int
    reps: int
    mixed_passes: int
    batch_size_s: float
    warm_batch: bool  # run the largest batch once before measuring (always done for torch.compile)
    language: str = "auto"
    use_itn: bool = False
    ort_spin: bool = False  # our ONNX Runtime sessions let idle threads spin (funasr-onnx and sherpa-onnx always do)
    funasr_long_kwargs: dict[str, Any] = field(default_factory=dict)  # more AutoModel.generate settings for the
    # built-in's long file (e.g. the model card's merge_vad=True, merge_length_s=15)


@dataclass
class Hyp:
    tokens: list[int]
    text: str
    skips_tags: bool = False  # sherpa-onnx drops the first four decoded tokens (it reports them as fields)


# ----------------------------------------------------------------------------------------------- helpers
class TokenRecorder:
    """Wraps the tokenizer class's ``decode`` to keep the token ids each call decoded (FunASR's APIs return only
    text). The class, not the instance: AutoModel restores a snapshot of its tokenizer before every call."""

    def __init__(self, tokenizer: Any):
        self.calls: list[list[int]] = []
        cls = type(tokenizer)
        original = cls.decode

        def decode(tok, tokens, *args, **kwargs):
            self.calls.append([int(t) for t in tokens])
            return original(tok, tokens, *args, **kwargs)

        cls.decode = decode

    def take(self, n: int) -> list[list[int]]:
        if len(self.calls) < n:
            raise RuntimeError(f"expected {n} decoded utterances, the backend decoded {len(self.calls)}")
        calls, self.calls = self.calls[-n:], []
        return calls


def fsmn_vad(vad_dir: str, device: str, threads: int):
    """The official FSMN-VAD alone (no ASR model), as the pipeline runs it, for the other runtimes' long audio."""
    from sensevoice.vad import Vad

    return Vad(vad_dir, 30_000, device, threads)


def long_by_segments(runner: Any, vad: Any, path: str, batch_size_s: float) -> tuple[str, int]:
    """VAD -> the pipeline's batch plan -> the runner's batch decoding, in time order."""
    from sensevoice.pipeline import plan_batches

    wave = np.asarray(runner.load_audio(path), dtype=np.float32)
    spans = vad.segments(wave)
    hyps: list[Hyp | None] = [None] * len(spans)
    per_ms = SAMPLE_RATE // 1000
    for batch in plan_batches([e - s for s, e in spans], batch_size_s):
        waves = [wave[spans[i][0] * per_ms: spans[i][1] * per_ms] for i in batch]
        for i, hyp in zip(batch, runner.transcribe(waves)):
            hyps[i] = hyp
    return " ".join(h.text for h in hyps), len(hyps)  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------- runners
class FunasrRunner:
    """FunASR's built-in model (trust_remote_code=False): AutoModel, its loader, its frontend, its decoding."""

    def __init__(self, plan: Plan, backend: Backend):
        import torch
        from funasr import AutoModel

        self.plan = plan
        self.automodel = AutoModel(model=plan.model_dir, trust_remote_code=False, vad_model=plan.vad_dir,
                                   vad_kwargs={"max_single_segment_time": 30_000}, device=plan.device,
                                   ncpu=plan.threads, disable_update=True, disable_pbar=True, disable_log=True,
                                   frontend_conf={"dither": 0.0})  # FunASR's default dither adds noise; ours: 0
        model = self.automodel.model
        if not type(model).__module__.startswith("funasr.models.sense_voice"):
            raise TypeError(f"expected FunASR's built-in SenseVoiceSmall, got {type(model).__module__}."
                            f"{type(model).__name__}")
        self.kwargs = self.automodel.kwargs
        self.recorder = TokenRecorder(self.kwargs["tokenizer"])
        self.decoding = {"language": plan.language, "use_itn": plan.use_itn}
        self.torch = torch

    def verify(self) -> None:
        """Run last (it maps model.pt, which would count in the peak memory)."""
        assert_same_weights(self.automodel.model.state_dict(), Path(self.plan.model_dir) / "model.pt")

    def load_audio(self, path: str):
        from funasr.utils.load_utils import load_audio_text_image_video

        return load_audio_text_image_video(path, fs=SAMPLE_RATE)

    def features(self, wave):
        from funasr.utils.load_utils import extract_fbank

        return extract_fbank([wave], data_type="sound", frontend=self.kwargs["frontend"])

    def decode(self, feats) -> Hyp:
        speech, lens = feats
        with self.torch.no_grad():
            results, _ = self.automodel.model.inference(speech, data_lengths=lens, data_type="fbank", key=["x"],
                                                        tokenizer=self.kwargs["tokenizer"], device=self.plan.device,
                                                        frontend=self.kwargs["frontend"], **self.decoding)
        return Hyp(self.recorder.take(1)[0], results[0]["text"])

    def transcribe(self, items: Sequence[Any]) -> list[Hyp]:
        # AutoModel.inference: generate() without the VAD this AutoModel also carries
        results = self.automodel.inference(list(items), batch_size=len(items), **self.decoding)
        return [Hyp(t, r["text"]) for t, r in zip(self.recorder.take(len(items)), results)]

    def transcribe_long(self, path: str) -> tuple[str, int]:
        result = self.automodel.generate(input=path, batch_size_s=self.plan.batch_size_s, **self.decoding,
                                         **self.plan.funasr_long_kwargs)[0]
        segments = len(self.recorder.calls)  # one decode per VAD segment (shortest first; the text is in order)
        self.recorder.calls.clear()
        return result["text"], segments


def assert_same_weights(state: dict, checkpoint: Path) -> None:
    """The reference must run on exactly the weights of model.pt (FunASR's loader tolerates missing keys)."""
    import torch

    saved = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    saved = saved.get("state_dict", saved)
    bad = [k for k, v in state.items() if k not in saved or not torch.equal(saved[k].to(v.device, v.dtype), v)]
    if bad:
        raise ValueError(f"the reference model's weights differ from {checkpoint} at {bad[:5]} ({len(bad)} tensors)")


class PipelineRunner:
    """Ours: the project's one pipeline (sensevoice.pipeline.Transcriber with FSMN-VAD) on one backend."""

    def __init__(self, plan: Plan, backend: Backend):
        import model as sv
        from sensevoice import transcripts
        from sensevoice.pipeline import Transcriber

        runtime = sv.BackendOptions("onnxruntime" if backend.runner == "ort" else "torch", backend.precision)
        self.sv, self.transcripts, self.plan = sv, transcripts, plan
        if runtime.backend == "onnxruntime":  # the export the parent made (--onnx), threads spinning when asked
            from sensevoice import backends

            onnx = Path(plan.onnx_dir) / backends.ONNX_FILES[runtime.precision]
            runtime = backends.OrtBackend(onnx, runtime, plan.threads, backends.ort_providers(plan.device),
                                          spin=plan.ort_spin)
        self.transcriber = Transcriber(plan.model_dir, backend=runtime, device=plan.device, threads=plan.threads,
                                       batch_size_s=plan.batch_size_s, vad_model=plan.vad_dir)
        self.recorder = TokenRecorder(self.transcriber.tokenizer)
        self.options = sv.DecodingOptions(language=plan.language, textnorm="withitn" if plan.use_itn else "woitn")

    def load_audio(self, path: str):
        from sensevoice.audio import load_audio

        return load_audio(path, path).numpy()

    def features(self, wave):
        feats = self.transcriber.features(wave, "x")
        return feats[None], self.sv.torch.tensor([len(feats)])

    def decode(self, feats) -> Hyp:
        scores, lens = self.transcriber.backend.ctc_scores(*feats, self.options.language, self.options.textnorm)
        result = self.transcripts.decode_scores(scores, lens, ["x"], self.options, self.transcriber.special,
                                                self.transcriber.tokenizer)[0]
        return Hyp(self.recorder.take(1)[0], result["text"])

    def transcribe(self, items: Sequence[Any]) -> list[Hyp]:
        """A batch of whole clips (no VAD): the pipeline's decode over clips prepared without segmentation."""
        prepared = [self.transcriber.prepare(item, f"x{i}", use_vad=False) for i, item in enumerate(items)]
        results = self.transcriber.decode(prepared, self.options)
        return [Hyp(t, r.text) for t, r in zip(self.recorder.take(len(items)), results)]

    def transcribe_long(self, path: str) -> tuple[str, int]:
        result = self.transcriber.transcribe(path, "long", self.options)
        self.recorder.calls.clear()
        return result.text, len(result.segments)


class SherpaRunner:
    """sherpa-onnx's OfflineRecognizer.from_sense_voice on our export (its own fbank, LFR, CMVN and decoding)."""

    def __init__(self, plan: Plan, backend: Backend):
        import sherpa_onnx
        import soundfile

        from sensevoice import export

        onnx_dir = Path(plan.onnx_dir)
        name = export.INT8_NAME if backend.precision == "int8" else export.FP32_NAME
        self.recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
            model=str(onnx_dir / name), tokens=str(onnx_dir / export.TOKENS_NAME), num_threads=plan.threads,
            provider="cuda" if plan.device.startswith("cuda") else "cpu", language=plan.language,
            use_itn=plan.use_itn)
        # sherpa-onnx's symbol table shows "▁" as a space
        lines = (onnx_dir / export.TOKENS_NAME).read_text(encoding="utf-8").splitlines()
        self.piece_id = {p.replace("\u2581", " "): int(i) for p, i in (line.rsplit(" ", 1) for line in lines)}
        self.soundfile, self.plan = soundfile, plan
        self.vad = fsmn_vad(plan.vad_dir, plan.device, plan.threads)

    def load_audio(self, path: str):
        wave, fs = self.soundfile.read(path, dtype="float32")
        assert fs == SAMPLE_RATE, fs
        return wave

    def features(self, wave):
        stream = self.recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, wave)  # fbank happens here
        return stream

    def hyp(self, stream) -> Hyp:
        result = stream.result
        return Hyp([self.piece_id.get(p, -1) for p in result.tokens], result.text, skips_tags=True)

    def decode(self, stream) -> Hyp:
        self.recognizer.decode_stream(stream)
        return self.hyp(stream)

    def transcribe(self, items: Sequence[Any]) -> list[Hyp]:
        streams = [self.features(self.load_audio(x) if isinstance(x, str) else x) for x in items]
        self.recognizer.decode_streams(streams)
        return [self.hyp(s) for s in streams]

    def transcribe_long(self, path: str) -> tuple[str, int]:
        return long_by_segments(self, self.vad, path, self.plan.batch_size_s)


class FunasrOnnxRunner:
    """funasr-onnx's SenseVoiceSmall on our export (its kaldi-native-fbank frontend, librosa loading)."""

    def __init__(self, plan: Plan, backend: Backend):
        from funasr_onnx import SenseVoiceSmall as FunasrOnnxSenseVoice

        self.model = FunasrOnnxSenseVoice(funasr_onnx_view(Path(plan.onnx_dir)), batch_size=1,
                                          quantize=backend.precision == "int8",
                                          intra_op_num_threads=plan.threads,
                                          device_id="0" if plan.device.startswith("cuda") else "-1")
        self.recorder = TokenRecorder(self.model.tokenizer)
        self.language = np.array([self.model.lid_dict[plan.language]], dtype=np.int32)
        self.textnorm = np.array([self.model.textnorm_dict["withitn" if plan.use_itn else "woitn"]], dtype=np.int32)
        self.plan = plan
        self.vad = fsmn_vad(plan.vad_dir, plan.device, plan.threads)

    def load_audio(self, path: str):
        return self.model.load_data(path, SAMPLE_RATE)[0]

    def features(self, wave):
        return self.model.extract_feat([wave])

    def decode(self, feats) -> Hyp:
        return self._decode(*feats)[0]

    def _decode(self, feats, lens) -> list[Hyp]:
        """Their __call__ after feature extraction: infer, argmax, merge repeats, drop blanks, decode."""
        B = feats.shape[0]
        logits, out_lens = self.model.infer(feats, lens, self.language.repeat(B), self.textnorm.repeat(B))
        hyps = []
        for b in range(B):
            best = np.argmax(logits[b, : out_lens[b].item()], axis=-1)
            best = best[np.concatenate(([True], np.diff(best) != 0))]
            text = self.model.tokenizer.decode(best[best != self.model.blank_id].tolist())
            hyps.append(Hyp(self.recorder.take(1)[0], text))
        return hyps

    def transcribe(self, items: Sequence[Any]) -> list[Hyp]:
        if all(isinstance(x, str) for x in items):  # their end-to-end API on files
            self.model.batch_size = len(items)
            texts = self.model(list(items), language=self.plan.language,
                               textnorm="withitn" if self.plan.use_itn else "woitn")
            return [Hyp(t, text) for t, text in zip(self.recorder.take(len(items)), texts)]
        return self._decode(*self.model.extract_feat(list(items)))

    def transcribe_long(self, path: str) -> tuple[str, int]:
        return long_by_segments(self, self.vad, path, self.plan.batch_size_s)


def funasr_onnx_view(onnx_dir: Path) -> str:
    """funasr-onnx reads the tokenizer under the official file name only: a view of the export where it is."""
    if (onnx_dir / OFFICIAL_BPE).is_file():
        return str(onnx_dir)
    bpe = json.loads((onnx_dir / "configuration.json").read_text())["file_path_metas"]["tokenizer_conf"]["bpemodel"]
    view = Path(tempfile.mkdtemp(prefix="funasr-onnx-view-"))
    for item in onnx_dir.iterdir():
        (view / (OFFICIAL_BPE if item.name == bpe else item.name)).symlink_to(item.resolve())
    return str(view)


RUNNERS: dict[str, Callable[[Plan, Backend], Any]] = {
    "funasr": FunasrRunner, "torch": PipelineRunner, "ort": PipelineRunner, "sherpa": SherpaRunner,
    "funasr-onnx": FunasrOnnxRunner,
}


# ----------------------------------------------------------------------------------------------- measuring
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def synchronize() -> None:
    """Wait for the GPU's queued work, where this process uses CUDA (a timed call's text is already on the host,
    but a stage such as features may leave kernels running)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    synchronize()
    start = time.perf_counter()
    out = fn()
    synchronize()
    return out, time.perf_counter() - start


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return {"p50": round(statistics.median(ms), 2), "p90": round(p90, 2), "n": len(ms)}


def audio_seconds(path: str) -> float:
    import soundfile

    return soundfile.info(path).frames / SAMPLE_RATE


def measure_latency(runner: Any, path: str, warmup: int, reps: int) -> dict[str, Any]:
    """Batch 1: stage times (decode / fbank / model) and end-to-end file -> text, after warm-up."""
    for _ in range(warmup):
        runner.transcribe([path])
    stages: dict[str, list[float]] = {"load": [], "fbank": [], "model": [], "e2e": []}
    hyp = None
    for _ in range(reps):
        wave, t_load = timed(lambda: runner.load_audio(path))
        feats, t_fbank = timed(lambda: runner.features(wave))
        _, t_model = timed(lambda: runner.decode(feats))
        (hyp,), t_e2e = timed(lambda: runner.transcribe([path]))
        for name, t in zip(stages, (t_load, t_fbank, t_model, t_e2e)):
            stages[name].append(t)
    seconds = audio_seconds(path)
    e2e = summary_ms(stages["e2e"])
    return {"audio_s": round(seconds, 3), **{f"{k}_ms": summary_ms(v) for k, v in stages.items()},
            "rtf": round(e2e["p50"] / 1000 / seconds, 5), "hyp": asdict(hyp)}


def measure_mixed(runner: Any, batches: list[list[str]], passes: int) -> dict[str, Any]:
    """Throughput over mixed-length clips in the plan's length-sorted batches, from files to text."""
    walls, hyps = [], []
    for _ in range(passes):
        start = time.perf_counter()
        hyps = [h for batch in batches for h in runner.transcribe(batch)]
        walls.append(time.perf_counter() - start)
    seconds = sum(audio_seconds(p) for batch in batches for p in batch)
    wall = min(walls)
    return {"audio_s": round(seconds, 3), "wall_s": round(wall, 3), "x_rt": round(seconds / wall, 2),
            "batches": [len(b) for b in batches], "hyps": [asdict(h) for h in hyps]}


def measure_long(runner: Any, path: str) -> dict[str, Any]:
    (text, segments), wall = timed(lambda: runner.transcribe_long(path))
    seconds = audio_seconds(path)
    return {"audio_s": round(seconds, 3), "wall_s": round(wall, 3), "x_rt": round(seconds / wall, 2),
            "segments": segments, "text": text}


def run_worker(backend_name: str, plan: Plan) -> dict[str, Any]:
    """Everything the plan asks of one backend, in this process."""
    import torch

    backend = BACKENDS[backend_name]
    torch.set_num_threads(plan.threads)
    runner, load_s = timed(lambda: RUNNERS[backend.runner](plan, backend))
    result: dict[str, Any] = {"load_s": round(load_s, 2), "rss_after_load_mb": round(peak_rss_mb())}
    if plan.warm_batch:
        _, first_s = timed(lambda: runner.transcribe(plan.mixed_batches[-1]))
        result["first_batch_s"] = round(first_s, 2)
    result["latency"] = {k: measure_latency(runner, p, plan.warmup, plan.reps) for k, p in plan.clips.items()}
    result["mixed"] = measure_mixed(runner, plan.mixed_batches, plan.mixed_passes)
    result["long"] = measure_long(runner, plan.long)
    result["peak_rss_mb"] = round(peak_rss_mb())
    if hasattr(runner, "verify"):
        runner.verify()
    return result


def strip_text(text: str) -> str:
    """Text for the long-file comparison: tags and whitespace removed (backends join segments differently)."""
    return re.sub(r"\s+", "", TAG_RE.sub("", text))


def load_plan(path: str | os.PathLike) -> Plan:
    return Plan(**json.loads(Path(path).read_text()))
