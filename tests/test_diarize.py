"""Speaker diarization (sensevoice/diarize.py): the GE2E encoder against Resemblyzer's own, options, clustering,
turns, segment labelling, the pipeline and the transcribe door, bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import model as sv
from testkit import speechlike
from helpers import joined
from sensevoice import diarize as d
from sensevoice.diarize import DiarizationOptions, Turn


@pytest.fixture(scope="module")
def encoder():
    return d.GE2EEncoder.pretrained()


# ----------------------------------------------------------------------------------------------- encoder
def test_mel_filters_are_librosas():
    import librosa

    ours = d.mel_filters().T.numpy()  # (40, 201)
    theirs = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)


def test_embeddings_equal_resemblyzers_voice_encoder(encoder):
    """Resemblyzer's partial-utterance embeddings (its mel over the whole padded waveform, its LSTM) = ours, window
    by window (the windows read their own samples with 200 of context either side, zero beyond the audio)."""
    resemblyzer = pytest.importorskip("resemblyzer")  # the test extra installs webrtcvad-wheels, so it imports

    wave = speechlike(4.3, seed=3) * 0.3
    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    gain = d.loudness_gain(wave)
    _, partials, slices = reference.embed_utterance(wave * gain, return_partials=True, rate=2.5)
    ours = d.embed_windows(encoder, wave, [s.start // d.SAMPLES_PER_MS for s in slices], gain)
    assert len(slices) >= 3
    np.testing.assert_allclose(ours, partials, atol=2e-5)


def test_weights_load_as_tensors_and_a_mismatched_checkpoint_is_refused(tmp_path):
    checkpoint = torch.load(d.ge2e_weights_path(), map_location="cpu", weights_only=True)
    checkpoint["model_state"]["lstm.extra"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(checkpoint, bad)
    with pytest.raises(RuntimeError, match="lstm.extra"):
        d.GE2EEncoder.pretrained(bad)


def test_loudness_gain_raises_quiet_audio_only():
    quiet = np.full(1600, 0.001, np.float32)
    assert 20 * np.log10(np.sqrt(np.mean((quiet * d.loudness_gain(quiet)) ** 2))) == pytest.approx(-30, abs=1e-3)
    assert d.loudness_gain(np.full(1600, 0.5, np.float32)) == 1.0
    assert d.loudness_gain(np.zeros(1600, np.float32)) == 1.0


# ----------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("fields, message", [
    ({"num_speakers": 0}, r"num_speakers=0 must be an integer in \[1, 32\] or None \(estimated\)$"),
    ({"num_speakers": True}, "num_speakers=True"),
    ({"min_speakers": 3, "max_speakers": 2}, "min_speakers=3 is more than max_speakers=2"),
    ({"num_speakers": 5, "max_speakers": 4}, "num_speakers=5 is outside"),
    ({"max_speakers": 2.5}, r"max_speakers=2.5 must be an integer in \[1, 32\]$"),  # not optional: no None
])
def test_bad_options_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        DiarizationOptions(**fields)


# ----------------------------------------------------------------------------------------------- clustering
def groups(sizes, seed=0, spread=0.15):
    """Embeddings around len(sizes) random directions, in order of appearance."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((len(sizes), 64))) * np.repeat(np.eye(len(sizes)), 64 // len(sizes) + 1,
                                                                         axis=1)[:, :64]  # disjoint supports
    rows = [centres[g] + spread * np.abs(rng.standard_normal(64)) for g, n in enumerate(sizes) for _ in range(n)]
    x = np.abs(np.stack(rows))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_cluster_counts_speakers_and_numbers_them_by_first_appearance():
    x = groups([6, 5, 7])
    labels = d.cluster(x[::-1].copy())  # the last group appears first
    assert labels.tolist() == [0] * 7 + [1] * 5 + [2] * 6


def test_cluster_honours_a_fixed_count_and_bounds():
    x = groups([6, 5, 7])
    assert len(set(d.cluster(x, DiarizationOptions(num_speakers=2)).tolist())) == 2
    assert len(set(d.cluster(x, DiarizationOptions(max_speakers=2)).tolist())) == 2
    assert len(set(d.cluster(groups([10]), DiarizationOptions(min_speakers=2)).tolist())) == 2


def test_cluster_one_speaker_and_one_window():
    assert set(d.cluster(groups([12])).tolist()) == {0}
    assert d.cluster(groups([1])).tolist() == [0]


def test_more_speakers_than_windows_is_a_clear_error():
    with pytest.raises(ValueError, match="3 speakers asked for, but the speech gives only 2 window"):
        d.cluster(groups([1, 1]), DiarizationOptions(num_speakers=3))


def test_long_inputs_cluster_a_sample_and_assign_the_rest(monkeypatch):
    x = groups([40, 30, 50])
    full = d.cluster(x)
    monkeypatch.setattr(d, "MAX_CLUSTERED_WINDOWS", 30)
    assert d.cluster(x).tolist() == full.tolist()


