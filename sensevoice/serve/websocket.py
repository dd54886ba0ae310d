"""Live transcription over WebSocket in FunASR's runtime protocol (runtime/python/websocket/funasr_wss_server.py),
so FunASR's own clients connect unchanged to ``ws://host:port/``:

    client: {"mode": "offline"|"online"|"2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": ...,
             "is_speaking": true, "hotwords": ..., "itn": true, "audio_fs": 16000, "wav_format": "pcm"}
            binary 16-bit little-endian PCM chunks, 16 kHz mono ...
            {"is_speaking": false}            (then a new first message starts the next utterance, or close)
    server: {"mode": "online"|"2pass-online", "text": <text of the open segment that became stable>, ...}
            {"mode": "online"|"2pass-offline", "text": <the rest of the segment's text | its final text>,
             "timestamp": "[[s, e], ...]", "stamp_sents": [...], "is_final": false, ...}   one per VAD segment
            {"mode": "offline", "text": <the utterance's text>, "timestamp": ..., "stamp_sents": [one per segment],
             "segments": [...]}                                   once, the answer to {"is_speaking": false}
            the answer to {"is_speaking": false} has "is_final": true and "is_end": true

FunASR's clients concatenate ``text`` (funasr_wss_client.py, the html5 page): all of an utterance's online texts,
or its 2pass-offline texts (each replacing the 2pass-online texts since the last one), or its offline texts. So
``text`` never needs taking back, and texts join as the offline transcript does (a space between segments): the
concatenated online texts, the 2pass-offline texts and the offline text all equal ``sensevoice transcribe``'s text
of the same audio. Partials are re-decodes, each may revise the last, so a 2pass-online text is only what became
stable (``stream.stable_prefix``) and the segment's 2pass-offline brings the whole. An online segment's text comes
with its final; with ``online_partials`` its partials send their stable text and the final the rest (live, but a
final decode that disagrees with stable text already sent cannot take it back). ``offline`` answers
once, at the end, as FunASR's offline servers do (its client closes on the first offline message). Our own fields
ride beside the protocol's: ``segment_text`` (the whole current hypothesis, or the final text), ``segment_final``,
``model`` (on every final: the answering model's id, as /v1/models and verbose_json name it), ``start_ms``,
``end_ms``, ``endpoint_ms`` (the stream time at which the VAD closed the segment), and on a final every field of
its segment (sensevoice.result.Segment: tags, confidence, words, tokens, ... as ``transcribe -f json`` writes them;
FINAL_NAMES: the rich text is ``rich_text``, the clean text ``segment_text``, the word times the protocol's
``timestamp``); with ``"diarize": true`` (or a speaker count: the fields of ``DiarizationOptions``) the final's
speaker as FunASR's runtime clients print it, ``spk_name`` ("S1", a string) and ``spk_score`` (a number: see
``stream.SpeakerTracker`` for the labels, their look-back and the score); ``segments`` (offline: each segment's,
each with its speaker), ``warning``, ``lag_s``, ``error``. Speakers belong to the connection: as FunASR's client
sends the files of a wav.scp one after another on one connection, S1 in a later utterance is the voice S1 was in an
earlier one. An utterance whose speaker options differ from those the connection's speakers were found with (another
count, or a cap) starts new speakers (S1 again); one that asks for no speakers leaves them as they are. ``hotwords``
bias the decoding (the decoding's contextual biasing, as the HTTP API's ``prompt``) in every form FunASR's clients
send: a JSON object ``{"phrase": weight, ...}`` (as a string; its weights are on FunASR's scale, not ours, so each
phrase gets the server's ``--hotword-weight``), comma-separated phrases, or space-separated words.

All streams share the service's ``Batcher``: their partial and final decodes meet in the same model calls as the
HTTP requests; partials are best effort and yield to finals and HTTP requests. A stream has at most one partial
decode in flight; when its audio waits for the server longer than ``max_lag_s`` (the server's own backlog, not the
client's pace) it is told so and gets no partials until it catches up, so it cannot slow the others without bound.
The warning is ``{"warning": ..., "lag_s": ..., "text": "", "is_final": false}`` without ``mode``: FunASR's Python
client skips a message without ``mode`` and its html5 page appends its empty ``text``, so none shows it as a result.
Refusals (wrong key, too many streams, bad first message, non-PCM audio, idle) are a JSON ``{"error": ..., "mode":
"offline", "text": "", "is_end": true, "is_final": false}`` (``mode`` and ``text``: FunASR's client reads both
from every message, and an offline message ends its wait) and then a close with a WebSocket code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import soxr
from starlette.websockets import WebSocket, WebSocketDisconnect

import model as sv
from sensevoice.audio import AudioInputError, load_audio
from sensevoice.diarize import DiarizationOptions
from sensevoice.pipeline import Prepared
from sensevoice.result import Segment, Transcript
from sensevoice.serve import fields
from sensevoice.serve.batcher import Batcher, QueueFull, ShuttingDown
from sensevoice.serve.stream import (SpeakerTracker, Stream, StreamConfig, looks_like_container,
                                     pcm16_to_float)
from sensevoice.vad import StreamingVad

log = logging.getLogger(__name__)

MODES = ("offline", "online", "2pass")
PARTIAL_MODE = {"online": "online", "2pass": "2pass-online"}
FINAL_MODE = {"offline": "offline", "online": "online", "2pass": "2pass-offline"}
CLOSE_POLICY, CLOSE_UNSUPPORTED, CLOSE_GOING_AWAY, CLOSE_TRY_LATER, CLOSE_TOO_BIG = 1008, 1003, 1001, 1013, 1009
# A final carries its Segment's fields under their own names, except where FunASR's protocol has the name: its
# ``text`` is what the client shows and its ``timestamp`` the word spans as a JSON string.
FINAL_NAMES = {"text": "rich_text", "clean_text": "segment_text", "timestamp": None}
WAV_FORMATS = ("pcm", "others")  # FunASR's client: "pcm" for .pcm and .wav (their samples), "others" for other files
MIN_FS, MAX_FS = 8000, 192_000
WARN_EVERY_S = 2.0  # at most one lag warning per stream this often


class StreamError(Exception):
    """Ends a stream: the message goes to the client as ``{"error": ...}``, then the socket closes with ``code``."""

    def __init__(self, message: str, code: int = CLOSE_POLICY):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Settings:
    """A validated first message."""

    mode: str
    wav_name: str
    options: sv.DecodingOptions
    audio_fs: int = sv.SAMPLE_RATE  # of the PCM sent (resampled to 16 kHz as it arrives)
    file: bool = False  # wav_format "others": the bytes are a file (WAV, FLAC, MP3, ...), decoded at the end
    diarization: DiarizationOptions | None = None  # "diarize": true (or a count): finals carry spk_name/spk_score


def parse_first(message: dict[str, Any], base: sv.DecodingOptions,
                diarization: type = DiarizationOptions) -> Settings:
    """FunASR's first message -> Settings; StreamError names a bad field and what is accepted."""
    mode = message.get("mode", "2pass")
    if mode not in MODES:
        raise StreamError(f"mode={mode!r}; expected one of {list(MODES)}")
    audio_fs = message.get("audio_fs", sv.SAMPLE_RATE)
    if isinstance(audio_fs, bool) or not isinstance(audio_fs, int) or not MIN_FS <= audio_fs <= MAX_FS:
        raise StreamError(f"audio_fs={audio_fs!r}: the PCM's sample rate in Hz, an integer from {MIN_FS} to {MAX_FS}",
                          CLOSE_UNSUPPORTED)
    wav_format = message.get("wav_format", "pcm")
    if wav_format not in WAV_FORMATS:
        raise StreamError(f"wav_format={wav_format!r}: 'pcm' (raw 16-bit little-endian mono samples) or 'others' (a "
                          "whole audio file, decoded once is_speaking is false)", CLOSE_UNSUPPORTED)
    try:  # FunASR's itn and hotwords, the other decoding options by their names (language, beam_size, ...), and
        # the diarization options (``diarization``: their type), generated from the types' declarations
        options = fields.stream_options(message, base)
        speakers = fields.requested_diarization(message, diarization)
    except fields.ApiError as err:
        raise StreamError(err.message) from None
    return Settings(mode, str(message.get("wav_name", "stream")), options, audio_fs, wav_format == "others",
                    speakers)


