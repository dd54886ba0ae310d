"""The HTTP service: answers equal direct model decoding (alone and batched across concurrent requests), options
never mix in one model call, every limit and bad input gets its status code, metrics and memory stay sane."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import soundfile
from fastapi.testclient import TestClient

from testkit import speechlike
import model as sv
from sensevoice import cli, richtext
from sensevoice.pipeline import MAX_PAD_RATIO, Prepared, Transcriber, plan_batches
from sensevoice.serve import command, formats
from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher, QueueFull, ShuttingDown
from sensevoice.serve.metrics import Histogram

OPENAI = "/v1/audio/transcriptions"
ASR = "/api/v1/asr"


def wav_bytes(seconds: float, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, speechlike(seconds, seed), 16000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def transcriber(tiny_dir) -> Transcriber:
    return Transcriber(tiny_dir, vad=False, threads=2)


def direct(transcriber: Transcriber, data: bytes, **options) -> dict:
    """Single-request decoding straight through the model: the reference every service answer must equal."""
    [result], _ = transcriber.backend.model.inference([data], key=["ref"], tokenizer=transcriber.tokenizer,
                                                      frontend=transcriber.frontend, **options)
    return result


def make_app(transcriber, batch_size_s: float = 60.0, max_wait_ms: float = 5.0, max_queue: int = 64, **config):
    return create_app(Batcher(transcriber, batch_size_s, max_wait_ms, max_queue), ServeConfig(**config))


def item(key: str, seconds: float) -> Prepared:
    """A prepared item for the model-free batcher tests (only its key and duration matter)."""
    return Prepared(key, int(seconds * 1000), ((0, int(seconds * 1000)),), ())


@pytest.fixture(scope="module")
def client(transcriber):
    with TestClient(make_app(transcriber)) as c:
        yield c


def upload(data: bytes, name: str = "a.wav", **fields) -> dict:
    return {"files": {"file": (name, data, "audio/wav")}, "data": fields}


class Gate:
    """Wraps a transcriber: records each call; the first call blocks until ``release`` is set, so the test can
    queue requests behind it deterministically."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):  # the rest (model_dir: the service names its model) is the inner transcriber's
        return getattr(self.inner, name)

    def prepare_wave(self, wave, key):
        return self.inner.prepare_wave(wave, key)

    def decode(self, items, options):
        self.calls.append(([item.key for item in items], options))
        self.entered.set()
        assert self.release.wait(30), "test never released the gate"
        return self.inner.decode(items, options)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()  # a failing test must not leave the worker (and the server's shutdown) blocked


def wait_for(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def post(url: str, path: str, data: bytes, name: str, **fields) -> httpx.Response:
    return httpx.post(url + path, files={"file": (name, data)}, data=fields, timeout=60)


# ----------------------------------------------------------------------------------------------- answers
def test_openai_json_equals_direct_decoding(client, transcriber):
    data = wav_bytes(2.5, seed=1)
    reference = direct(transcriber, data, use_itn=True)
    assert reference["clean_text"], "the tiny model should say something"
    response = client.post(OPENAI, **upload(data, model="sensevoice-small"))
    assert response.status_code == 200, response.text
    assert response.json() == {"text": reference["clean_text"]}
    spoken = client.post(OPENAI, **upload(data, use_itn="false", language="en")).json()["text"]
    assert spoken == direct(transcriber, data, use_itn=False, language="en")["clean_text"]


def test_server_wide_decoding_options(biased_dir):
    plain = Transcriber(biased_dir, vad=False, threads=2)
    tuned = sv.DecodingOptions(ban_emo_unk=True, blank_penalty=3.0)
    data = wav_bytes(2.5, seed=1)
    unbanned = direct(plain, data, use_itn=True)
    banned = direct(plain, data, use_itn=True, ban_emo_unk=True)
    reference = direct(plain, data, use_itn=True, ban_emo_unk=True, blank_penalty=3.0)
    assert "<|EMO_UNKNOWN|>" in unbanned["text"] and banned["text"] == ""  # what biased_dir is built to do
    assert "<|EMO_UNKNOWN|>" not in reference["text"] and reference["clean_text"]
    for decoding, expected in ((sv.DecodingOptions(), unbanned), (tuned, reference)):
        with TestClient(make_app(plain, decoding=decoding)) as c:
            body = c.post(OPENAI, **upload(data, response_format="verbose_json")).json()
        assert body["rich_text"] == expected["text"]
    with pytest.raises(ValueError, match="blank_penalty=-1.0 must be a finite number >= 0"):
        sv.DecodingOptions(blank_penalty=-1.0)


def test_response_formats(client, transcriber):
    data = wav_bytes(2.0, seed=2)
    reference = direct(transcriber, data, use_itn=True, output_timestamp=True)
    text = client.post(OPENAI, **upload(data, response_format="text"))
    assert text.headers["content-type"].startswith("text/plain") and text.text == reference["clean_text"] + "\n"
    srt = client.post(OPENAI, **upload(data, response_format="srt")).text
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,000\n") and reference["clean_text"][:10] in srt
    vtt = client.post(OPENAI, **upload(data, response_format="vtt")).text
    assert vtt.startswith("WEBVTT\n") and "00:00:00.000 --> 00:00:02.000" in vtt
    verbose = client.post(OPENAI, files={"file": ("a.wav", data)},
                          data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})
    body = verbose.json()
    assert body["text"] == reference["clean_text"] and body["rich_text"] == reference["text"]
    assert body["duration"] == 2.0 and {"language", "emotion", "event"} <= set(body)
    [segment] = body["segments"]
    assert (segment["start"], segment["end"], segment["text"]) == (0.0, 2.0, reference["clean_text"])
    assert [w["word"] for w in body["words"]] == reference["words"]
    assert [[round(w["start"] * 1000), round(w["end"] * 1000)] for w in body["words"]] == reference["timestamp"]