# ----------------------------------------------------------------------------------------------- windows, turns
def test_windows_cover_each_span_and_a_short_span_gets_one_centred_window():
    windows = d.plan_windows([(0, 1000), (2000, 6000)], 10_000)
    assert windows[0] == (0, 0)  # centred at 500 ms would start at -300: clamped to the audio
    starts = [s for n, s in windows if n == 1]
    assert starts[0] == 2000 and starts[-1] + d.WINDOW_MS == 6000
    assert all(b - a <= d.STEP_MS for a, b in zip(starts, starts[1:]))
    assert d.plan_windows([(5000, 5400)], 10_000) == [(0, 5200 - d.WINDOW_MS // 2)]


def test_span_turns_change_halfway_between_window_centres_and_ignore_one_odd_window():
    starts = [0, 800, 1600, 2400, 3200, 4000]
    turns = d.span_turns((0, 5600), starts, [0, 0, 0, 1, 1, 1])
    assert turns == [Turn(0, 2800, 0), Turn(2800, 5600, 1)]  # centres 2400 and 3200
    assert d.span_turns((0, 5600), starts, [0, 0, 1, 0, 0, 0]) == [Turn(0, 5600, 0)]


# ----------------------------------------------------------------------------------------------- segments
def segment(words, spans, start, end):
    pieces = ["\u2581" + w for w in words]
    return {"start_ms": start, "end_ms": end, "text": "<|en|><|NEUTRAL|><|Speech|><|woitn|>" + " ".join(words),
            "clean_text": " ".join(words), "language": "en", "words": words, "timestamp": spans, "tokens": pieces,
            "token_timestamp": spans, "word_probability": [0.9] * len(words),
            "token_probability": [0.9] * len(words)}


def test_a_segment_is_split_where_the_speaker_changes_and_words_get_speakers():
    seg = segment(["hello", "there", "yes", "indeed"], [[100, 400], [500, 900], [1500, 1800], [1900, 2300]], 0, 2500)
    turns = [Turn(0, 1200, 0), Turn(1200, 2500, 1)]
    first, second = d.label_segments([seg], turns)
    assert (first["speaker"], first["clean_text"], first["start_ms"], first["end_ms"]) == ("S1", "hello there", 0, 1200)
    assert (second["speaker"], second["clean_text"], second["start_ms"], second["end_ms"]) == \
        ("S2", "yes indeed", 1200, 2500)
    assert second["text"] == "<|en|><|NEUTRAL|><|Speech|><|woitn|>yes indeed"
    assert second["words"] == ["yes", "indeed"] and second["timestamp"] == [[1500, 1800], [1900, 2300]]
    assert second["word_speaker"] == ["S2", "S2"] and second["tokens"] == ["\u2581yes", "\u2581indeed"]


def test_a_segment_without_words_takes_the_speaker_it_overlaps_most():
    seg = {"start_ms": 0, "end_ms": 1000, "text": "", "clean_text": ""}
    labelled = d.label_segments([seg], [Turn(0, 300, 0), Turn(300, 1000, 1)])
    assert labelled[0]["speaker"] == "S2" and labelled[0]["word_speaker"] == []


# ----------------------------------------------------------------------------------------------- real speech
@pytest.fixture(scope="module")
def transcriber(tiny_dir):
    from sensevoice.pipeline import Transcriber

    return Transcriber(tiny_dir)


def test_two_real_speakers_are_told_apart(official, transcriber):
    wave = joined(official, ["en.mp3", "zh.mp3", "en.mp3"])
    turns = transcriber.prepare_wave(wave, "conv", diarization=DiarizationOptions()).turns
    en_s, zh_s = 7.176 + 0.6, 5.616 + 0.6
    speakers = [t.speaker for t in turns]
    assert speakers == [0, 1, 0], turns
    assert abs(turns[1].start_ms / 1000 - en_s) < 1.0 and abs(turns[2].start_ms / 1000 - en_s - zh_s) < 1.0


def test_pipeline_result_carries_speakers_and_drops_the_word_times_it_was_not_asked_for(official, transcriber):
    wave = joined(official, ["ja.mp3", "ko.mp3"])
    result = transcriber.transcribe(wave, "conv", diarization=DiarizationOptions(num_speakers=2))
    assert result.speakers == ["S1", "S2"] and {s.speaker for s in result.segments} == {"S1", "S2"}
    doc = result.to_dict()
    assert doc["turns"][0]["speaker"] == "S1" and "words" not in doc["segments"][0]
    assert "word_speaker" not in doc["segments"][0]
    timed = transcriber.transcribe(wave, "conv", sv.DecodingOptions(output_timestamp=True),
                                   diarization=DiarizationOptions(num_speakers=2))
    assert len(timed.word_speaker) == len(timed.words)
    plain = transcriber.transcribe(wave, "conv").to_dict()
    assert "speakers" not in plain and "speaker" not in plain["segments"][0]


def test_one_speaker_silence_and_too_many_speakers(official, transcriber):
    one = transcriber.transcribe(str(official / "example" / "en.mp3"), "en", diarization=DiarizationOptions())
    assert one.speakers == ["S1"]
    silence = transcriber.transcribe(np.zeros(48000, np.float32), "quiet", diarization=DiarizationOptions())
    assert silence.speakers == [] and silence.turns == [] and silence.segments == []
    with pytest.raises(ValueError, match=r"en: 20 speakers asked for, but the speech gives only \d+ window"):
        transcriber.transcribe(str(official / "example" / "en.mp3"), "en",
                               diarization=DiarizationOptions(num_speakers=20))


# ----------------------------------------------------------------------------------------------- writers
def diarized_result():
    from sensevoice.result import Segment, SpeakerTurn, Transcript

    tags = {"language": "en", "event": "Speech", "itn": "woitn", "avg_logprob": -0.1, "no_speech_prob": 0.0}
    segments = [Segment(0, 1500, "hello there", "hello there", emotion="NEUTRAL", speaker="S1", **tags),
                Segment(1500, 3000, "yes", "yes", emotion="HAPPY", speaker="S2", **tags)]
    return Transcript.join("conv", 3000, segments, False, [SpeakerTurn(0, 1500, "S1"), SpeakerTurn(1500, 3000, "S2")])


def test_every_format_shows_the_speakers():
    from sensevoice import subtitles
    from sensevoice.result import SPEAKERS

    result = diarized_result()
    assert subtitles.render(result, "txt") == "S1: hello there\nS2: yes\n"
    assert "[S1] hello there" in subtitles.render(result, "srt") and "[S2] yes" in subtitles.render(result, "srt")
    vtt = subtitles.render(result, "vtt")
    assert "\n<v S1>hello there\n" in vtt and "\n<v S2>yes\n" in vtt
    tsv = subtitles.render(result, "tsv").splitlines()
    assert tsv[0].split("\t")[-2:] == ["speaker", "text"] and tsv[2].split("\t")[-2:] == ["S2", "yes"]
    doc = json.loads(subtitles.render(result, "json"))
    assert [c["speaker"] for c in doc["cues"]] == ["S1", "S2"] and doc["segments"][1]["speaker"] == "S2"
    undiarized = result.without(SPEAKERS)
    assert "speaker" not in subtitles.render(undiarized, "tsv") and "<v" not in subtitles.render(undiarized, "vtt")
    assert "speaker" not in json.loads(subtitles.render(undiarized, "json"))["cues"][0]


# ----------------------------------------------------------------------------------------------- the CLI door
def test_cli_refuses_zero_speakers_and_crossed_bounds(capsys, wav_file):
    from sensevoice.cli import main

    assert main(["transcribe", "--num-speakers", "0", str(wav_file)]) == 2
    assert "--num-speakers: expected an integer from 1 to 32, got '0'" in capsys.readouterr().err
    assert main(["transcribe", "--min-speakers", "3", "--max-speakers", "2", str(wav_file)]) == 2
    assert "--min-speakers=3 is more than --max-speakers=2" in capsys.readouterr().err


def test_cli_diarizes_into_vtt_with_voices(official, tiny_dir, tmp_path, capsys):
    import soundfile

    from sensevoice.cli import main

    audio = tmp_path / "conv.wav"
    soundfile.write(audio, joined(official, ["en.mp3", "zh.mp3"]), 16000)
    assert main(["transcribe", "--model", str(tiny_dir), "--diarize", "-f", "vtt", "-o", str(tmp_path),
                 str(audio)]) == 0
    vtt = (tmp_path / "conv.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "<v S1>" in vtt and "<v S2>" in vtt


# ----------------------------------------------------------------------------------------------- the batch door
@pytest.mark.slow  # a local Ray and the speaker encoder in its prepare task
def test_batch_diarize_writes_transcribe_s_speakers_and_refuses_other_speaker_options(official, tiny_dir, tmp_path,
                                                                                       capsys):
    """``sensevoice batch --diarize`` on a two-speaker conversation: its row is ``transcribe --diarize -f json``'s
    document (a speaker per segment and word, the speakers and turns), in Parquet; a rerun with other speaker
    options into the same output is refused (exit 2) before Ray starts."""
    pytest.importorskip("ray", reason="needs the batch extra: pip install -c constraints.txt '.[batch]'")
    import soundfile

    from sensevoice import batchio
    from sensevoice.cli import main

    (tmp_path / "in").mkdir()
    soundfile.write(tmp_path / "in" / "conv.wav", joined(official, ["en.mp3", "zh.mp3"]), 16000)
    common = ["--model", str(tiny_dir), "--diarize", "--timestamps", "--tag-topk", "2"]
    assert main(["transcribe", str(tmp_path / "in" / "conv.wav"), "-f", "json", *common]) == 0
    doc = json.loads(capsys.readouterr().out)
    del doc["cues"]
    assert doc["speakers"] == ["S1", "S2"] and len(doc["word_speaker"]) == len(doc["words"])
    out = tmp_path / "out"
    python_path = os.environ.get("PYTHONPATH")
    assert main(["batch", str(tmp_path / "in"), "-o", str(out), "-f", "parquet", "--actors", "1", *common]) == 0
    # its local Ray's PYTHONPATH does not leak into later subprocesses (Ray sets variables of its own: not ours)
    assert os.environ.get("PYTHONPATH") == python_path
    [row] = batchio.read_output(out)
    assert {k: v for k, v in row.items() if k not in ("source", "duration_s", "model", "options")} == doc
    assert {s["speaker"] for s in row["segments"]} == {"S1", "S2"}
    assert json.loads(row["options"])["diarization"] == {"num_speakers": None, "min_speakers": 1,
                                                         "max_speakers": d.MAX_SPEAKERS}
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "-o", str(out), "-f", "parquet", *common, "--num-speakers", "2"]) == 2
    assert "diarization: " in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "in"), "-o", str(out), "-f", "parquet", *common[:2], "--timestamps",
                 "--tag-topk", "2"]) == 2


