"""Live transcription over WebSocket (sensevoice/serve/websocket.py): a client that sends exactly what FunASR's
runtime/python/websocket/funasr_wss_client.py sends, the project's own client, and bad input. The tiny model (fast;
its texts are noise, but equal noise) decodes; the official FSMN-VAD cuts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import model as sv
from sensevoice.audio import load_audio
from helpers import joined, pcm16
from sensevoice import cli, modeldir
from sensevoice.pipeline import Prepared, Transcriber
from sensevoice.serve import fields
from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher
from sensevoice.serve.stream import Stream, StreamConfig, stable_prefix
from sensevoice.serve.websocket import PARTIAL_MODE, StreamError, StreamHub, parse_first
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


@dataclass
class FunasrRun:
    """What funasr_client saw: every message, and ``text``, the client's ``text_print`` when it closed."""

    answers: list[dict]
    text: str


def funasr_client(url: str, pcm: bytes, mode: str = "2pass", chunk_interval: int = 10, pace: float = 1.0,
                  wav_name: str = "demo", audio_fs: int = 16000, wav_format: str = "pcm", hotwords: str = "",
                  until_end: bool = False, ours: dict | None = None) -> FunasrRun:
    """What FunASR's runtime/python/websocket/funasr_wss_client.py does for one --audio_in file, step for step.

    Sending (its record_from_scp): the first message; chunks of 60 * chunk_size[1] / chunk_interval ms of audio at
    ``audio_fs`` (a .wav's samples at its rate; "others": a file's bytes, cut as if they were 16 kHz samples), with
    {"is_speaking": false} right after the last one; after each chunk it sleeps 1 ms (offline) or the chunk's
    duration (so it runs slightly slower than real time: the send takes time too) times ``pace`` (ours: < 1 to test
    faster). Then online/2pass sleep 2 s and close; offline polls every 1 s until a message ended its wait
    (offline_msg_done: any message's is_final, any offline message) and closes.
    Receiving (its message()): every message's ``text`` (a message without one ends its loop: recorded as
    ``{"client_error": ...}``); messages without ``mode`` skipped; online ``text`` appended; offline ``text`` (+ "
    timestamp: ..." when it has timestamps) appended; 2pass-online appended to the online part, 2pass-offline
    appended to the offline part and the online part cleared; the printed text is the last 10000 characters.
    ``until_end`` (ours, for tests that check the messages, not the client's ending): wait for is_end, then close.
    ``ours``: fields of ours added to the first message ({"diarize": true})."""
    return asyncio.run(_funasr_client(url, pcm, mode, chunk_interval, pace, wav_name, audio_fs, wav_format,
                                      hotwords, until_end, ours or {}))


async def _funasr_client(url, pcm, mode, chunk_interval, pace, wav_name, audio_fs, wav_format, hotwords, until_end,
                         ours) -> FunasrRun:
    from websockets.asyncio.client import connect as connect_async

    chunk_size, words_max_print = [5, 10, 5], 10000
    chunk_s = 60 * chunk_size[1] / chunk_interval / 1000
    stride = int(chunk_s * audio_fs * 2)
    state = {"done": False, "text_print": "", "online": "", "offline": ""}
    answers: list[dict] = []
    ended = asyncio.Event()

    async def receive(ws) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = json.loads(await ws.recv())
                answers.append(message)
                if "text" not in message:
                    answers.append({"client_error": f"KeyError 'text' in {message}"})
                    return
                text, timestamp = message["text"], message.get("timestamp", "")
                state["done"] = message.get("is_final", False)
                if message.get("is_end"):
                    ended.set()
                if "mode" not in message:
                    continue
                if message["mode"] == "online":
                    state["text_print"] = (state["text_print"] + text)[-words_max_print:]
                elif message["mode"] == "offline":
                    state["text_print"] += f"{text} timestamp: {timestamp}" if timestamp != "" else text
                    state["done"] = True
                else:
                    if message["mode"] == "2pass-online":
                        state["online"] += text
                        state["text_print"] = state["offline"] + state["online"]
                    else:
                        state["online"] = ""
                        state["text_print"] = state["offline"] + text
                        state["offline"] += text
                    state["text_print"] = state["text_print"][-words_max_print:]

    async with connect_async(url, subprotocols=["binary"], ping_interval=None, max_size=None) as ws:
        receiver = asyncio.create_task(receive(ws))
        await ws.send(json.dumps({"mode": mode, "chunk_size": chunk_size, "chunk_interval": chunk_interval,
                                  "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0, "audio_fs": audio_fs,
                                  "wav_name": wav_name, "wav_format": wav_format, "is_speaking": True,
                                  "hotwords": hotwords, "itn": True, **ours}))
        chunk_num = (len(pcm) - 1) // stride + 1
        for i in range(chunk_num):
            await ws.send(pcm[i * stride:(i + 1) * stride])
            if i == chunk_num - 1:
                await ws.send(json.dumps({"is_speaking": False}))
            await asyncio.sleep((0.001 if mode == "offline" else chunk_s) * pace)
        if until_end:
            await asyncio.wait_for(ended.wait(), 120)
        elif mode != "offline":
            await asyncio.sleep(2)
        else:
            while not state["done"]:
                if receiver.done():  # FunASR's client would wait forever
                    answers.append({"client_error": "the connection closed before an answer ended the wait"})
                    break
                await asyncio.sleep(1)
        await ws.close()
        await receiver
    return FunasrRun(answers, state["text_print"])