def test_api_v1_asr_shape(client, transcriber):
    first, second = wav_bytes(1.5, seed=3), wav_bytes(2.5, seed=4)
    response = client.post(ASR, files=[("files", ("x.wav", first)), ("files", ("y.wav", second))],
                           data={"keys": "one,two", "lang": "en"})
    assert response.status_code == 200, response.text
    results = response.json()["result"]
    assert [r["key"] for r in results] == ["one", "two"]
    for data, result in zip((first, second), results):
        reference = direct(transcriber, data, language="en", use_itn=False)  # api.py's default: no ITN
        assert result["raw_text"] == reference["text"]
        assert result["text"] == richtext.emoji_text(reference["text"])
        assert result["clean_text"] == reference["clean_text"]
    default_keys = client.post(ASR, files=[("files", ("x.wav", first))]).json()["result"]
    assert default_keys[0]["key"] == "x.wav"


def test_concurrent_requests_share_a_batch_and_answer_as_alone(transcriber):
    gate = Gate(transcriber)
    sounds = [wav_bytes(1.0 + 0.5 * i, seed=10 + i) for i in range(6)]
    references = [direct(transcriber, data, use_itn=True)["clean_text"] for data in sounds]
    app = make_app(gate, max_wait_ms=0)
    with gate, serve_in_thread(app) as url, ThreadPoolExecutor(len(sounds)) as pool:
        first = pool.submit(post, url, OPENAI, sounds[0], "s0.wav")
        assert gate.entered.wait(30)
        rest = [pool.submit(post, url, OPENAI, data, f"s{i}.wav") for i, data in enumerate(sounds[1:], 1)]
        wait_for(lambda: app.state.service.batcher.depth == len(rest), "the requests to queue up")
        gate.release.set()
        answers = [f.result().json()["text"] for f in [first, *rest]]
    assert answers == references
    assert [sorted(keys) for keys, _ in gate.calls] == [["s0.wav"], [f"s{i}.wav" for i in range(1, len(sounds))]]


def test_requests_with_different_options_are_never_mixed(transcriber):
    gate = Gate(transcriber)
    variants = [("en", "true"), ("zh", "false"), ("auto", "true"), ("en", "false")] * 2
    data = wav_bytes(1.5, seed=20)
    references = {(lang, itn): direct(transcriber, data, language=lang, use_itn=itn == "true")["clean_text"]
                  for lang, itn in variants}
    app = make_app(gate, max_wait_ms=0)
    with gate, serve_in_thread(app) as url, ThreadPoolExecutor(1 + len(variants)) as pool:
        blocker = pool.submit(post, url, OPENAI, data, "blocker.wav")
        assert gate.entered.wait(30)
        futures = [pool.submit(post, url, OPENAI, data, f"{lang}-{itn}-{i}.wav", language=lang, use_itn=itn)
                   for i, (lang, itn) in enumerate(variants)]
        wait_for(lambda: app.state.service.batcher.depth == len(variants), "the requests to queue up")
        gate.release.set()
        answers = [f.result().json()["text"] for f in futures]
        assert blocker.result().status_code == 200
    assert answers == [references[v] for v in variants]
    calls = gate.calls[1:]
    assert len(calls) == len(set(variants))  # one model call per distinct options, each holding both requests
    for keys, options in calls:
        assert len(keys) == 2
        for key in keys:
            lang, itn, _ = key.split("-")
            assert options == sv.DecodingOptions(language=lang, textnorm="withitn" if itn == "true" else "woitn")