@pytest.mark.parametrize("door", ["transcribe", "serve", "batch"])
def test_every_door_takes_the_one_speaker_encoder_flag(capsys, door):
    """--speaker-encoder is declared once (argtypes.add_diarization_arguments) and every door has it: the same
    choices, checked by argparse; the service's (per request) has no --diarize of its own."""
    from sensevoice import cli

    parser = cli.build_parser(door)
    positional = {"transcribe": ["a.wav"], "serve": [], "batch": ["in", "-o", "out"]}[door]
    args = cli.parse(parser, [door, *positional, "--speaker-encoder", "cam++"])
    assert args.speaker_encoder == "cam++"
    assert cli.parse(parser, [door, *positional]).speaker_encoder is None  # then diarize.DEFAULT_SPEAKER_ENCODER
    assert hasattr(args, "diarize") == (door != "serve")
    assert cli.main([door, *positional, "--speaker-encoder", "xvector"]) == 2
    assert "argument --speaker-encoder: expected one of resemblyzer, cam++, got 'xvector'" in capsys.readouterr().err


@pytest.mark.parametrize("door", ["transcribe", "batch"])
def test_a_speaker_encoder_without_diarize_is_refused(capsys, wav_file, tiny_dir, tmp_path, door):
    from sensevoice.cli import main

    argv = [str(wav_file)] if door == "transcribe" else [str(wav_file.parent), "-o", str(tmp_path / "out")]
    assert main([door, "--model", str(tiny_dir), *argv, "--speaker-encoder", "cam++"]) == 2
    assert "--speaker-encoder cam++ labels speakers only with --diarize" in capsys.readouterr().err
    if door == "batch":  # only batch is given -o
        assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- CAM++