def result_message(settings: Settings, mode: str, text: str, decoded: list[Segment] = (), **extra: Any
                   ) -> dict[str, Any]:
    """A result in FunASR's shape; ``decoded`` (segments, stream-absolute times) add the timestamps and
    stamp_sents."""
    body: dict[str, Any] = {"mode": mode, "text": text, "wav_name": settings.wav_name, "is_final": False}
    if decoded:
        spans = [span for segment in decoded for span in segment.timestamp or []]
        body.update(timestamp=json.dumps(spans) if spans else "",
                    stamp_sents=[{"text_seg": " ".join(segment.words or []), "punc": "",
                                  "start": segment.start_ms, "end": segment.end_ms,
                                  "ts_list": segment.timestamp or []} for segment in decoded])
    body.update(extra)
    return body


def segment_fields(segment: Segment, speaker: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our fields of one decoded segment: every field of the Segment, under FINAL_NAMES where renamed, and its
    stream speaker (``spk_name``, ``spk_score``: stream.SpeakerTracker) when the stream is diarized."""
    return {**{FINAL_NAMES.get(name, name): value for name, value in segment.to_dict().items()
               if FINAL_NAMES.get(name, name) is not None}, **(speaker or {})}


class StreamHub:
    """What the WebSocket route shares: the streaming VAD, the service's batcher, the limits and the open streams."""

    def __init__(self, vad: StreamingVad, batcher: Batcher, config: StreamConfig = StreamConfig(),
                 api_key: str | None = None, decoding: sv.DecodingOptions = sv.DecodingOptions(),
                 timeout_s: float = 120.0):
        self.vad, self.batcher, self.config = vad, batcher, config
        self.api_key, self.decoding, self.timeout_s = api_key, decoding, timeout_s
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="sensevoice-stream")  # VAD + features
        self.active = 0
        self.metrics = batcher.metrics  # the service's /metrics

    @functools.cached_property
    def model_id(self) -> str:
        """The answering model's id (``ModelDir.identity``), which every final names."""
        return self.batcher.transcriber.model_dir.identity.id

    async def speaker_tracker(self, options: DiarizationOptions) -> SpeakerTracker:
        """A new speaker tracker, with the service's speaker encoder (loaded once, off the event loop, by the
        first stream or request that asks for speakers); StreamError says why there is none."""
        try:
            encoder = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: self.batcher.transcriber.diarizer.encoder)
            return SpeakerTracker(encoder, options)
        except (OSError, ValueError) as err:  # no speaker encoder installed; a count a stream cannot honour
            raise StreamError(f"diarize: {err}") from None

    def authorized(self, ws: WebSocket) -> bool:
        """The HTTP API's key, as ``Authorization: Bearer KEY`` or (browsers cannot set headers) ``?api_key=KEY``."""
        return fields.key_matches(self.api_key, ws.headers.get("authorization", ""), ws.query_params.get("api_key"))

    async def serve(self, ws: WebSocket) -> None:
        offered = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol="binary" if "binary" in offered else None)  # FunASR's clients offer "binary"
        try:
            if not self.authorized(ws):
                raise StreamError("missing or wrong API key: send 'Authorization: Bearer <key>' or ?api_key=<key>")
            if self.active >= self.config.max_streams:
                self.metrics.streams.inc(labels=("refused",))
                raise StreamError(f"{self.active} streams are open, the limit is {self.config.max_streams}; retry "
                                  "later", CLOSE_TRY_LATER)
            self.active += 1
            self.metrics.streams.inc(labels=("accepted",))
            self.metrics.streams_open.set(self.active)
            try:
                await Session(ws, self).run()
            finally:
                self.active -= 1
                self.metrics.streams_open.set(self.active)
        except StreamError as err:
            with contextlib.suppress(Exception):  # the client may be gone already
                await ws.send_text(json.dumps({"error": str(err), "mode": "offline", "text": "", "is_end": True,
                                               "is_final": False}))
                await ws.close(err.code, str(err)[:120])
        except WebSocketDisconnect:
            log.info("a stream's client disconnected")

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Session:
    """One WebSocket connection: utterances one after another, each from a first message to is_speaking false."""

    def __init__(self, ws: WebSocket, hub: StreamHub):
        self.ws, self.hub, self.config = ws, hub, hub.config
        self.send_lock = asyncio.Lock()
        self.speakers: SpeakerTracker | None = None  # the connection's, kept from one utterance to the next
        self.speaker_options: DiarizationOptions | None = None  # what ``speakers`` was made with

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None when the client closed; StreamError after idle_timeout_s of silence."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.config.idle_timeout_s)
        except TimeoutError:
            raise StreamError(f"no message for {self.config.idle_timeout_s:g} s; closing the stream",
                              CLOSE_GOING_AWAY) from None
        return None if message["type"] == "websocket.disconnect" else message

    async def send(self, body: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(body, ensure_ascii=False))

    async def run(self) -> None:
        while (message := await self.receive()) is not None:
            if "text" not in message or message["text"] is None:
                raise StreamError("the first message must be JSON text with the stream's settings (mode, "
                                  "chunk_size, wav_name, is_speaking, ...), not audio")
            try:
                first = json.loads(message["text"])
            except json.JSONDecodeError as err:
                raise StreamError(f"the first message is not JSON ({err})") from None
            if not isinstance(first, dict):
                raise StreamError("the first message must be a JSON object")
            if first.get("is_speaking", True) is False:
                continue  # an end with nothing begun: nothing to answer
            settings = parse_first(first, self.hub.decoding)
            if not await Utterance(self, settings, await self.speaker_tracker(settings.diarization)).run():
                return

    async def speaker_tracker(self, options: DiarizationOptions | None) -> SpeakerTracker | None:
        """The connection's speakers for an utterance that asks for them with ``options`` (None: it does not); new
        ones when they were found with other options (see the module's doc)."""
        if options is not None and (self.speakers is None or options != self.speaker_options):
            self.speakers, self.speaker_options = await self.hub.speaker_tracker(options), options
        return self.speakers if options is not None else None

    async def decode(self, item: Prepared, options: sv.DecodingOptions, partial: bool = False) -> Transcript:
        """One prepared item through the service's batcher (a partial yields to final results and HTTP requests);
        overload is a StreamError (1013)."""
        try:
            [result] = await self.hub.batcher.transcribe([item], options, self.hub.timeout_s, best_effort=partial)
        except (QueueFull, ShuttingDown, TimeoutError) as err:
            raise StreamError(f"the server is overloaded ({type(err).__name__}: {err}); retry later",
                              CLOSE_TRY_LATER) from err
        return result