def test_uploads_go_through_vad_as_in_the_cli(tiny_dir):
    vad_transcriber = Transcriber(tiny_dir, vad=True, threads=2)
    data = wav_bytes(40.0, seed=5)
    cli = vad_transcriber.transcribe(data, "long.wav", sv.DecodingOptions(textnorm="withitn"))
    assert len(cli.segments) >= 2
    short = wav_bytes(2.0, seed=6)
    with TestClient(make_app(vad_transcriber, max_audio_s=120.0, use_vad=True)) as c:
        body = c.post(OPENAI, **upload(data, "long.wav", response_format="verbose_json")).json()
        assert body["text"] == cli.clean_text
        assert [(s["start"], s["end"]) for s in body["segments"]] == [
            (s.start_ms / 1000, s.end_ms / 1000) for s in cli.segments]
        assert c.get("/health").json()["vad"] is True
        # short uploads too: the one pipeline, so the service answers what the CLI prints
        want = vad_transcriber.transcribe(short, "short.wav", sv.DecodingOptions(textnorm="withitn")).clean_text
        assert c.post(OPENAI, **upload(short)).json()["text"] == want


def test_prepared_features_decode_like_raw_audio(transcriber):
    """The service computes features ahead (prepare, on the request's thread); decoding from them must equal
    decoding the audio, for each item of a mixed batch."""
    waves = [speechlike(1.0 + i, seed=50 + i) for i in range(3)]
    prepared = [transcriber.prepare(wave, f"k{i}") for i, wave in enumerate(waves)]
    assert all(len(item.feats) == 1 for item in prepared)
    options = sv.DecodingOptions(language="en", textnorm="withitn", output_timestamp=True)
    mixed = transcriber.decode(prepared, options)
    alone = [transcriber.decode([item], options)[0] for item in prepared]
    assert mixed == alone
    assert alone[1].text == direct(transcriber, waves[1], language="en", use_itn=True)["text"]


def test_model_calls_group_similar_lengths_within_the_budget():
    durations = [2500, 30000, 3100, 2600, 4400, 9000, 3200]
    calls = plan_batches(durations, batch_size_s=10.0)
    assert sorted(i for call in calls for i in call) == list(range(len(durations)))
    for call in calls:
        lengths = [durations[i] for i in call]
        assert lengths == sorted(lengths) and max(lengths) * len(lengths) <= 10_000 or len(call) == 1
        assert max(lengths) <= MAX_PAD_RATIO * min(lengths)
    assert calls == [[0, 3, 2], [6], [4], [5], [1]]  # 3.2 s would make the first call 12.8 s padded


# ----------------------------------------------------------------------------------------------- errors
CORRUPT_WAV = b"RIFF\x10\x00\x00\x00WAVEfmt garbage-garbage-garbage"


@pytest.mark.parametrize("data, name, status, needle", [
    (b"hello, this is a text file\n", "notes.txt", 400, "notes.txt: not an audio file"),
    (CORRUPT_WAV, "broken.wav", 400, "broken.wav: cannot decode audio"),
    (b"", "empty.wav", 400, "empty.wav: the file is empty"),
    (bytes(range(256)) * 8, "noise.bin", 400, "noise.bin: not an audio file"),
])
def test_bad_audio_is_400_naming_the_file(client, data, name, status, needle):
    response = client.post(OPENAI, **upload(data, name))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["param"] == "file" and error["type"] == "invalid_request_error"
    assert client.post(ASR, files=[("files", (name, data))]).status_code == status


@pytest.mark.parametrize("fields, param, needle", [
    ({"language": "xx"}, "language", "'auto', 'zh', 'en', 'yue', 'ja', 'ko', 'nospeech'"),
    ({"response_format": "xml"}, "response_format", "['json', 'text', 'srt', 'vtt', 'verbose_json']"),
    ({"use_itn": "maybe"}, "use_itn", "expected one of"),
    ({"model": "gpt-4o-transcribe"}, "model", "', 'sensevoice-small', 'whisper-1']"),  # the model's id first
    ({"stream": "true"}, "stream", "expected one of ['false'"),
    ({"temperatur": "0"}, "temperatur", "unknown form field"),
    ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]", "needs response_format=verbose_json"),
    ({"timestamp_granularities[]": "char", "response_format": "verbose_json"}, "timestamp_granularities[]",
     "expected any of ['segment', 'word']"),
])
def test_bad_options_are_422_listing_valid_values(client, fields, param, needle):
    response = client.post(OPENAI, **upload(wav_bytes(0.5), **fields))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["param"] == param