CAMPPLUS_REPO = "iic/speech_campplus_sv_zh-cn_16k-common"  # FunASR's name_maps_ms["cam++"]
CAMPPLUS_HF_REPO = "funasr/campplus"  # FunASR's name_maps_hf["cam++"] (funasr/download/name_maps_from_hub.py)
CAMPPLUS_WEIGHTS = "campplus_cn_common.bin"  # the weights' name in both repositories (3D-Speaker's infer_sv.py
# supports table, and every project that fetches funasr/campplus names it; 28 036 335 bytes there)
# The release's configuration.json: the "model" and "pipeline" blocks are what ModelScope's speaker-verification
# pipeline reads (modelscope/models/audio/sv/DTDNN.py SpeakerVerificationCAMPPlus: model_config.fbank_dim,
# model_config.emb_size, pretrained_model; pipelines/audio/speaker_verification_light_pipeline.py: yesOrno_thr, the
# model card's 0.31), file_path_metas what FunASR reads (funasr/download/download_model_from_hub.py: config,
# init_param; without them FunASR cannot build the model).
CAMPPLUS_CONFIGURATION = {
    "framework": "pytorch", "task": "speaker-verification",
    "model": {"type": "cam++-sv", "model_config": {"sample_rate": 16000, "fbank_dim": 80, "emb_size": 192},
              "pretrained_model": CAMPPLUS_WEIGHTS, "yesOrno_thr": 0.31},
    "pipeline": {"type": "speaker-verification"},
    "file_path_metas": {"init_param": CAMPPLUS_WEIGHTS, "config": "config.yaml"}}
# Its config.yaml: FunASR's funasr/models/campplus/template.yaml, the network's arguments and FunASR's WavFrontend
# (which CAMPPlus.inference does not use: it computes its own fbank).
CAMPPLUS_CONFIG_YAML = """\
model: CAMPPlus
model_conf:
    feat_dim: 80
    embedding_size: 192
    growth_rate: 32
    bn_size: 4
    init_channels: 128
    config_str: 'batchnorm-relu'
    memory_efficient: True
    output_level: 'segment'

frontend: WavFrontend
frontend_conf:
    fs: 16000
"""


def campplus_release(folder: Path) -> Path:
    """The release's files with random weights of the real shapes: a state dict of ModelScope's CAMPPlus(80, 192),
    the class ModelScope's pipeline loads campplus_cn_common.bin into with strict=True (so the keys and shapes are
    the real file's: 937 tensors, 6.93 M numbers, batch-norm counters included)."""
    from modelscope.models.audio.sv.DTDNN import CAMPPlus

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(CAMPPlus(80, 192).state_dict(), folder / CAMPPLUS_WEIGHTS)
    (folder / "config.yaml").write_text(CAMPPLUS_CONFIG_YAML)
    (folder / "configuration.json").write_text(json.dumps(CAMPPLUS_CONFIGURATION, indent=4))
    return folder


def cache_campplus(caches: dict[str, Path], tmp_path: Path) -> Path:
    """The fake release laid out in the ModelScope cache of ``speaker_caches`` (where `sensevoice download cam++`
    puts it)."""
    from test_hub import lay_out_ms

    return lay_out_ms(caches["ms"], CAMPPLUS_REPO, campplus_release(tmp_path / "release"))


@pytest.fixture
def speaker_caches(tmp_path, monkeypatch) -> dict[str, Path]:
    """Empty ModelScope and Hugging Face caches (and a home for ModelScope's older layout), as each library reads
    them offline (their cached settings reset)."""
    import huggingface_hub.constants
    import modelscope_hub.config

    caches = {"ms": tmp_path / "modelscope", "hf": tmp_path / "hf" / "hub", "home": tmp_path / "home"}
    monkeypatch.setenv("MODELSCOPE_CACHE", str(caches["ms"]))
    monkeypatch.setenv("HOME", str(caches["home"]))
    monkeypatch.setattr(modelscope_hub.config, "_default_config", None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(caches["hf"]))
    return caches


def test_campplus_release_is_read_by_funasr_modelscope_and_us_alike(tmp_path):
    """The fake release is one both real readers accept (FunASR's AutoModel through file_path_metas and config.yaml,
    ModelScope's pipeline through the "model" block), and our embedding equals both of theirs."""
    from funasr import AutoModel
    from modelscope.pipelines import pipeline

    folder = campplus_release(tmp_path / "campplus")
    window = speechlike(2.0, seed=4)[:d.WINDOW_SAMPLES] * 0.5
    ours = d.CAMPPlusEncoder.from_dir(folder).embed(torch.from_numpy(window)[None])[0]
    funasr_model = AutoModel(model=str(folder), device="cpu", disable_update=True, disable_pbar=True)
    assert type(funasr_model.model).__name__ == "CAMPPlus"
    theirs = funasr_model.generate(input=[window])[0]["spk_embedding"][0]
    assert torch.allclose(ours, theirs / theirs.norm(), atol=1e-5)
    modelscope_sv = pipeline(task="speaker-verification", model=str(folder), device="cpu")
    assert modelscope_sv.thr == CAMPPLUS_CONFIGURATION["model"]["yesOrno_thr"]
    theirs = torch.from_numpy(np.asarray(modelscope_sv([window, window], output_emb=True)["embs"][0]))
    assert torch.allclose(ours, theirs / theirs.norm(), atol=1e-5)