class Utterance:
    """From a first message to ``is_speaking: false``: audio in, partial and final results out.

    A reader task takes the client's messages as they come; the utterance's own loop feeds the VAD with all the
    audio that arrived since its last feed. Keeping up, that is one chunk a feed; behind (a final decode, a busy
    CPU), the backlog goes through the VAD in one call instead of one call per chunk."""

    def __init__(self, session: Session, settings: Settings, speakers: SpeakerTracker | None = None):
        self.session, self.settings, self.config = session, settings, session.config
        hub = session.hub
        self.stream = Stream(hub.vad.open(), hub.batcher.transcriber.features, settings.wav_name,
                             self.config.window_ms, speakers)
        self.loop = asyncio.get_running_loop()
        self.partial: asyncio.Task | None = None
        self.said = False  # text was sent in this utterance (the next segment's text begins with a space)
        # offline: the decoded segments with their stream speakers, sent together at the end
        self.held: list[tuple[Segment, dict[str, Any]]] = []
        self.inbox: list[bytes] = []  # audio received and not fed yet (a file: all of it, until the end)
        self.received_bytes = 0
        self.resampler = soxr.ResampleStream(settings.audio_fs, sv.SAMPLE_RATE, 1, dtype="float32") \
            if settings.audio_fs != sv.SAMPLE_RATE and not settings.file else None
        self.arrived = asyncio.Event()  # audio, the end of the utterance, or the client gone
        self.carry = b""  # an odd byte left over from the last feed
        self.started: float | None = None  # when the first audio arrived
        self.waiting_since: float | None = None  # when the oldest audio not yet fed arrived
        self.warned = 0.0

    async def run(self) -> bool:
        """Serve the utterance; False when the client went away."""
        reader = asyncio.create_task(self.read())
        reader.add_done_callback(lambda _: self.arrived.set())
        try:
            while True:
                await self.arrived.wait()
                self.arrived.clear()
                if reader.done() and not reader.result():  # the client went away (a reader's error is raised here)
                    return False
                if self.inbox and not self.settings.file:
                    await self.feed()
                if reader.done() and (self.settings.file or not self.inbox):
                    await self.finish()
                    return True
        finally:
            reader.cancel()
            self.cancel_partial()
            self.stream.close()

    async def read(self) -> bool:
        """The client's messages until ``is_speaking: false`` (True) or its leaving (False)."""
        while (message := await self.session.receive()) is not None:
            if message.get("bytes") is not None:
                self.receive_audio(message["bytes"])
                continue
            try:
                control = json.loads(message.get("text") or "")
            except json.JSONDecodeError as err:
                raise StreamError(f"a text message that is not JSON ({err})") from None
            if isinstance(control, dict) and control.get("is_speaking") is False:
                return True
        return False

    def receive_audio(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self.settings.file and self.received_bytes > self.config.max_file_mb * 2**20:
            raise StreamError(f"the file is larger than {self.config.max_file_mb:g} MiB (the server's "
                              "--max-upload-mb); send it as 'pcm' in chunks instead", CLOSE_TOO_BIG)
        if self.started is None:
            if not self.settings.file and looks_like_container(data):
                raise StreamError(f"binary messages must be raw 16-bit PCM, not a file (starts with {data[:8]!r}); "
                                  "send the samples without the header, or say wav_format 'others'",
                                  CLOSE_UNSUPPORTED)
            self.started = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()
        self.session.hub.metrics.stream_audio_messages.inc()
        self.inbox.append(data)
        self.arrived.set()

    async def feed(self) -> None:
        """The VAD over the audio that arrived; decode the segments it closed; pace the partials."""
        data = self.carry + b"".join(self.inbox)
        self.inbox.clear()
        # The server's backlog: how long the oldest of this audio waited for it (not the client's pace)
        lag_s, self.waiting_since = time.monotonic() - self.waiting_since, None
        cut = len(data) - len(data) % 2
        self.carry = data[cut:]
        metrics = self.session.hub.metrics
        metrics.stream_vad_feeds.inc()
        closed = await self.loop.run_in_executor(self.session.hub.executor, self.stream.feed,
                                                 self.to_16k(pcm16_to_float(data[:cut])))
        await self.finals(closed, last=False, endpoint_ms=self.stream.now_ms)
        metrics.stream_lag.observe(lag_s)
        if self.settings.mode not in PARTIAL_MODE:
            return
        if lag_s > self.config.max_lag_s:
            await self.warn(lag_s)
        elif self.partial is None and self.stream.partial_due(self.config.partial_interval_ms):
            self.partial = asyncio.create_task(self.decode_partial())

    async def warn(self, lag_s: float) -> None:
        now = time.monotonic()
        if now - self.warned < WARN_EVERY_S:
            return
        self.warned = now
        self.session.hub.metrics.stream_warnings.inc()
        await self.session.send({  # no "mode": no FunASR client takes it for a result (see the module's doc)
            "text": "", "wav_name": self.settings.wav_name, "is_final": False, "lag_s": round(lag_s, 3),
            "warning": f"audio waited {lag_s:.1f} s for the server; partial results pause until it catches up"})

    async def decode_partial(self) -> None:
        try:
            item = await self.loop.run_in_executor(self.session.hub.executor, self.stream.partial_item)
            if item is None:
                return
            result = await self.session.decode(item, self.settings.options, partial=True)
            stable_before = self.stream.stable
            texts = self.stream.partial_text(item, result.clean_text)
            if texts is None:  # its segment closed meanwhile: the final result says it
                return
            hypothesis, newly = texts
            if self.settings.mode == "online" and not self.config.online_partials:
                newly = ""  # the segment's final brings all of its text
            shown = self.lead() + newly if newly and not stable_before else newly
            await self.session.send(result_message(self.settings, PARTIAL_MODE[self.settings.mode], shown,
                                                   segment_text=hypothesis, start_ms=self.stream.open_start,
                                                   end_ms=item.spans[0][1]))
        except StreamError as err:
            log.warning("partial decode of %s skipped: %s", self.settings.wav_name, err)
        except Exception:  # a partial is best effort; the final result decides
            log.exception("partial decode of %s failed", self.settings.wav_name)
        finally:
            self.partial = None

    def lead(self) -> str:
        """What goes before a segment's first text: a space after earlier text, as the offline transcript joins."""
        return " " if self.said else ""

    def cancel_partial(self) -> None:
        if self.partial is not None:
            self.partial.cancel()
            self.partial = None

    async def finals(self, closed: list[Prepared], last: bool, endpoint_ms: int) -> None:
        """Decode and send each closed segment (offline: hold it for the end); with ``last`` the final message
        carries is_final/is_end. ``endpoint_ms``: the stream time when the VAD closed them (clients measure latency
        from it)."""
        if closed:
            self.cancel_partial()
        for n, item in enumerate(closed):
            result = await self.session.decode(item, self.settings.options)
            segment = result.segments[0]
            speaker = self.stream.speaker_of.pop(item.key, {})  # spk_name/spk_score when the stream is diarized
            stable = self.stream.stable_of.pop(item.key, "")
            if self.settings.mode == "offline":
                self.held.append((segment, speaker))
                continue
            end = last and n == len(closed) - 1
            text = self.final_text(segment.clean_text, stable)
            await self.session.send(result_message(self.settings, FINAL_MODE[self.settings.mode], text, [segment],
                                                   **segment_fields(segment, speaker), segment_final=True,
                                                   endpoint_ms=endpoint_ms, is_final=end,
                                                   model=self.session.hub.model_id,
                                                   **({"is_end": True} if end else {})))

    def final_text(self, text: str, stable: str) -> str:
        """A segment's ``text``: online, what the ``stable`` text sent in its partials lacks (FunASR's clients
        concatenate them); 2pass, all of it (its 2pass-offline replaces the partials)."""
        sent = stable if self.settings.mode == "online" and self.config.online_partials else ""
        if not text.startswith(sent):  # a stable prefix the final decode disagrees with: cannot be taken back
            log.warning("%s: the final text %r does not extend the stable text sent, %r", self.settings.wav_name,
                        text, sent)
            sent = os.path.commonprefix([text, sent])
        rest = text[len(sent):]
        shown = self.lead() + rest if rest and not sent else rest
        self.said = self.said or bool(text)
        return shown

    def to_16k(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        return samples if self.resampler is None else self.resampler.resample_chunk(samples, last=last)

    def decode_file(self) -> np.ndarray:
        """wav_format "others": the bytes received, decoded as a file, at 16 kHz."""
        data = b"".join(self.inbox)
        self.inbox.clear()
        try:
            return load_audio(data, self.settings.wav_name).numpy()
        except AudioInputError as err:
            raise StreamError(f"wav_format 'others': {err}", CLOSE_UNSUPPORTED) from None

    async def finish(self) -> None:
        """``is_speaking: false``: flush the VAD (a file: run it over the whole decoded file), send the last
        segments, the last with is_final and is_end."""
        self.cancel_partial()
        closed = []
        if self.settings.file:  # the whole file, then the end as a PCM stream ends: the same segments
            wave = await self.loop.run_in_executor(self.session.hub.executor, self.decode_file)
            closed += await self.loop.run_in_executor(self.session.hub.executor, self.stream.feed, wave)
        # The resampler's last samples, if any (a byte left in ``carry`` is half a sample: dropped)
        samples = self.to_16k(np.zeros(0, np.float32), last=True)
        closed += await self.loop.run_in_executor(self.session.hub.executor, self.stream.feed, samples, True)
        await self.finals(closed, last=True, endpoint_ms=self.stream.now_ms)  # offline: held for the message below
        if self.settings.mode == "offline":
            segments = [segment for segment, _ in self.held]
            await self.session.send(result_message(
                self.settings, "offline", " ".join(s.clean_text for s in segments if s.clean_text), segments,
                segments=[segment_fields(s, speaker) for s, speaker in self.held], is_final=True, is_end=True,
                model=self.session.hub.model_id, **({} if segments else {"timestamp": "", "stamp_sents": []})))
        elif not closed:  # nothing left to decode: the end still gets its final message
            await self.session.send(result_message(self.settings, FINAL_MODE[self.settings.mode], "",
                                                   is_final=True, is_end=True, timestamp="", stamp_sents=[],
                                                   model=self.session.hub.model_id))