def test_bad_requests_on_the_asr_route(client):
    data = wav_bytes(0.5)
    two = [("files", ("a.wav", data)), ("files", ("b.wav", data))]
    assert "['auto', 'zh'" in client.post(ASR, files=two, data={"lang": "klingon"}).json()["error"]["message"]
    mismatch = client.post(ASR, files=two, data={"keys": "only-one"})
    assert mismatch.status_code == 422 and "2 files" in mismatch.json()["error"]["message"]
    no_files = client.post(ASR, files=[("keys", (None, "a"))])  # multipart, without a file part
    assert no_files.status_code == 422 and "'files'" in no_files.json()["error"]["message"]
    assert client.post(OPENAI, files=[("model", (None, "sensevoice-small"))]).status_code == 422  # no file
    text_as_file = client.post(OPENAI, files=[("file", (None, "just text"))])
    assert text_as_file.status_code == 422 and "uploaded file" in text_as_file.json()["error"]["message"]
    assert client.post(OPENAI, files=[("file", ("a.wav", data)), ("file", ("b.wav", data))]).status_code == 422
    not_a_form = client.post(OPENAI, json={"file": "a.wav"})
    assert not_a_form.status_code == 400 and "multipart/form-data" in not_a_form.json()["error"]["message"]
    assert client.get("/nowhere").json()["error"]["code"] == 404


def test_size_limits_are_413(transcriber):
    with TestClient(make_app(transcriber, max_upload_bytes=40_000, max_audio_s=1.0)) as c:
        big = wav_bytes(2.0)  # 64 kB of 16-bit PCM
        declared = c.post(OPENAI, **upload(big))
        assert declared.status_code == 413 and "40000" in declared.json()["error"]["message"]
        assert 'sensevoice_errors_total{route="/v1/audio/transcriptions",code="413"} 1' in c.get("/metrics").text
        body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" + big
                + b"\r\n--B--\r\n")
        streamed = c.post(OPENAI, content=(body[i:i + 8192] for i in range(0, len(body), 8192)),
                          headers={"Content-Type": "multipart/form-data; boundary=B"})  # chunked: no Content-Length
        assert streamed.status_code == 413, streamed.text
        long_audio = c.post(OPENAI, **upload(wav_bytes(1.2)))
        assert long_audio.status_code == 413 and "--no-vad" in long_audio.json()["error"]["message"]
        assert c.post(OPENAI, **upload(wav_bytes(0.8))).status_code == 200


def test_api_key(transcriber):
    data = wav_bytes(0.5)
    with TestClient(make_app(transcriber, api_key="s3cret")) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = c.post(OPENAI, headers=headers, **upload(data))
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/models").status_code == 401 and c.get("/metrics").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert c.post(OPENAI, headers=good, **upload(data)).status_code == 200
        assert c.post(ASR, headers=good, files=[("files", ("a.wav", data))]).status_code == 200
        assert c.get("/v1/models", headers=good).json()["data"][0]["id"] == transcriber.model_dir.identity.id
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200  # open


def test_full_queue_is_503_with_retry_after(transcriber):
    gate = Gate(transcriber)
    app = make_app(gate, max_queue=2, max_wait_ms=0)
    data = wav_bytes(0.5)
    with serve_in_thread(app) as url, ThreadPoolExecutor(3) as pool, gate:
        running = pool.submit(post, url, OPENAI, data, "running.wav")
        assert gate.entered.wait(30)
        queued = [pool.submit(post, url, OPENAI, data, f"q{i}.wav") for i in range(2)]
        wait_for(lambda: app.state.service.batcher.depth == 2, "two queued requests")
        refused = post(url, OPENAI, data, "refused.wav")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.json()["error"]["message"]
        gate.release.set()
        assert [f.result().status_code for f in [running, *queued]] == [200, 200, 200]


def test_timeout_is_504_and_the_server_recovers(transcriber):
    gate = Gate(transcriber)
    app = make_app(gate, timeout_s=0.5, max_wait_ms=0)
    data = wav_bytes(0.5)
    with TestClient(app) as c, gate:
        stuck = c.post(OPENAI, **upload(data, "stuck.wav"))  # decoding, and blocked in the gate
        assert stuck.status_code == 504 and "no result within 0.5 s" in stuck.json()["error"]["message"]
        waiting = c.post(OPENAI, **upload(data, "waiting.wav"))  # still in the queue when it times out
        assert waiting.status_code == 504 and app.state.service.batcher.depth == 0  # withdrawn
        gate.release.set()
        wait_for(lambda: len(gate.calls) == 1 and app.state.service.batcher.depth == 0, "the stuck batch")
        assert c.post(OPENAI, **upload(data, "later.wav")).status_code == 200
        assert [keys for keys, _ in gate.calls] == [["stuck.wav"], ["later.wav"]]  # the withdrawn one never ran