@pytest.mark.parametrize("layout", ["modelscope", "modelscope-legacy", "huggingface"])
def test_campplus_is_found_offline_in_each_cache_layout(speaker_caches, tmp_path, monkeypatch, layout):
    """As the ASR model is (sensevoice/hub.py): modelscope >= 1.38's snapshots, the older hub/models/<owner>/<name>
    that FunASR downloaded into with older versions, and the Hugging Face mirror."""
    from test_hub import lay_out_hf, lay_out_ms, lay_out_ms_legacy

    files = campplus_release(tmp_path / "release")
    if layout == "modelscope":
        lay_out_ms(speaker_caches["ms"], CAMPPLUS_REPO, files)
    elif layout == "modelscope-legacy":
        monkeypatch.delenv("MODELSCOPE_CACHE")
        lay_out_ms_legacy(speaker_caches["home"], CAMPPLUS_REPO, files)
    else:
        lay_out_hf(speaker_caches["hf"], CAMPPLUS_HF_REPO, files)
    encoder = d.load_speaker_encoder("cam++")
    assert isinstance(encoder, d.CAMPPlusEncoder) and encoder.name == "cam++"
    saved = torch.load(files / CAMPPLUS_WEIGHTS, weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in encoder.network.state_dict().items())


def test_campplus_embeds_each_window_as_funasr_does(speaker_caches, tmp_path):
    folder = cache_campplus(speaker_caches, tmp_path)
    encoder = d.load_speaker_encoder("cam++")
    windows = torch.from_numpy(np.stack([speechlike(2.0, seed=s)[:d.WINDOW_SAMPLES] for s in (1, 2, 3)]))
    embeddings = encoder.embed(windows)
    assert embeddings.shape == (3, 192)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    # FunASR's own path (its audio loading and extract_feature) gives the same vector, before our L2 norm
    funasr_out = encoder.network.inference([windows[1]], device="cpu")[0][0]["spk_embedding"][0]
    assert torch.allclose(embeddings[1], funasr_out / funasr_out.norm(), atol=1e-5)
    # a quiet file's windows reach CAM++ as they are, as FunASR reads them: Resemblyzer's loudness gain is GE2E's
    # alone (the log fbank floors quiet bins, so a gain would change CAM++'s features)
    quiet = speechlike(6.0, seed=5) * 0.002
    assert d.loudness_gain(quiet) > 10
    speech = d.embed_speech(quiet, [(500, 5500)], encoder)
    raw = [torch.from_numpy(d.window_audio(quiet, start)) for _, start in speech.windows]
    funasr_out = torch.cat([encoder.network.inference([w], device="cpu")[0][0]["spk_embedding"] for w in raw])
    theirs = (funasr_out / funasr_out.norm(dim=1, keepdim=True)).detach().numpy()
    np.testing.assert_allclose(speech.embeddings, theirs, atol=1e-5)
    # and diarization runs end to end on it (random weights: the speakers found are not the point)
    wave = np.concatenate([speechlike(4.0, seed=1), speechlike(4.0, seed=2)])
    turns = d.diarize(wave, [(0, 8000)], encoder, DiarizationOptions(num_speakers=2))
    assert {t.speaker for t in turns} == {0, 1} and turns[0].start_ms == 0 and turns[-1].end_ms == 8000
    # weights that do not fit the network are refused, read as data only
    state = torch.load(folder / CAMPPLUS_WEIGHTS, weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, folder / CAMPPLUS_WEIGHTS)
    with pytest.raises(ValueError, match=rf"{CAMPPLUS_WEIGHTS} does not match the model: missing \["):
        d.CAMPPlusEncoder.from_dir(folder)
    (folder / CAMPPLUS_WEIGHTS).write_bytes(b"not a checkpoint")  # truncated, or not torch's at all
    with pytest.raises(ValueError, match=f"{CAMPPLUS_WEIGHTS}: .*nothing in it was run"):
        d.CAMPPlusEncoder.from_dir(folder)


def test_campplus_release_that_funasr_cannot_read_is_refused_by_name(tmp_path):
    folder = tmp_path / "campplus"
    folder.mkdir()
    # ModelScope's pipeline-only descriptor (no file_path_metas, no config.yaml), as older revisions have it
    (folder / "configuration.json").write_text(json.dumps({k: v for k, v in CAMPPLUS_CONFIGURATION.items()
                                                           if k != "file_path_metas"}))
    with pytest.raises(ValueError, match=r"configuration.json has no file_path_metas.init_param/config .*"
                                         r"`sensevoice download cam\+\+`"):
        d.CAMPPlusEncoder.from_dir(folder)
    (folder / "configuration.json").write_text(json.dumps(CAMPPLUS_CONFIGURATION))
    (folder / "config.yaml").write_text(CAMPPLUS_CONFIG_YAML.replace("embedding_size", "embeding_size"))
    with pytest.raises(ValueError, match=r"model_conf keys \['embeding_size'\] are not CAMPPlus's"):
        d.CAMPPlusEncoder.from_dir(folder)
    (folder / "config.yaml").write_text(CAMPPLUS_CONFIG_YAML.replace("model: CAMPPlus", "model: ERes2NetV2"))
    with pytest.raises(ValueError, match="model 'ERes2NetV2'; expected 'CAMPPlus'"):
        d.CAMPPlusEncoder.from_dir(folder)
    (folder / "config.yaml").write_text("model: [CAMPPlus\n")
    with pytest.raises(ValueError, match="config.yaml is not YAML"):
        d.CAMPPlusEncoder.from_dir(folder)
    (folder / "config.yaml").write_text("")
    with pytest.raises(ValueError, match="config.yaml holds NoneType, not a mapping"):
        d.CAMPPlusEncoder.from_dir(folder)


