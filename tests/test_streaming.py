"""Live transcription over WebSocket (sensevoice/serve/websocket.py): a client that sends exactly what FunASR's
runtime/python/websocket/funasr_wss_client.py sends, the project's own client, and bad input. The tiny model (fast;
its texts are noise, but equal noise) decodes; the official FSMN-VAD cuts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.sync.client import connect

import model as sv
from sensevoice import modeldir
from sensevoice.pipeline import Prepared, Transcriber
from sensevoice.serve import fields
from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher
from sensevoice.serve.stream import StreamConfig
from sensevoice.serve.websocket import StreamError, StreamHub, parse_first
from sensevoice.vad import StreamingVad

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "stream-test-key"


@pytest.fixture(scope="module")
def parts(tiny_dir):
    return Transcriber(tiny_dir, vad=False, threads=2), StreamingVad()


@pytest.fixture(scope="module")
def news_pcm() -> bytes:
    """The 63 s enNews recording as 16-bit PCM (what FunASR's client reads out of a .wav with the wave module)."""
    found = modeldir.official_dir()
    path = found / "example" / "enNews.wav" if found else None
    if path is None or not path.is_file():
        pytest.skip("official example/enNews.wav not found")
    wave, fs = soundfile.read(path, dtype="int16")
    assert fs == 16000 and wave.ndim == 1
    return wave.astype("<i2").tobytes()


@pytest.fixture(scope="module")
def server(parts):
    """No API key (FunASR's clients send none); short idle timeout, two streams at most."""
    transcriber, vad = parts
    batcher = Batcher(transcriber, max_wait_ms=2)
    hub = StreamHub(vad, batcher, StreamConfig(max_streams=2, idle_timeout_s=1.5))
    with serve_in_thread(create_app(batcher, ServeConfig(), hub)) as url:
        yield url.replace("http://", "ws://") + "/", hub


def funasr_client(url: str, pcm: bytes, mode: str = "2pass", chunk_interval: int = 10, sleep_s: float | None = None,
                  wav_name: str = "demo", audio_fs: int = 16000, wav_format: str = "pcm") -> list[dict]:
    """funasr_wss_client.py's record_from_scp for one file, message for message: the first message, chunks of
    60 * chunk_size[1] / chunk_interval ms at ``audio_fs`` (a .wav's samples at its rate; "others": a file's bytes,
    cut as if 16 kHz), then {"is_speaking": false, "is_end": true}; collects every answer until the one with
    is_end. FunASR's client paces online and 2pass at real time and offline at 1 ms a chunk; by default this one
    paces them at 10x real time and 1 ms (partials need audio arriving over time: a backlog goes through the VAD at
    once)."""
    chunk_size = [5, 10, 5]
    stride = int(60 * chunk_size[1] / chunk_interval / 1000 * audio_fs * 2)
    if sleep_s is None:
        sleep_s = 0.001 if mode == "offline" else 60 * chunk_size[1] / chunk_interval / 1000 / 10
    with connect(url, subprotocols=["binary"], max_size=None) as ws:
        ws.send(json.dumps({"mode": mode, "chunk_size": chunk_size, "chunk_interval": chunk_interval,
                            "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0, "audio_fs": audio_fs,
                            "wav_name": wav_name, "wav_format": wav_format, "is_speaking": True, "hotwords": "",
                            "itn": True}, ensure_ascii=False))
        for i in range((len(pcm) - 1) // stride + 1):
            ws.send(pcm[i * stride:(i + 1) * stride])
            time.sleep(sleep_s)
        ws.send(json.dumps({"is_speaking": False, "is_end": True}, ensure_ascii=False))
        answers = []
        while not answers or not answers[-1].get("is_end"):
            answers.append(json.loads(ws.recv(timeout=120)))
    return answers


def offline_texts(transcriber: Transcriber, pcm: bytes | np.ndarray, spans: list[tuple[int, int]]) -> list[str]:
    """The offline pipeline's texts of the same VAD segments (features of each span cut from the whole wave, given
    as 16-bit PCM bytes or float samples)."""
    wave = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0 if isinstance(pcm, bytes) else pcm
    feats = tuple(transcriber.features(wave[s * 16:e * 16], f"x@{s}ms") for s, e in spans)
    options = fields.request_options(ServeConfig().decoding, {"textnorm": "withitn"}, timestamps=True)
    [result] = transcriber.decode([Prepared("x", len(wave) // 16, tuple(spans), feats)], options)
    return [segment["clean_text"] for segment in result["segments"]]


def test_funasr_client_2pass_finals_equal_offline_decoding_of_the_same_segments(server, parts, news_pcm):
    url, hub = server
    answers = funasr_client(url, news_pcm, "2pass")
    finals = [a for a in answers if a["mode"] == "2pass-offline"]
    partials = [a for a in answers if a["mode"] == "2pass-online"]
    assert len(finals) >= 3 and partials, [a["mode"] for a in answers]
    spans = [(a["start_ms"], a["end_ms"]) for a in finals]
    # Absolute times; the long middle segment is cut at 30 s (+ the VAD's 10 ms frame, as offline: [0, 30010]).
    assert all(0 <= s < e <= 63_260 and e - s <= 30_010 for s, e in spans)
    assert all(a <= b for (_, a), (b, _) in zip(spans, spans[1:]))
    assert any(e - s > 29_000 for s, e in spans)
    assert [a["text"] for a in finals] == offline_texts(parts[0], news_pcm, spans)
    assert finals[-1]["is_final"] and finals[-1]["is_end"] and not any(a["is_final"] for a in answers[:-1])
    first = finals[0]
    assert isinstance(first["timestamp"], str) and first["stamp_sents"][0]["start"] == spans[0][0]
    assert {"language", "emotion", "event", "wav_name"} <= set(first) and first["wav_name"] == "demo"
    for final in finals:  # confidence, as in verbose_json
        assert final["avg_logprob"] <= 0 and 0 <= final["no_speech_prob"] <= 1
        assert len(final["word_probability"]) == len(json.loads(final["timestamp"] or "[]"))
        assert all(0 <= p <= 1 for p in final["word_probability"])
    assert all(a["start_ms"] >= finals[0]["start_ms"] for a in partials)
    assert hub.active == 0


def test_offline_and_online_modes(server, news_pcm):
    url, _ = server
    piece = news_pcm[:16000 * 2 * 15]  # 15 s
    offline = funasr_client(url, piece, "offline")
    assert {a["mode"] for a in offline} == {"offline"} and offline[-1]["is_end"]
    online = funasr_client(url, piece, "online")
    assert {a["mode"] for a in online} == {"online"} and len(online) > len(offline)
    # The same segments, the same final texts, whatever the mode.
    assert [(a["start_ms"], a["segment_text"]) for a in online if a.get("segment_final")] == \
        [(a["start_ms"], a["text"]) for a in offline if a.get("segment_final")]


def test_project_client_prints_the_final_segments(server, news_pcm, tmp_path):
    url, _ = server
    wav = tmp_path / "piece.wav"
    soundfile.write(wav, np.frombuffer(news_pcm[:16000 * 2 * 16], "<i2"), 16000, subtype="PCM_16")
    expected = [a["segment_text"] for a in funasr_client(url, news_pcm[:16000 * 2 * 16], "2pass")
                if a.get("segment_final")]
    done = subprocess.run([sys.executable, ROOT / "clients" / "python" / "stream_client.py", wav, url],
                          capture_output=True, timeout=120, env={**os.environ, "SENSEVOICE_API_KEY": ""})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode().splitlines() == [t for t in expected if t]


def refused(url: str, first, *then, headers=None) -> tuple[dict, int]:
    """Send messages; the server's error message and its close code."""
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed), connect(url, additional_headers=headers) as ws:
        with contextlib.suppress(ConnectionClosed):  # a refusal may come before the client has said anything
            for message in (first, *then):
                ws.send(message)
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    return error, ws.close_code


START = json.dumps({"mode": "2pass", "wav_name": "x", "is_speaking": True})


def test_bad_first_message_and_non_pcm_audio_are_refused(server, wav_file):
    url, hub = server
    error, code = refused(url, b"\x00\x01" * 100)
    assert code == 1008 and "first message must be JSON" in error["error"] and error["is_end"]
    assert (error["mode"], error["text"]) == ("offline", "")  # FunASR's client reads both from every message
    error, code = refused(url, json.dumps({"mode": "3pass"}))
    assert code == 1008 and "'3pass'" in error["error"] and "2pass" in error["error"]
    error, code = refused(url, json.dumps({"mode": "online", "audio_fs": 4000}))
    assert code == 1003 and "audio_fs=4000" in error["error"] and "8000 to 192000" in error["error"]
    error, code = refused(url, json.dumps({"mode": "offline", "wav_format": "mp3"}))
    assert code == 1003 and "'others'" in error["error"]
    error, code = refused(url, json.dumps({"mode": "offline", "wav_format": "others"}), b"not audio at all",
                          json.dumps({"is_speaking": False}))
    assert code == 1003 and "wav_format 'others'" in error["error"] and "look like text" in error["error"]
    error, code = refused(url, START, wav_file.read_bytes())
    assert code == 1003 and "raw 16-bit PCM" in error["error"]
    error, code = refused(url, json.dumps({"mode": "2pass", "hotwords": 20}))
    assert code == 1008 and "hotwords=20" in error["error"] and "JSON object" in error["error"]
    assert hub.active == 0


@pytest.mark.parametrize("hotwords, phrases", [
    ("", ()),
    # FunASR's client sends a JSON object as a string
    (json.dumps({"阿里巴巴": 20, "Tongyi  Lab": 10}, ensure_ascii=False), ("阿里巴巴", "Tongyi Lab")),
    ({"SenseVoice": 1}, ("SenseVoice",)),
    ("Alibaba Tongyi", ("Alibaba", "Tongyi")),
])
def test_funasr_hotwords_bias_the_stream_decoding(hotwords, phrases):
    base = sv.DecodingOptions(hotwords=(("FunASR", 3.0),))
    settings = parse_first({"mode": "2pass", "hotwords": hotwords}, base)
    assert settings.options.hotwords == (("FunASR", 3.0), *((p, None) for p in phrases))
    with pytest.raises(StreamError, match="not a JSON object"):
        parse_first({"hotwords": "{broken"}, base)


def test_idle_stream_is_closed(server):
    url, _ = server
    started = time.monotonic()
    error, code = refused(url, START, b"\x00\x00" * 1600)
    assert code == 1001 and "no message for 1.5 s" in error["error"] and time.monotonic() - started < 10


def test_too_many_streams_are_refused_and_a_dropped_client_is_freed(server, news_pcm):
    url, hub = server
    with connect(url) as one, connect(url) as two:
        for ws in (one, two):
            ws.send(START)
            ws.send(news_pcm[:16000 * 2 * 3])  # mid-segment
        time.sleep(0.3)
        assert hub.active == 2
        error, code = refused(url, START)
        assert code == 1013 and "limit is 2" in error["error"]
    deadline = time.monotonic() + 10  # both clients went away mid-segment: their streams are freed
    while hub.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.active == 0
    assert funasr_client(url, news_pcm[:16000 * 2 * 2], "offline")[-1]["is_end"]  # and the server still serves


def test_a_backlog_goes_through_the_vad_at_once_and_metrics_count_streams(server, news_pcm):
    """A client sending faster than real time builds a backlog: the server feeds the VAD with all the audio that
    arrived since its last feed, not one call per message, and gives the same finals as a paced client."""
    url, hub = server
    metrics = hub.metrics
    before = {name: getattr(metrics, name).value() for name in ("stream_audio_messages", "stream_vad_feeds")}
    accepted = metrics.streams.value(("accepted",))
    piece = news_pcm[:16000 * 2 * 15]
    burst = funasr_client(url, piece, "offline", sleep_s=0.0)  # 60 ms messages, no pause between them
    messages = metrics.stream_audio_messages.value() - before["stream_audio_messages"]
    feeds = metrics.stream_vad_feeds.value() - before["stream_vad_feeds"]
    assert messages == -(-len(piece) // 1920) and feeds < messages / 2, (messages, feeds)
    paced = funasr_client(url, piece, "offline", sleep_s=0.006)
    assert [(a["start_ms"], a["text"]) for a in burst] == [(a["start_ms"], a["text"]) for a in paced]
    deadline = time.monotonic() + 10  # the server ends a session just after its client has read is_end
    while hub.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metrics.streams.value(("accepted",)) == accepted + 2 and metrics.streams_open.value() == 0
    assert "sensevoice_stream_vad_feeds_total" in metrics.render()


def finals_of(answers: list[dict]) -> list[tuple[int, int, str]]:
    return [(a["start_ms"], a["end_ms"], a["segment_text"]) for a in answers if a.get("segment_final")]


def test_a_whole_file_as_funasr_sends_other_formats(server, news_pcm, tmp_path):
    """FunASR's client sends a file that is neither .wav nor .pcm as its bytes, with wav_format "others": decoded at
    the end, it gives the same segments and texts as its samples sent as PCM."""
    url, _ = server
    piece = news_pcm[:16000 * 2 * 15]
    path = tmp_path / "piece.flac"
    soundfile.write(path, np.frombuffer(piece, "<i2"), 16000)
    answers = funasr_client(url, path.read_bytes(), "offline", wav_name="f", wav_format="others")
    as_pcm = funasr_client(url, piece, "offline")
    assert finals_of(answers) == finals_of(as_pcm) and len(finals_of(answers)) >= 2
    assert answers[-1]["is_final"] and answers[-1]["wav_name"] == "f"


def test_pcm_at_another_rate_is_resampled_as_it_arrives(server, parts, news_pcm):
    """FunASR's client sends a .wav's samples at the file's rate with audio_fs: the server resamples them to 16 kHz
    as they come, into the same samples as resampling the whole at once: the same segments (times in ms from the
    stream's start) and texts."""
    import soxr

    url, _ = server
    transcriber, vad = parts
    piece = news_pcm[:16000 * 2 * 15]
    at_8k = soxr.resample(np.frombuffer(piece, "<i2").astype(np.float32) / 32768, 16000, 8000)
    pcm_8k = (np.clip(at_8k, -1, 1) * 32767).astype("<i2").tobytes()
    answers = funasr_client(url, pcm_8k, "2pass", audio_fs=8000)  # 60 ms chunks at 8 kHz, 10x real time
    at_once = soxr.resample(np.frombuffer(pcm_8k, "<i2").astype(np.float32) / 32768, 8000, 16000)
    stream, events, last = vad.open(), [], len(at_once) - 160  # the server's last feed: the resampler's tail
    for begin in range(0, last, 1920):
        events += stream.feed(at_once[begin:min(begin + 1920, last)])
    events += stream.feed(at_once[last:], is_final=True)
    spans = [(start, end) for start, end in zip([s for s, _ in events if s != -1], [e for _, e in events if e != -1])]
    resampled = finals_of(answers)
    assert [(s, e) for s, e, _ in resampled] == spans and len(spans) >= 2
    assert [text for _, _, text in resampled] == offline_texts(transcriber, at_once, spans)
    assert any(a["mode"] == "2pass-online" for a in answers)


def test_api_key_is_required_when_set(parts, news_pcm):
    transcriber, vad = parts
    batcher = Batcher(transcriber, max_wait_ms=2)
    hub = StreamHub(vad, batcher, api_key=API_KEY)
    with serve_in_thread(create_app(batcher, ServeConfig(api_key=API_KEY), hub)) as base:
        url = base.replace("http://", "ws://") + "/"
        error, code = refused(url, START)
        assert code == 1008 and "API key" in error["error"]
        for auth in ({"headers": {"Authorization": f"Bearer {API_KEY}"}}, {"query": f"?api_key={API_KEY}"}):
            with connect(url + auth.get("query", ""), additional_headers=auth.get("headers")) as ws:
                ws.send(START)
                ws.send(news_pcm[:32000])
                ws.send(json.dumps({"is_speaking": False}))
                assert json.loads(ws.recv(timeout=30))["is_end"]


def test_web_page_live_mode_in_headless_chromium(server, news_pcm, tmp_path):
    """The page's Record button streams the (fake) microphone and shows partials, then the final texts. Chromium plays
    the capture file in a loop; the texts are the tiny model's, so only their presence is checked."""
    import importlib.util
    import shutil

    if shutil.which("chromedriver") is None:
        pytest.skip("chromedriver not installed (install with: bash scripts/install_client_toolchains.sh)")
    spec = importlib.util.spec_from_file_location("page_client", ROOT / "clients" / "web" / "page_client.py")
    page_client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page_client)
    if page_client.find_chromium() is None:
        pytest.skip("chromium not installed (install with: bash scripts/install_client_toolchains.sh)")
    wav = tmp_path / "capture.wav"
    soundfile.write(wav, np.frombuffer(news_pcm[:16000 * 2 * 14], "<i2"), 16000, subtype="PCM_16")
    flags = (*page_client.FAKE_MICROPHONE_FLAGS, f"--use-file-for-fake-audio-capture={wav}")
    url, hub = server
    with page_client.browser(flags) as driver:
        seen = page_client.live_recording(driver, url.replace("ws://", "http://"), 8.0, None)
    assert not seen["error"] and seen["partials"] and seen["final"], seen