class FailsOn:
    """A transcriber that raises for any batch holding a key starting with ``prefix``."""

    def __init__(self, inner, prefix: str):
        self.inner, self.prefix = inner, prefix
        self.prepare_wave, self.model_dir = inner.prepare_wave, inner.model_dir

    def decode(self, items, options):
        if any(item.key.startswith(self.prefix) for item in items):
            raise RuntimeError("synthetic model failure")
        return self.inner.decode(items, options)


def test_a_failing_request_does_not_fail_its_batch(transcriber):
    gate = Gate(FailsOn(transcriber, "bad"))
    app = make_app(gate, max_wait_ms=0)
    data = wav_bytes(1.0, seed=30)
    with serve_in_thread(app) as url, ThreadPoolExecutor(4) as pool, gate:
        first = pool.submit(post, url, OPENAI, data, "first.wav")
        assert gate.entered.wait(30)
        names = ["good1.wav", "bad.wav", "good2.wav"]
        futures = [pool.submit(post, url, OPENAI, data, name) for name in names]
        wait_for(lambda: app.state.service.batcher.depth == 3, "three queued requests")
        gate.release.set()
        statuses = [f.result().status_code for f in [first, *futures]]
        assert statuses == [200, 200, 500, 200]
        error = futures[1].result().json()["error"]
        assert error["type"] == "server_error" and "synthetic model failure" in error["message"]
        assert post(url, OPENAI, data, "after.wav").status_code == 200


# ----------------------------------------------------------------------------------------------- info, metrics
def test_health_models_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["vad"] is False and "yue" in health["languages"]
    assert health["limits"] == {"max_upload_bytes": 64 * 2**20, "max_audio_s": 60.0, "upload_timeout_s": 30.0,
                                "min_upload_rate": 1024.0, "header_timeout_s": 10.0,
                                "audio_formats": ["wav", "flac", "ogg", "mp3"]}
    [listed] = client.get("/v1/models").json()["data"]
    assert listed["id"] == health["model"] and listed["id"].startswith("custom:") and listed["kind"] == "custom"
    assert health["model_identity"] == {k: listed[k] for k in health["model_identity"]}  # one identity
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "/static/app.js" in page.text
    for asset in ("app.js", "style.css", "recorder-worklet.js"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_page_states_limits_and_offers_copy_and_downloads(client):
    """The page shows the server's limits before an upload and exports the result (headless: test_clients.py)."""
    page = client.get("/").text
    for control in ('id="limits"', 'id="copy"', 'id="download"', 'id="export-format"', 'id="segments"'):
        assert control in page, control
    assert re.findall(r'<option value="(\w+)">', page.split('id="export-format"')[1].split("</select>")[0]) == [
        "txt", "srt", "vtt", "json"]
    script = client.get("/static/app.js").text
    for needle in ("health.limits", "max_upload_bytes", "max_audio_s", "audio_formats", 'form.append("subtitles"',
                   "subtitles[format]", "navigator.clipboard.writeText", "link.download"):
        assert needle in script, needle
    assert "WEBVTT" not in script and " --> " not in script  # the server's subtitles, not a copy of its writers


def test_docs_work_offline(client):
    """/docs is a page of the routes that loads nothing from elsewhere (FastAPI's Swagger UI needs a CDN)."""
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "<script" not in docs.text and not re.search(r'(src|href)=["\']https?:', docs.text)
    assert "href='/openapi.json'" in docs.text and "/v1/audio/transcriptions" in docs.text
    assert client.get("/openapi.json").json()["paths"]["/api/v1/asr"]["post"]


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, data = time.monotonic(), b""
    sock.settimeout(limit_s)
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def test_a_stalled_upload_is_cut_off(transcriber):
    """A body that stops arriving gets 408 and a closed connection; a client that sends no request at all, or
    stops inside its headers, gets 408 at the header deadline and is disconnected. Before, such connections stayed
    open (one past 75 s)."""
    app = make_app(transcriber, upload_timeout_s=0.5, header_timeout_s=0.5)
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as body_stalls:
            body_stalls.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                                b"Content-Type: multipart/form-data; boundary=B\r\n\r\n--B\r\n")
            answer, seconds = read_until_closed(body_stalls, 10)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"nothing received for 0.5 s" in answer
        assert 0.4 < seconds < 5
        for sent in (b"", b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"):
            with socket.create_connection(("127.0.0.1", port)) as silent:
                silent.sendall(sent)
                answer, seconds = read_until_closed(silent, 10)
            assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 0.5 s" in answer, answer
            assert 0.4 < seconds < 5, sent
        assert post(url, OPENAI, wav_bytes(0.5), "after.wav").status_code == 200  # still serving


SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"\\]*",?)*\})? [-+0-9.eInf]+$')