def test_campplus_an_unreadable_release_in_one_cache_does_not_hide_a_good_one_in_the_next(speaker_caches, tmp_path):
    """An older, ModelScope-pipeline-only revision in the ModelScope cache: the Hugging Face cache's release loads;
    with no other, the one error line says why the cached one cannot be used."""
    from test_hub import lay_out_hf, lay_out_ms

    old = campplus_release(tmp_path / "old")
    (old / "configuration.json").write_text(json.dumps({k: v for k, v in CAMPPLUS_CONFIGURATION.items()
                                                        if k != "file_path_metas"}))
    lay_out_ms(speaker_caches["ms"], CAMPPLUS_REPO, old)
    with pytest.raises(FileNotFoundError) as err:
        d.load_speaker_encoder("cam++")
    assert f"{CAMPPLUS_REPO} in the ModelScope cache cannot be used: " in str(err.value)
    assert "has no file_path_metas" in str(err.value) and "\n" not in str(err.value)
    lay_out_hf(speaker_caches["hf"], CAMPPLUS_HF_REPO, campplus_release(tmp_path / "good"))
    assert isinstance(d.load_speaker_encoder("cam++"), d.CAMPPlusEncoder)


def test_campplus_absent_is_one_line_naming_the_caches_and_the_download_command(speaker_caches, wav_file,
                                                                                tiny_dir, capsys):
    with pytest.raises(FileNotFoundError) as err:
        d.load_speaker_encoder("cam++")
    message = str(err.value)
    assert "\n" not in message and f"{CAMPPLUS_REPO} is not in the ModelScope cache ({speaker_caches['ms']})" in message
    assert f"{CAMPPLUS_HF_REPO} is not in the Hugging Face cache ({speaker_caches['hf']})" in message
    assert "`sensevoice download cam++`" in message
    from sensevoice.cli import main

    assert main(["transcribe", "--model", str(tiny_dir), "--diarize", "--speaker-encoder", "cam++",
                 str(wav_file)]) == 2
    assert f"--diarize: speaker encoder cam++: {CAMPPLUS_REPO} is not in the ModelScope cache" in \
        capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- the service door
@pytest.fixture(scope="module")
def service(transcriber):
    from fastapi.testclient import TestClient

    from sensevoice.serve.app import ServeConfig, create_app
    from sensevoice.serve.batcher import Batcher

    with TestClient(create_app(Batcher(transcriber, 60.0, 5.0, 16), ServeConfig())) as client:
        yield client


def wav_upload(wave: np.ndarray) -> dict:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, 16000, format="WAV")
    return {"file": ("conv.wav", buffer.getvalue(), "audio/wav")}


def test_service_verbose_json_carries_speakers(official, service):
    files = wav_upload(joined(official, ["en.mp3", "zh.mp3"]))
    body = service.post("/v1/audio/transcriptions", files=files,
                        data={"response_format": "verbose_json", "diarize": "true",
                              "timestamp_granularities[]": "word"}).json()
    assert body["speakers"] == ["S1", "S2"] and [t["speaker"] for t in body["turns"]] == ["S1", "S2"]
    assert {s["speaker"] for s in body["segments"]} == {"S1", "S2"}
    assert all(w["speaker"] in ("S1", "S2") for w in body["words"])
    vtt = service.post("/v1/audio/transcriptions", files=files, data={"response_format": "vtt", "num_speakers": "2"})
    assert "<v S1>" in vtt.text and "<v S2>" in vtt.text
    plain = service.post("/v1/audio/transcriptions", files=files, data={"response_format": "verbose_json"}).json()
    assert "speakers" not in plain and "speaker" not in plain["segments"][0]


def test_service_verbose_json_carries_the_servers_subtitles_when_asked(official, service):
    """``subtitles=true`` (ours, with verbose_json: what the browser page downloads) adds the srt and vtt renderings of
    the same result, equal to response_format=srt/vtt's; the rest of the body is as without it."""
    files = wav_upload(joined(official, ["en.mp3", "zh.mp3"]))
    asked = {"response_format": "verbose_json", "diarize": "true"}
    body = service.post("/v1/audio/transcriptions", files=files, data={**asked, "subtitles": "true"}).json()
    for fmt in ("srt", "vtt"):
        assert body["subtitles"][fmt] == service.post("/v1/audio/transcriptions", files=files,
                                                      data={"response_format": fmt, "diarize": "true"}).text
    assert "[S2] " in body["subtitles"]["srt"] and "<v S2>" in body["subtitles"]["vtt"]
    del body["subtitles"]
    assert body == service.post("/v1/audio/transcriptions", files=files, data=asked).json()
    wrong = service.post("/v1/audio/transcriptions", files=files, data={"response_format": "srt", "subtitles": "1"})
    assert wrong.status_code == 422
    assert "subtitles needs response_format=verbose_json" in wrong.json()["error"]["message"]


def test_service_refuses_bad_speaker_counts(official, service):
    files = wav_upload(joined(official, ["ko.mp3"]))
    zero = service.post("/v1/audio/transcriptions", files=files, data={"num_speakers": "0"})
    assert zero.status_code == 422 and "num_speakers=0" in zero.json()["error"]["message"]
    many = service.post("/v1/audio/transcriptions", files=files, data={"num_speakers": "30"})
    assert many.status_code == 422 and "30 speakers asked for" in many.json()["error"]["message"]