def offline_texts(transcriber: Transcriber, pcm: bytes | np.ndarray, spans: list[tuple[int, int]]) -> list[str]:
    """The offline pipeline's texts of the same VAD segments (features of each span cut from the whole wave, given
    as 16-bit PCM bytes or float samples)."""
    wave = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0 if isinstance(pcm, bytes) else pcm
    feats = tuple(transcriber.features(wave[s * 16:e * 16], f"x@{s}ms") for s, e in spans)
    options = fields.request_options(ServeConfig().decoding, {"textnorm": "withitn"}, timestamps=True)
    [result] = transcriber.decode([Prepared("x", len(wave) // 16, tuple(spans), feats)], options)
    return [segment.clean_text for segment in result.segments]


def test_funasr_client_2pass_finals_equal_offline_decoding_of_the_same_segments(server, parts, news_pcm):
    url, hub = server
    run = funasr_client(url, news_pcm, "2pass", pace=0.1, until_end=True)
    answers = run.answers
    finals = [a for a in answers if a["mode"] == "2pass-offline"]
    partials = [a for a in answers if a["mode"] == "2pass-online"]
    assert len(finals) >= 3 and partials, [a["mode"] for a in answers]
    spans = [(a["start_ms"], a["end_ms"]) for a in finals]
    # Absolute times; the long middle segment is cut at 30 s (+ the VAD's 10 ms frame, as offline: [0, 30010]).
    assert all(0 <= s < e <= 63_260 and e - s <= 30_010 for s, e in spans)
    assert all(a <= b for (_, a), (b, _) in zip(spans, spans[1:]))
    assert any(e - s > 29_000 for s, e in spans)
    texts = offline_texts(parts[0], news_pcm, spans)
    assert [a["segment_text"] for a in finals] == texts
    assert run.text == " ".join(t for t in texts if t)  # the client joins the finals' texts
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


def test_offline_and_online_modes(server, news_pcm, tiny_dir):
    url, _ = server
    piece = news_pcm[:16000 * 2 * 15]  # 15 s
    [offline] = funasr_client(url, piece, "offline", until_end=True).answers  # one answer, at the end
    assert offline["mode"] == "offline" and offline["is_end"] and offline["is_final"]
    online = funasr_client(url, piece, "online", pace=0.1, until_end=True)
    assert {a["mode"] for a in online.answers} == {"online"}
    finals = [a for a in [offline, *online.answers] if a.get("segment_final") or a.get("is_end")]
    assert finals and {a["model"] for a in finals} == {modeldir.ModelDir(tiny_dir).identity.id}  # as /v1/models
    # The same segments, the same final texts, whatever the mode.
    assert finals_of(online.answers) == finals_of([offline]) and len(finals_of([offline])) >= 2
    assert offline["text"] == " ".join(text for _, _, text in finals_of([offline]) if text)
    assert [s["start"] for s in offline["stamp_sents"]] == [start for start, _, _ in finals_of([offline])]


def test_project_client_prints_the_final_segments(server, news_pcm, tmp_path):
    url, _ = server
    wav = tmp_path / "piece.wav"
    soundfile.write(wav, np.frombuffer(news_pcm[:16000 * 2 * 16], "<i2"), 16000, subtype="PCM_16")
    expected = [text for _, _, text in finals_of(funasr_client(url, news_pcm[:16000 * 2 * 16], "2pass", pace=0.1,
                                                               until_end=True).answers)]
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
    # funasr_wss_client.py --hotword FILE, in versions that join the first word of each line with commas
    ("cousin,twenty,阿里巴巴,", ("cousin", "twenty", "阿里巴巴")),
    ("Tongyi Lab，阿里巴巴", ("Tongyi Lab", "阿里巴巴")),
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
    assert funasr_client(url, news_pcm[:16000 * 2 * 2], "offline").answers[-1]["is_end"]  # and the server still serves


def test_a_backlog_goes_through_the_vad_at_once_and_metrics_count_streams(server, news_pcm):
    """A client sending faster than real time builds a backlog: the server feeds the VAD with all the audio that
    arrived since its last feed, not one call per message, and gives the same finals as a paced client."""
    url, hub = server
    metrics = hub.metrics
    before = {name: getattr(metrics, name).value() for name in ("stream_audio_messages", "stream_vad_feeds")}
    accepted = metrics.streams.value(("accepted",))
    piece = news_pcm[:16000 * 2 * 15]
    burst = funasr_client(url, piece, "offline", pace=0).answers  # 60 ms messages, no pause between them
    messages = metrics.stream_audio_messages.value() - before["stream_audio_messages"]
    feeds = metrics.stream_vad_feeds.value() - before["stream_vad_feeds"]
    assert messages == -(-len(piece) // 1920) and feeds < messages / 2, (messages, feeds)
    paced = funasr_client(url, piece, "offline", pace=6).answers
    assert finals_of(burst) == finals_of(paced) and burst[0]["text"] == paced[0]["text"]
    deadline = time.monotonic() + 10  # the server ends a session just after its client has read is_end
    while hub.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metrics.streams.value(("accepted",)) == accepted + 2 and metrics.streams_open.value() == 0
    assert "sensevoice_stream_vad_feeds_total" in metrics.render()


def finals_of(answers: list[dict]) -> list[tuple[int, int, str]]:
    """(start_ms, end_ms, text) of each segment's final: from the finals (online, 2pass) or the answer (offline)."""
    finals = [s for a in answers for s in a.get("segments", [a] if a.get("segment_final") else [])]
    return [(a["start_ms"], a["end_ms"], a["segment_text"]) for a in finals]


def test_a_whole_file_as_funasr_sends_other_formats(server, news_pcm, tmp_path):
    """FunASR's client sends a file that is neither .wav nor .pcm as its bytes, with wav_format "others": decoded at
    the end, it gives the same segments and texts as its samples sent as PCM."""
    url, _ = server
    piece = news_pcm[:16000 * 2 * 15]
    path = tmp_path / "piece.flac"
    soundfile.write(path, np.frombuffer(piece, "<i2"), 16000)
    answers = funasr_client(url, path.read_bytes(), "offline", wav_name="f", wav_format="others").answers
    as_pcm = funasr_client(url, piece, "offline").answers
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
    answers = funasr_client(url, pcm_8k, "2pass", audio_fs=8000, pace=0.1, until_end=True).answers  # 10x real time
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


def test_web_page_live_mode_in_headless_chromium(server, news_pcm, tmp_path, page_client):
    """The page's Record button streams the (fake) microphone and shows partials, then the final texts. Chromium plays
    the capture file in a loop; the texts are the tiny model's, so only their presence is checked."""
    wav = tmp_path / "capture.wav"
    soundfile.write(wav, np.frombuffer(news_pcm[:16000 * 2 * 14], "<i2"), 16000, subtype="PCM_16")
    flags = (*page_client.FAKE_MICROPHONE_FLAGS, f"--use-file-for-fake-audio-capture={wav}")
    url, hub = server
    with page_client.browser(flags) as driver:
        seen = page_client.live_recording(driver, url.replace("ws://", "http://"), 8.0, None)
    assert not seen["error"] and seen["partials"] and seen["final"], seen


# ---- FunASR's client, unchanged: the text it ends with ------------------------------------------------------------
PAUSE_S = 3.0  # between the examples: longer than the VAD's end-of-segment silence (2 s for short segments)


@pytest.fixture(scope="module")
def examples_joined(tmp_path_factory) -> tuple[Path, bytes]:
    """The bundled examples (examples/*.flac) joined with pauses, as a .wav file and as its 16-bit PCM."""
    silence = np.zeros(int(PAUSE_S * 16000), np.int16)
    pieces = [silence[:8000]]
    for path in sorted((ROOT / "examples").glob("*.flac")):
        wave, fs = soundfile.read(path, dtype="int16")
        assert fs == 16000 and wave.ndim == 1, path
        pieces += [wave, silence]
    joined = np.concatenate(pieces)
    path = tmp_path_factory.mktemp("joined") / "examples.wav"
    soundfile.write(path, joined, 16000, subtype="PCM_16")
    return path, joined.astype("<i2").tobytes()


@pytest.fixture(scope="module")
def cli_transcript(examples_joined, tiny_dir) -> str:
    """``sensevoice transcribe`` of the joined examples with the server's model (ITN on, as FunASR's client asks)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["transcribe", str(examples_joined[0]), "--model", str(tiny_dir), "-f", "json"])
    assert code == cli.EXIT_OK, err.getvalue()
    result = json.loads(out.getvalue())
    result = result[0] if isinstance(result, list) else result
    assert len(result["segments"]) >= 4 and result["clean_text"], "the examples should make several segments"
    return result["clean_text"]


@pytest.fixture(scope="module")
def paced_server(parts):
    """A server that warns at 0.3 s of lag: a client 2 % slower than real time falls that far behind real time
    after 15 s of audio, so measuring the client's pace instead of the server's backlog would warn."""
    transcriber, vad = parts
    batcher = Batcher(transcriber, max_wait_ms=2)
    hub = StreamHub(vad, batcher, StreamConfig(max_lag_s=0.3))
    with serve_in_thread(create_app(batcher, ServeConfig(), hub)) as url:
        yield url.replace("http://", "ws://") + "/"


def check_client_text(run: FunasrRun, mode: str, transcript: str) -> None:
    """The text FunASR's client ends with is the CLI's transcript; online texts only ever extended it."""
    assert not [a for a in run.answers if "client_error" in a or "error" in a], run.answers
    if mode == "offline":
        [answer] = run.answers
        assert run.text == f"{transcript} timestamp: {answer['timestamp']}" and answer["timestamp"]
        return
    assert run.text == transcript
    finals = [a for a in run.answers if a.get("segment_final")]
    assert " ".join(a["segment_text"] for a in finals if a["segment_text"]) == transcript
    if mode == "online":  # each segment's online texts add up to its final text
        for final in finals:
            mine = [a["text"] for a in run.answers if a.get("start_ms") == final["start_ms"]]
            assert "".join(mine).strip() == final["segment_text"]


@pytest.mark.parametrize("mode", ["offline", "online", "2pass"])
def test_funasr_client_ends_with_the_cli_transcript(paced_server, examples_joined, cli_transcript, mode):
    """FunASR's client at 10x its pace (a fast check; the slow test below runs at its own pace)."""
    run = funasr_client(paced_server, examples_joined[1], mode, pace=0.1)
    check_client_text(run, mode, cli_transcript)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["online", "2pass"])
def test_funasr_client_at_its_own_pace_and_2_percent_slower(paced_server, examples_joined, cli_transcript, mode):
    """At FunASR's client's own pace (it sleeps 60 ms after sending each 60 ms chunk) and then 2 % slower than
    that: the same text, partials until the last segment's end, no lag warning."""
    for pace in (1.0, 1.02):
        run = funasr_client(paced_server, examples_joined[1], mode, pace=pace)
        check_client_text(run, mode, cli_transcript)
        assert not [a for a in run.answers if "warning" in a], [a for a in run.answers if "warning" in a]
        partials = [a for a in run.answers if a.get("mode") == PARTIAL_MODE[mode] and "segment_text" in a
                    and not a.get("segment_final")]
        last = [a for a in run.answers if a.get("segment_final")][-1]
        assert partials and max(a["end_ms"] for a in partials) >= last["end_ms"] - 600


def test_online_partials_send_stable_text_that_later_hypotheses_keep(parts, examples_joined):
    """--online-partials: each segment's online texts only ever extend what was sent, the hypothesis that made text
    stable starts with all that was sent, and the final sends the rest whenever it agrees with it (the tiny model's
    finals often do not: partial and final decodes of its random weights differ)."""
    transcriber, vad = parts
    batcher = Batcher(transcriber, max_wait_ms=2)
    hub = StreamHub(vad, batcher, StreamConfig(online_partials=True))
    with serve_in_thread(create_app(batcher, ServeConfig(), hub)) as base:
        run = funasr_client(base.replace("http://", "ws://") + "/", examples_joined[1], "online", pace=0.1)
    finals = [a for a in run.answers if a.get("segment_final")]
    assert len(finals) >= 4 and any(a["text"] for a in run.answers if not a.get("segment_final"))
    for final in finals:
        mine = [a for a in run.answers if a.get("start_ms") == final["start_ms"] and not a.get("segment_final")]
        sent = ""
        for partial in mine:
            sent += partial["text"]
            if partial["text"]:
                assert partial["segment_text"].startswith(sent.lstrip(" ")), (sent, partial["segment_text"])
        if final["segment_text"].startswith(sent.lstrip(" ")):
            assert (sent + final["text"]).lstrip(" ") == final["segment_text"]


def test_a_lag_warning_is_no_result_to_funasr_clients(parts, examples_joined):
    """A server whose audio always waits too long (max_lag_s tiny): the warnings carry no ``mode`` and an empty
    ``text``, so FunASR's client skips them and still ends with the finals' text."""
    transcriber, vad = parts
    batcher = Batcher(transcriber, max_wait_ms=2)
    hub = StreamHub(vad, batcher, StreamConfig(max_lag_s=1e-6))
    with serve_in_thread(create_app(batcher, ServeConfig(), hub)) as base:
        url = base.replace("http://", "ws://") + "/"
        run = funasr_client(url, examples_joined[1][:16000 * 2 * 12], "2pass", pace=0.1)
    warnings = [a for a in run.answers if "warning" in a]
    assert warnings and all("mode" not in a and a["text"] == "" and a["lag_s"] >= 0 for a in warnings)
    finals = [a["segment_text"] for a in run.answers if a.get("segment_final")]
    assert run.text == " ".join(t for t in finals if t) and len(finals) >= 2


@pytest.mark.parametrize("hypotheses, stable", [
    (["Hello wor", "Hello world, how"], "Hello"),  # "wor" may still grow: not stable
    (["Hello world.", "Hello world, how are"], "Hello"),  # "world." vs "world,": the word is not agreed
    (["Hello world, how", "Hello world, how are"], "Hello world,"),
    (["你好世", "你好世界"], "你好"),  # no spaces: a character is stable once the next one is agreed
    (["你好，世界", "你好，世"], "你好，"),
    (["abc", "xyz"], ""),
    (["", "Hello world"], ""),
])
def test_stable_prefix_is_agreed_text_up_to_a_word_that_more_agreed_text_follows(hypotheses, stable):
    assert stable_prefix(hypotheses) == stable


def test_a_segments_stable_text_only_grows_and_stops_at_a_frozen_window():
    """Stream.partial_text over a sequence of window decodes: the stable text is each time a prefix of the next
    hypothesis; once a window froze with an unstable tail, nothing more becomes stable in the segment."""
    stream = Stream(vad=None, features=lambda wave, key: None, key="s", window_ms=1000)
    stream.open_start = stream.anchor_ms = 0

    def decoded(start_ms: int, end_ms: int, text: str) -> tuple[str, str]:
        return stream.partial_text(Prepared("s", end_ms - start_ms, ((start_ms, end_ms),), ()), text)

    assert decoded(0, 480, "Hel") == ("Hel", "")
    assert decoded(0, 960, "Hello wor") == ("Hello wor", "")
    assert decoded(0, 960, "Hello world, how") == ("Hello world, how", "Hello")
    assert decoded(0, 1000, "Hello world, how are") == ("Hello world, how are", " world,")  # the window froze
    assert stream.anchor_ms == 1000 and stream.stable == "Hello world,"
    assert decoded(1000, 1480, "you today") == ("Hello world, how are you today", "")
    assert decoded(1000, 1960, "you today and") == ("Hello world, how are you today and", "")
    assert decoded(0, 480, "stale") is None  # a window of the old anchor


# ----------------------------------------------------------------------------------------------- speakers
class SignEncoder:
    """A speaker encoder for the tracker's rules: a positive wave is one voice, a negative one another."""

    name = "sign"
    raises_loudness = False  # the sign of the samples is all it reads

    def embed(self, windows):
        import torch

        level = windows.mean(1)
        x = torch.stack([level.clamp(min=0), (-level).clamp(min=0), torch.full_like(level, 1e-6)], 1)
        return x / x.norm(dim=1, keepdim=True)


def voice(sign: float, seconds: float) -> np.ndarray:
    return np.full(int(seconds * 16000), 0.1 * sign, np.float32)


def test_speaker_tracker_labels_voices_as_they_appear_and_never_beyond_its_cap():
    from sensevoice.diarize import DiarizationOptions
    from sensevoice.serve.stream import SpeakerTracker

    tracker = SpeakerTracker(SignEncoder(), DiarizationOptions())
    labels = [tracker.assign(voice(sign, 2.0)) for sign in (1, -1, 1, -1)]
    assert [name for name, _ in labels] == ["S1", "S2", "S1", "S2"]
    assert [score for _, score in labels] == [1.0, 1.0, pytest.approx(1.0), pytest.approx(1.0)]
    assert tracker.assign(voice(-1, 0.5))[0] == "S2"  # short: joins the nearest
    short_first = SpeakerTracker(SignEncoder(), DiarizationOptions())
    assert short_first.assign(voice(1, 0.5))[0] == "S1" and short_first.assign(voice(-1, 0.5)) == ("S1", 0.0)

    capped = SpeakerTracker(SignEncoder(), DiarizationOptions(num_speakers=1))
    assert [capped.assign(voice(sign, 2.0)) for sign in (1, -1)] == [("S1", 1.0), ("S1", 0.0)]
    with pytest.raises(ValueError, match="min_speakers=2: a stream labels speakers as they appear"):
        SpeakerTracker(SignEncoder(), DiarizationOptions(min_speakers=2))


def test_speaker_tracker_looks_back_a_bounded_number_of_segments():
    from sensevoice.diarize import DiarizationOptions
    from sensevoice.serve import stream

    tracker = stream.SpeakerTracker(SignEncoder(), DiarizationOptions())
    for _ in range(stream.LOOKBACK_SEGMENTS * 3):
        tracker.assign(voice(1, 2.0))
    assert len(tracker.recent) == 1 and len(tracker.recent[0]) == stream.LOOKBACK_SEGMENTS


@pytest.fixture(scope="module")
def two_speakers(official) -> tuple[bytes, list[tuple[int, int, str]]]:
    """Real speech of two people as one stream: en.mp3, zh.mp3, en.mp3 with 2 s pauses (the VAD closes a segment at
    each), as 16-bit PCM, and each clip's [start_ms, end_ms) with its speaker's name."""
    names = ("en.mp3", "zh.mp3", "en.mp3")
    turns, at = [], 0
    for name in names:
        clip_ms = len(joined(official, [name], pause_s=0)) // 16
        turns.append((at, at + clip_ms, name))
        at += clip_ms + 2000
    return pcm16(joined(official, names, pause_s=2.0)), turns


def speaker_of(final: dict, turns: list[tuple[int, int, str]]) -> str:
    middle = (final["start_ms"] + final["end_ms"]) / 2
    return next(name for start, end, name in turns if start - 500 <= middle < end + 500)


@pytest.mark.parametrize("mode", ["2pass", "offline"])
def test_stream_speakers_stay_the_same_for_a_voice_and_differ_between_voices(server, two_speakers, mode):
    """Finals carry spk_name/spk_score as FunASR's runtime client prints them: the English speaker's segments (both
    of his clips, 2 s apart around the Chinese speaker's) get one label, the Chinese speaker's another."""
    url, _ = server
    pcm, turns = two_speakers
    answers = funasr_client(url, pcm, mode, pace=0.05, until_end=True, ours={"diarize": True}).answers
    finals = [s for a in answers for s in a.get("segments", [a] if a.get("segment_final") else [])]
    assert len(finals) >= 3 and all(isinstance(f["spk_name"], str) and isinstance(f["spk_score"], float)
                                    for f in finals), finals
    names = {}
    for final in finals:
        names.setdefault(speaker_of(final, turns), set()).add(final["spk_name"])
    assert names["en.mp3"] == {"S1"} and names["zh.mp3"] == {"S2"}, names
    assert all(-1 <= f["spk_score"] <= 1 for f in finals)


def utterances_on_one_connection(url: str, utterances: list[tuple[dict, bytes]], pace: float = 0.05
                                 ) -> list[list[dict]]:
    """Several utterances on one connection, as FunASR's funasr_wss_client.py sends the files of a wav.scp: per
    utterance its first message (``is_speaking: true``), its PCM in 600 ms chunks, ``{"is_speaking": false,
    "is_end": true}``, then a wait for the answer that ends it before the next first message. Each utterance's
    finals (each segment's, with its speaker)."""
    from websockets.asyncio.client import connect as connect_async

    stride = 600 * 32  # 600 ms of 16 kHz 16-bit samples

    async def run() -> list[list[dict]]:
        finals: list[list[dict]] = []
        async with connect_async(url, subprotocols=["binary"], ping_interval=None, max_size=None) as ws:
            for first, pcm in utterances:
                await ws.send(json.dumps({"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10,
                                          "wav_name": "demo", "is_speaking": True, **first}))
                for start in range(0, len(pcm), stride):
                    await ws.send(pcm[start:start + stride])
                    await asyncio.sleep(0.6 * pace)
                await ws.send(json.dumps({"is_speaking": False, "is_end": True}))
                finals.append([])
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    assert "error" not in message, message
                    finals[-1] += message.get("segments", [message] if message.get("segment_final") else [])
                    if message.get("is_end"):
                        break
        return finals

    return asyncio.run(run())


def test_stream_speakers_hold_across_the_utterances_of_one_connection(server, official):
    """The connection's speakers: S1 in the second utterance is the voice S1 was in the first (the English
    speaker), and the Chinese speaker, new in it, is S2; an utterance with other speaker options starts afresh."""
    def pcm(*names: str) -> bytes:
        return pcm16(joined(official, names, pause_s=2.0))

    url, _ = server
    first, second, other = utterances_on_one_connection(url, [({"diarize": True}, pcm("en.mp3")),
                                                              ({"diarize": True}, pcm("zh.mp3", "en.mp3")),
                                                              ({"max_speakers": 4}, pcm("zh.mp3"))])
    assert first and {f["spk_name"] for f in first} == {"S1"}, first
    zh_ms = len(load_audio(str(official / "example" / "zh.mp3"), "zh").numpy()) // 16 + 1000
    names = [(f["start_ms"] < zh_ms, f["spk_name"]) for f in second]
    assert {name for is_zh, name in names if is_zh} == {"S2"}, second
    assert {name for is_zh, name in names if not is_zh} == {"S1"}, second
    assert other and {f["spk_name"] for f in other} == {"S1"}, other  # max_speakers changed: a new tracker


def test_without_diarize_a_stream_has_no_speakers(server, two_speakers):
    url, _ = server
    answers = funasr_client(url, two_speakers[0], "2pass", pace=0.05, until_end=True).answers
    assert answers and not any("spk_name" in a or "spk_score" in a for a in answers)


def test_a_stream_refuses_a_minimum_of_speakers(server):
    url, _ = server
    answer, code = refused(url, json.dumps({"mode": "2pass", "diarize": True, "min_speakers": 2}))
    assert code == 1008 and "min_speakers=2: a stream labels speakers as they appear" in answer["error"]
    answer, code = refused(url, json.dumps({"mode": "2pass", "num_speakers": 0}))
    assert code == 1008 and "num_speakers=0 must be an integer in [1, 32]" in answer["error"]