def test_metrics_exposition(transcriber):
    with TestClient(make_app(transcriber)) as c:
        for seconds in (1.0, 2.0):
            assert c.post(OPENAI, **upload(wav_bytes(seconds))).status_code == 200
        assert c.post(OPENAI, **upload(wav_bytes(1.0), language="xx")).status_code == 422
        text = c.get("/metrics").text
    lines = text.strip().splitlines()
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}
    assert values['sensevoice_requests_total{route="/v1/audio/transcriptions",code="200"}'] == 2
    assert values['sensevoice_errors_total{route="/v1/audio/transcriptions",code="422"}'] == 1
    assert values["sensevoice_audio_seconds_total"] == 3.0
    assert values["sensevoice_queue_depth"] == 0
    assert values["sensevoice_batch_requests_count"] == 2
    assert values['sensevoice_request_latency_seconds_count{route="/v1/audio/transcriptions"}'] == 3
    for kind in ("counter", "gauge", "histogram"):
        assert f" {kind}" in text


def test_histogram_buckets_are_cumulative():
    h = Histogram("h", "help", buckets=(1, 5), labelnames=("route",))
    for value in (0.5, 1, 3, 10):
        h.observe(value, labels=('a"b',))
    lines = h.render()
    assert 'h_bucket{route="a\\"b",le="1"} 2' in lines
    assert 'h_bucket{route="a\\"b",le="5"} 3' in lines
    assert 'h_bucket{route="a\\"b",le="+Inf"} 4' in lines and 'h_sum{route="a\\"b"} 14.5' in lines


# ----------------------------------------------------------------------------------------------- batcher
class Echo:
    """A model-free transcriber that records its calls."""

    def __init__(self):
        self.calls = []

    def decode(self, items, options):
        self.calls.append([item.key for item in items])
        return [{"key": item.key} for item in items]


def test_batcher_respects_the_audio_budget_and_order():
    echo = Echo()
    batcher = Batcher(echo, batch_size_s=5.0, max_wait_ms=50, max_queue=8)
    items = [item(f"k{i}", 2.0) for i in range(5)]  # 2 s each: two fit in 5 s

    async def scenario():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.transcribe([it], sv.DecodingOptions()) for it in items))
        finally:
            batcher.stop()

    results = asyncio.run(scenario())
    assert [r[0]["key"] for r in results] == [it.key for it in items]
    assert [key for call in echo.calls for key in call] == [it.key for it in items]  # FIFO
    assert all(len(call) <= 2 for call in echo.calls) and max(len(call) for call in echo.calls) == 2


def test_batcher_waits_only_for_requests_on_their_way():
    echo = Echo()
    batcher = Batcher(echo, max_wait_ms=60_000)  # a wait that ran out would stall the test for a minute
    x, y = item("x", 0.5), item("y", 0.5)

    async def scenario():
        alone = await asyncio.wait_for(batcher.transcribe([x], sv.DecodingOptions()), 30)  # nobody arriving: no wait
        with batcher.arriving() as a, batcher.arriving() as b:
            first = asyncio.ensure_future(batcher.transcribe([x], sv.DecodingOptions(), arrival=a))
            await asyncio.sleep(0.05)  # the idle worker sees x queued and y still arriving: it waits for y
            second = asyncio.ensure_future(batcher.transcribe([y], sv.DecodingOptions(), arrival=b))
            together = await asyncio.wait_for(asyncio.gather(first, second), 30)
        return alone, together

    batcher.start()
    try:
        alone, together = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert alone == [{"key": "x"}] and together == [[{"key": "x"}], [{"key": "y"}]]
    assert echo.calls == [["x"], ["x", "y"]]