# ----------------------------------------------------------------------------------------------- AutoModel door
def test_automodel_spk_model_returns_funasrs_sentence_info(official, tiny_dir):
    """FunASR's own spk path (1.5 s chunks, its ClusterBackend, distribute_spk) with our encoder as spk_model."""
    from funasr import AutoModel

    import sensevoice.funasr_speaker as speaker
    from sensevoice.vad import fsmn_vad_dir

    automodel = AutoModel(model=str(tiny_dir), trust_remote_code=True, remote_code=str(sv.__file__),
                          vad_model=str(fsmn_vad_dir()), spk_model=speaker.SPK_MODEL, spk_kwargs={"model_conf": {}},
                          device="cpu", disable_update=True, disable_pbar=True, ncpu=2)
    assert isinstance(automodel.spk_model, speaker.ResemblyzerSpeakerModel)
    wave = joined(official, ["en.mp3", "zh.mp3", "en.mp3"], pause_s=2.5)
    [result] = automodel.generate(input=wave, output_timestamp=True, batch_size_s=60)
    info = result["sentence_info"]
    assert info and all(isinstance(s["spk"], int) and {"start", "end", "text"} <= set(s) for s in info)
    en, zh, en_again = ([s["spk"] for s in info if a <= s["start"] / 1000 < b]
                        for a, b in ((0, 7.5), (9.5, 15.5), (17.5, 25)))
    assert set(en) == set(en_again) and not set(en) & set(zh), info


def test_diarized_vtt_plays_in_a_browser_track_with_speaker_voices(official, tiny_dir, tmp_path, page_client):
    """``transcribe --diarize -f vtt`` loaded by headless Chromium as a <track> of the audio it describes: the
    browser's own WebVTT parser yields the cues, each with its voice (a ``<v S1>`` span becomes ``<span title>``)."""
    import functools
    import http.server
    import threading
    import time

    import soundfile

    from sensevoice.cli import main

    soundfile.write(tmp_path / "conv.wav", joined(official, ["en.mp3", "zh.mp3"]), 16000)
    assert main(["transcribe", "--model", str(tiny_dir), "--diarize", "-f", "vtt", "-o", str(tmp_path),
                 str(tmp_path / "conv.wav")]) == 0
    (tmp_path / "page.html").write_text('<video src="conv.wav" muted><track kind="subtitles" src="conv.vtt" '
                                        'srclang="en" default></video>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    read_cues = ("const track = document.querySelector('video').textTracks[0]; track.mode = 'hidden';"
                 "return track.cues && track.cues.length ? Array.from(track.cues).map((cue) => "
                 "[cue.startTime, cue.getCueAsHTML().querySelector('span').title]) : null;")
    try:
        with page_client.browser() as driver:
            driver.cmd("POST", "/url", {"url": f"http://127.0.0.1:{server.server_port}/page.html"})
            deadline, cues = time.monotonic() + 30, None
            while cues is None and time.monotonic() < deadline:
                cues = driver.script(read_cues)
                time.sleep(0.2)
    finally:
        server.shutdown()
    assert cues, "the browser parsed no cue"
    assert {title for _, title in cues} == {"S1", "S2"} and cues[0][1] == "S1", cues


# ----------------------------------------------------------------------------------------------- the benchmark
def test_benchmark_conversations_and_scores():
    """bench/diarize.py: a conversation's reference follows its turns; the true turns score DER 0 and the right
    count, and one speaker's turns given to another score the confused share."""
    from sensevoice.bench import diarize as bench

    pool = [bench.Speaker(name, speechlike(25, seed=i), [(0, 16000 * 12), (16000 * 13, 16000 * 25)])
            for i, name in enumerate("abcd")]
    conv = bench.conversation(pool, 3, np.random.default_rng(1))
    assert len(set(conv.speakers)) == 3 and {name for _, _, name in conv.reference} == set(conv.speakers)
    assert all(a[1] <= b[0] for a, b in zip(conv.reference, conv.reference[1:]))  # in time order, no overlap
    ids = {name: n for n, name in enumerate(dict.fromkeys(name for _, _, name in conv.reference))}
    truth = [Turn(round(s * 1000), round(e * 1000), ids[name]) for s, e, name in conv.reference]
    perfect = bench.score([conv], [truth])
    assert perfect["der"] == 0 and perfect["count_accuracy"] == 1
    merged = [Turn(t.start_ms, t.end_ms, 0 if t.speaker == 1 else t.speaker) for t in truth]
    confused = bench.score([conv], [merged])
    assert confused["confusion"] > 0.05 and confused["count_accuracy"] == 0


def test_benchmark_splits_are_disjoint():
    """The tuning and test conversations never share a set of voices, a seed, or vad_example's audio."""
    from itertools import combinations

    from sensevoice.bench import diarize as bench

    for n_pool in (5, 6, 8):
        for k in (2, 3, 4):
            tune, test = (set(bench.split_combinations(n_pool, k, split)) for split in bench.SPLITS)
            assert tune and test and not tune & test and tune | test == set(combinations(range(n_pool), k))
    assert bench.SPLIT_SEEDS["tune"] != bench.SPLIT_SEEDS["test"]
    (a0, a1), (b0, b1) = (bench.SPLIT_CLIP_MS[split]["vad_example"] for split in bench.SPLITS)
    assert a1 <= b0 or b1 <= a0
    pool = [bench.Speaker(name, speechlike(25, seed=i), [(0, 16000 * 25)]) for i, name in enumerate("abcde")]
    seen = {split: {frozenset(bench.conversation(pool, 3, np.random.default_rng(s), split).speakers)
                    for s in range(20)} for split in bench.SPLITS}
    assert not seen["tune"] & seen["test"]


def test_silhouette_is_scikit_learns_and_settings_are_checked():
    from sklearn.metrics import silhouette_score

    x = groups([12, 9, 1], seed=3)
    labels = np.array([0] * 12 + [1] * 9 + [2])
    assert d.silhouette(x, labels) == pytest.approx(silhouette_score(x, labels, metric="cosine"), abs=1e-5)
    with pytest.raises(ValueError, match="count='eigen'"):
        d.ClusteringSettings(count="eigen")
    labels = d.cluster(x, settings=d.ClusteringSettings(count="silhouette", smooth_windows=0, min_cluster_share=0.1))
    assert labels[:12].tolist() == [0] * 12 and labels[12:21].tolist() == [1] * 9  # the lone window joins one


# ----------------------------------------------------------------------------------------------- --speaker-encoder
def test_serve_speaker_encoder_is_the_services_for_requests_and_streams(official, speaker_caches, tiny_dir,
                                                                         tmp_path, monkeypatch):
    """`sensevoice serve --speaker-encoder cam++`: the encoder loads at start-up, and an HTTP request's speakers and a
    WebSocket stream's tracker are CAM++'s (its embeddings are 192-wide; GE2E's 256)."""
    import asyncio

    from fastapi.testclient import TestClient

    from sensevoice import cli
    from sensevoice.serve import app

    cache_campplus(speaker_caches, tmp_path)
    seen = {}
    real_create_app = app.create_app

    def capture(batcher, config, hub=None):
        seen.update(batcher=batcher, config=config, hub=hub)
        return real_create_app(batcher, config, hub)

    monkeypatch.setattr(app, "create_app", capture)
    monkeypatch.setattr(app.StopOnSignal, "run", lambda self, sockets: None)  # started stays False: exit code 1
    assert cli.main(["serve", "--model", str(tiny_dir), "--port", "0", "--speaker-encoder", "cam++"]) == 1
    diarizer = seen["batcher"].transcriber.diarizer
    assert isinstance(diarizer._encoder, d.CAMPPlusEncoder)  # loaded at start-up, not by the first request
    with TestClient(real_create_app(seen["batcher"], seen["config"], seen["hub"])) as client:
        body = client.post("/v1/audio/transcriptions", files=wav_upload(joined(official, ["en.mp3", "zh.mp3"])),
                           data={"response_format": "verbose_json", "num_speakers": "2"}).json()
        tracker = asyncio.run(seen["hub"].speaker_tracker(DiarizationOptions()))  # what a stream gets
    assert body["speakers"] == ["S1", "S2"]
    assert tracker.encoder is diarizer.encoder and isinstance(tracker.encoder, d.CAMPPlusEncoder)
    assert tracker.embed(speechlike(2.0, seed=1)).shape == (192,)


def test_serve_without_the_chosen_speaker_encoder_does_not_start(speaker_caches, tiny_dir, monkeypatch, capsys):
    from sensevoice import cli
    from sensevoice.serve import app

    started = []
    monkeypatch.setattr(app.StopOnSignal, "run", lambda self, sockets: started.append(True))
    assert cli.main(["serve", "--model", str(tiny_dir), "--port", "0", "--no-vad", "--no-streaming",
                     "--speaker-encoder", "cam++"]) == 2
    err = capsys.readouterr().err
    assert f"sensevoice serve: error: --speaker-encoder: speaker encoder cam++: {CAMPPLUS_REPO} is not in the " \
           "ModelScope cache" in err
    assert "`sensevoice download cam++`" in err and not started


def test_batch_speaker_encoder_travels_to_the_workers_and_into_the_settings(official, speaker_caches, tiny_dir,
                                                                             tmp_path, monkeypatch, capsys):
    """`sensevoice batch --diarize --speaker-encoder cam++`: checked before Ray (absent: exit 2), handed to the job
    and its prepare tasks (which diarize with CAM++), recorded in the manifest: a rerun with another is refused."""
    pytest.importorskip("ray", reason="needs the batch extra: pip install -c constraints.txt '.[batch]'")
    import soundfile

    from sensevoice import raybatch
    from sensevoice.cli import main

    (tmp_path / "in").mkdir()
    soundfile.write(tmp_path / "in" / "conv.wav", joined(official, ["en.mp3", "zh.mp3"]), 16000)
    common = [str(tmp_path / "in"), "--model", str(tiny_dir), "--diarize"]
    jobs = []
    monkeypatch.setattr(raybatch, "run_job", lambda args, todo, *rest: jobs.append(args) or 0)
    assert main(["batch", *common, "-o", str(tmp_path / "absent"), "--speaker-encoder", "cam++"]) == 2
    assert f"--diarize: speaker encoder cam++: {CAMPPLUS_REPO} is not in the ModelScope cache" in \
        capsys.readouterr().err
    assert not jobs

    cache_campplus(speaker_caches, tmp_path)
    out = tmp_path / "out"
    assert main(["batch", *common, "-o", str(out), "--speaker-encoder", "cam++"]) == 0
    [args] = jobs
    assert args.speaker_encoder == "cam++"
    assert json.loads((out / "manifest.json").read_text())["settings"]["speaker_encoder"] == "cam++"
    assert main(["batch", *common, "-o", str(out)]) == 2
    assert "speaker_encoder: 'cam++' then, 'resemblyzer' now" in capsys.readouterr().err
    assert main(["batch", *common, "-o", str(out), "--speaker-encoder", "cam++"]) == 0  # the same: goes on

    # a prepare task (in this process) diarizes with the encoder it is handed
    batch = {"key": np.array(["conv"], dtype=object), "source": np.array([str(tmp_path / "in" / "conv.wav")],
                                                                          dtype=object)}
    [rows] = raybatch.prepare_file(batch, str(tiny_dir), True, 16000, None, {"num_speakers": 2, "min_speakers": 1,
                                   "max_speakers": d.MAX_SPEAKERS}, "cam++")
    assert {speaker for _, _, speaker in json.loads(rows["turns"][0])} == {0, 1}
    assert isinstance(raybatch.preparer(str(tiny_dir), True, "cam++").diarizer.encoder, d.CAMPPlusEncoder)