def test_best_effort_requests_yield_to_the_others():
    """Queued behind a running batch: best-effort p1, p2, then r1, r2. The next batch starts from r1 and takes r2,
    then fills the budget left with p1 only (p2 would exceed it); p2 comes last."""
    gate = Gate(Echo())
    batcher = Batcher(gate, batch_size_s=3.0, max_wait_ms=0)

    def transcribe(key: str, best_effort: bool):
        return asyncio.ensure_future(batcher.transcribe([item(key, 1.0)], sv.DecodingOptions(),
                                                        best_effort=best_effort))

    async def scenario():
        running = transcribe("first", False)
        await asyncio.to_thread(gate.entered.wait, 30)
        queued = [transcribe("p1", True), transcribe("p2", True), transcribe("r1", False), transcribe("r2", False)]
        await asyncio.sleep(0)
        gate.release.set()
        return await asyncio.gather(running, *queued)

    batcher.start()
    with gate:
        results = asyncio.run(scenario())
    batcher.stop()
    assert [r[0]["key"] for r in results] == ["first", "p1", "p2", "r1", "r2"]
    assert [keys for keys, _ in gate.calls] == [["first"], ["r1", "r2", "p1"], ["p2"]]


def test_batcher_refuses_beyond_max_queue_and_after_stop():
    gate = Gate(Echo())
    batcher = Batcher(gate, max_queue=1, max_wait_ms=0)

    def transcribe_one():
        return batcher.transcribe([item("k", 0.5)], sv.DecodingOptions())

    async def scenario():
        first = asyncio.ensure_future(transcribe_one())
        await asyncio.to_thread(gate.entered.wait, 30)  # the worker holds the first request
        second = asyncio.ensure_future(transcribe_one())
        await asyncio.sleep(0)  # the second waits in the queue
        with pytest.raises(QueueFull, match="max_queue=1"):
            await transcribe_one()
        gate.release.set()
        await asyncio.gather(first, second)

    batcher.start()
    with gate:
        asyncio.run(scenario())
    batcher.stop()
    with pytest.raises(ShuttingDown):
        asyncio.run(transcribe_one())


def test_batcher_bounds_the_queued_audio():
    gate = Gate(Echo())
    batcher = Batcher(gate, max_queue=10, max_queue_audio_s=3.0, max_wait_ms=0)

    def transcribe(seconds: float):
        return batcher.transcribe([item("k", seconds)], sv.DecodingOptions())

    async def scenario():
        running = asyncio.ensure_future(transcribe(1.0))
        await asyncio.to_thread(gate.entered.wait, 30)
        queued = [asyncio.ensure_future(transcribe(1.0)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="max_queue_audio_s=3"):
            await transcribe(1.5)  # 2 s waiting + 1.5 s > 3 s
        gate.release.set()
        await asyncio.gather(running, *queued)
        return await transcribe(5.0)  # longer than the bound, but alone in the queue: accepted

    batcher.start()
    with gate:
        assert asyncio.run(scenario()) == [{"key": "k"}]
    batcher.stop()


# ----------------------------------------------------------------------------------------------- memory
def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_many_requests_do_not_grow_memory(transcriber):
    good, bad = wav_bytes(3.0, seed=40), CORRUPT_WAV

    def burst(c, n):
        for i in range(n):
            if i % 5 == 4:
                assert c.post(OPENAI, **upload(bad, "bad.wav")).status_code == 400
            else:
                assert c.post(OPENAI, **upload(good)).status_code == 200

    with TestClient(make_app(transcriber, max_wait_ms=0)) as c:
        burst(c, 60)  # warm up allocator pools, caches and thread arenas
        before = rss_mb()
        burst(c, 250)
        grown = rss_mb() - before
    # Measured growth is ~0 MB. Keeping each upload (96 kB) would add 18 MB, each decoded wave (192 kB) 37 MB.
    assert grown < 8, f"RSS grew {grown:.1f} MB over 250 requests"


# ----------------------------------------------------------------------------------------------- command line
def test_command_line_defaults_and_model_resolution(tmp_path, tiny_dir, monkeypatch, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.batch_size_s, args.max_wait_ms, args.vad) == ("127.0.0.1", 8000, 60.0, 10.0, True)
    assert (args.blank_penalty, args.ban_emo_unk) == (0.0, False)
    assert parser.parse_args(["--blank-penalty", "1.5", "--ban-emo-unk"]).blank_penalty == 1.5
    for bad in (["--batch-size-s", "0"], ["--batch-size-s", "nan"], ["--timeout-s", "inf"], ["--max-queue", "0"],
                ["--max-wait-ms", "-1"], ["--blank-penalty", "-1"], ["--blank-penalty", "nan"],
                ["--endpoint-silence-ms", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    batcher = Batcher(Echo())
    assert command.stream_hub(args, batcher, ServeConfig()).vad.endpoint == {}  # FunASR's dynamic schedule
    quick = parser.parse_args(["--endpoint-silence-ms", "400"])
    assert command.stream_hub(quick, batcher, ServeConfig()).vad.endpoint == {"max_end_silence_time": 400}
    from sensevoice import modeldir

    monkeypatch.setattr(modeldir, "DEMO_DIR", tmp_path / "demo")
    assert cli.main(["serve", "--log-level", "error"]) == command.EXIT_USAGE
    assert "pass --model DIR" in capsys.readouterr().err
    assert cli.main(["serve", "--log-level", "error", "--model", str(tmp_path)]) == command.EXIT_USAGE
    assert f"--model {tmp_path}: not a model directory" in capsys.readouterr().err
    assert cli.main(["serve", "--log-level", "error", "--backend", "onnxruntime", "--precision", "bf16",
                     "--model", str(tiny_dir)]) == command.EXIT_USAGE
    assert "--precision 'bf16' is not available with --backend onnxruntime" in capsys.readouterr().err


def test_formats_reject_unknown_format(transcriber):
    from sensevoice.result import Transcript

    result = Transcript.join("k", 0, [], timestamps=False)
    model = transcriber.model_dir.identity
    with pytest.raises(ValueError, match="verbose_json"):
        formats.openai_body(result, "xml", [], model)
    assert formats.openai_body(result, "json", [], model) == {"text": ""}
    assert formats.openai_body(result, "verbose_json", [], model)["model"] == model.id


def serve_startup_log(tiny_dir, *options: str) -> str:
    """`python -m sensevoice serve` on any free port of every interface, without --api-key: its stderr up to the
    line it prints as it hands the socket to uvicorn (what it logs while starting comes before), then stopped."""
    import subprocess
    import sys

    from testkit import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "sensevoice", "serve", "--model", str(tiny_dir), "--host",
                             "0.0.0.0", "--port", "0", "--no-streaming", "--no-vad", *options], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines: list[str] = []
        while not lines or "sensevoice serve: listening on" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], "".join(lines)  # the server exited before it started
        return "".join(lines)
    finally:
        proc.kill()
        proc.wait(30)


@pytest.mark.slow  # a server's start in a fresh process: ~35 s on 2 busy cores
def test_serve_log_level_debug_shows_our_debug_lines_in_a_fresh_process(tiny_dir):
    """The CLI once set every logger to ERROR before serve ran, so --log-level changed nothing and the warning
    below was never seen."""
    debug = serve_startup_log(tiny_dir, "--log-level", "debug")
    assert "WARNING sensevoice.serve.command: listening on 0.0.0.0 without --api-key" in debug, debug
    assert re.search(r"DEBUG sensevoice\.serve\.command: \d+ model threads; batches of up to 60 s", debug), debug


@pytest.mark.parametrize("level, warned, debug", [("info", True, False), ("debug", True, True),
                                                  ("error", False, False)])
def test_serve_log_level_decides_what_of_ours_is_logged(tiny_dir, capsys, monkeypatch, level, warned, debug):
    """`sensevoice serve --log-level` in this process, up to where uvicorn would start serving."""
    from sensevoice.serve import app

    monkeypatch.setattr(app.StopOnSignal, "run", lambda self, sockets: None)  # started stays False: exit code 1
    assert cli.main(["serve", "--model", str(tiny_dir), "--host", "0.0.0.0", "--port", "0", "--no-streaming",
                     "--no-vad", "--log-level", level]) == 1
    err = capsys.readouterr().err
    assert ("listening on 0.0.0.0 without --api-key: anyone who can reach it may use it" in err) == warned, err
    assert ("DEBUG sensevoice.serve.command" in err) == debug, err


def test_serve_passes_its_server_wide_decoding_flags_to_every_request(tiny_dir, monkeypatch):
    """`sensevoice serve --beam-size 3 --ban-emo-unk`: the service's default decoding (what each request starts from,
    and the WebSocket streams' too) is the flags', not DecodingOptions()."""
    from sensevoice.serve import app

    seen = {}
    real_create_app = app.create_app

    def capture(batcher, config, hub=None):
        seen["config"], seen["hub"] = config, hub
        return real_create_app(batcher, config, hub)

    monkeypatch.setattr(app, "create_app", capture)
    monkeypatch.setattr(app.StopOnSignal, "run", lambda self, sockets: None)  # started stays False: exit code 1
    assert cli.main(["serve", "--model", str(tiny_dir), "--port", "0", "--no-vad", "--beam-size", "3",
                     "--ban-emo-unk"]) == 1
    assert seen["config"].decoding == sv.DecodingOptions(beam_size=3, ban_emo_unk=True)
    assert seen["hub"].decoding == seen["config"].decoding
