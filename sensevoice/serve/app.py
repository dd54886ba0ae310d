"""The FastAPI app: OpenAI-compatible and api.py-compatible transcription routes over a ``Batcher``, plus
``/health``, ``/v1/models``, ``/metrics`` and the browser page at ``/``.

Every error is JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 undecodable
audio, 401 missing/wrong API key, 408 upload stalled, 413 too large, 422 bad option (listing the valid values),
503 queue full (with Retry-After), 504 timeout, 500 anything else (logged; the server keeps serving).

Every connection is bounded in time (uvicorn itself waits forever for headers and for slow bodies): its request
line and headers must arrive within ``header_timeout_s`` (``guard.GuardedH11``: a JSON 408 and the connection
closed); a body the app reads may fall silent for at most ``upload_timeout_s`` and must keep an average of
``min_upload_rate`` bytes/s after the first ``UPLOAD_RATE_GRACE_S`` (``UploadTimeout``: 408). Connections per client
address, connections in all and requests in progress are capped (guard.py: 429 / 503, JSON with Retry-After).

``/docs`` is a plain page of the routes that links ``/openapi.json`` (FastAPI's Swagger UI loads its scripts from
a CDN, and the service must work offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import model as sv
from sensevoice.audio import AudioInputError, is_audio_file, load_audio
from sensevoice.modeldir import ModelIdentity
from sensevoice.serve import fields, formats
from sensevoice.serve.fields import ApiError, error_response
from sensevoice.serve.guard import ClientTable, ConnectionLimits, GuardedH11, default_max_connections
from sensevoice.serve.batcher import Arrival, Batcher, QueueFull, ShuttingDown
from sensevoice.diarize import DiarizationOptions
from sensevoice.pipeline import Prepared
from sensevoice.result import Transcript
from sensevoice.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
UPLOAD_RATE_GRACE_S = 5.0  # seconds of waiting a request body gets before its average rate counts (Kestrel's)
MAX_FILES = 64  # uploads in one /api/v1/asr request
MAX_FIELDS = 64  # form fields in one request
AUDIO_FORMATS = ("wav", "flac", "ogg", "mp3")  # what uploads may hold (audio.load_audio; the page shows them)


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one service instance (the model it names is its transcriber's: ``ModelDir.identity``)."""

    max_upload_bytes: int = 64 * 2**20  # whole request body; more -> 413
    max_audio_s: float = 60.0  # one uploaded file, decoded; longer -> 413
    timeout_s: float = 120.0  # waiting in the queue + the model's batch; longer -> 504
    api_key: str | None = None  # when set, /v1/*, /api/* and /metrics need "Authorization: Bearer KEY"
    retry_after_s: int = 1  # Retry-After of a 503 / 429
    decode_threads: int = 2  # uploads decoded at once, off the event loop
    use_vad: bool = False  # reported by /health: uploads are cut at pauses
    upload_timeout_s: float = 30.0  # longest silence while a request body is received; then 408
    min_upload_rate: float = 1024.0  # bytes/s a body must average after UPLOAD_RATE_GRACE_S; then 408 (0: no minimum)
    header_timeout_s: float = 10.0  # the request line and headers must arrive whole within this; then 408
    max_connections_per_client: int = 128  # open connections from one address; one more gets 429 (0: no cap)
    max_requests: int = 576  # requests in progress (received, queued, decoded); one more gets 503
    decoding: sv.DecodingOptions = sv.DecodingOptions()  # server-wide decoding; requests set language, ITN, timestamps


def decode_upload(data: bytes, key: str):
    """Uploaded file bytes -> (N,) float32 16 kHz mono samples; ``audio.AudioInputError`` names the key and the
    problem. Only audio files: the model reads other bytes as header-less 16-bit PCM, and an HTTP upload of a PNG
    must be refused instead of transcribed as noise."""
    if not data:
        raise AudioInputError(f"{key}: the file is empty (0 bytes)")
    if not is_audio_file(data):
        raise AudioInputError(f"{key}: not an audio file (starts with {data[:8]!r}); accepted: wav, flac, ogg, "
                                 "mp3 (any sample rate, mono or multichannel)")
    return load_audio(data, key).numpy()


# ----------------------------------------------------------------------------------------------- middleware
class UploadTooLarge(Exception):
    """The request body grew past max_upload_bytes while it was being read."""


class BodyLimit:
    """413 for POST bodies over ``max_bytes``: at once from Content-Length, or while a chunked body streams in."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, f"request body is {int(declared)} bytes; the limit is {self.max_bytes}")
            return await response(scope, receive, send)
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise UploadTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


class UploadStalled(Exception):
    """The request body fell silent for upload_timeout_s, or arrived slower than min_upload_rate."""


class UploadTimeout:
    """408 (and the connection closed) when a request body arrives too slowly: each wait for its next chunk is
    limited to ``timeout_s`` of silence, and in all the body may take ``UPLOAD_RATE_GRACE_S + bytes received /
    min_rate`` seconds of waiting (an average of ``min_rate`` bytes/s once the grace is over, however steadily a
    trickle comes). Only the time the app waits for data counts, so a slow app never counts against a client."""

    def __init__(self, app: Any, timeout_s: float, min_rate: float = 0.0):
        self.app, self.timeout_s, self.min_rate = app, timeout_s, min_rate

    def allowance_s(self, received: int, waited_s: float) -> float:
        """Seconds the body may still be waited for before it falls below the minimum rate (inf: no minimum)."""
        if not self.min_rate:
            return float("inf")
        return UPLOAD_RATE_GRACE_S + received / self.min_rate - waited_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        body_done = False  # afterwards receive() only waits for a disconnect: no limit
        received, waited_s = 0, 0.0

        async def timed_receive() -> dict:
            nonlocal body_done, received, waited_s
            if body_done:
                return await receive()
            allowance = max(0.0, self.allowance_s(received, waited_s))
            started = time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), min(self.timeout_s, allowance))
            except TimeoutError:
                if allowance < self.timeout_s:
                    raise UploadStalled(f"the upload is too slow: {received} bytes in {waited_s + allowance:.1f} s; "
                                        f"the minimum is {self.min_rate:g} bytes/s (after the first "
                                        f"{UPLOAD_RATE_GRACE_S:g} s)") from None
                raise UploadStalled(f"the upload stalled: nothing received for {self.timeout_s:g} s") from None
            waited_s += time.monotonic() - started
            received += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


def uvicorn_config(app: FastAPI, **kwargs: Any) -> Any:
    """uvicorn's Config for the app, its connections bounded as the app's ServeConfig says (``guard.GuardedH11``:
    header deadline, connections per client and in all, requests in progress; JSON refusals with Retry-After)."""
    config = app.state.service.config
    limits = ConnectionLimits(header_timeout_s=config.header_timeout_s,
                              max_per_client=config.max_connections_per_client,
                              max_connections=default_max_connections(config.max_requests),
                              max_requests=config.max_requests, retry_after_s=config.retry_after_s)
    return uvicorn.Config(app, http=functools.partial(GuardedH11, limits=limits, table=ClientTable()), **kwargs)


class RequestMetrics:
    """Counts requests and errors and times them, labelled by route (a known path, never an arbitrary one)."""

    def __init__(self, app: Any, metrics: Any, paths: frozenset[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router names the route; a request refused before routing (413) is named by its path if known.
            route = getattr(scope.get("route"), "path", scope["path"] if scope["path"] in self.paths else "unmatched")
            self.metrics.requests.inc(labels=(route, str(status)))
            if status >= 400:
                self.metrics.errors.inc(labels=(route, str(status)))
            self.metrics.latency.observe(time.perf_counter() - started, labels=(route,))


# ----------------------------------------------------------------------------------------------- service
class Service:
    """What the route handlers share: the batcher, the limits, the decoder threads, the model's identity."""

    def __init__(self, batcher: Batcher, config: ServeConfig):
        self.batcher, self.config, self.metrics = batcher, config, batcher.metrics
        # What answers, as /health, /v1/models and verbose_json name it; requests may name it, an alias, or nothing
        self.model: ModelIdentity = batcher.transcriber.model_dir.identity
        self.decoder = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="sensevoice-decode")

    def check_key(self, request: Request) -> None:
        if not fields.key_matches(self.config.api_key, request.headers.get("authorization", "")):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})

    def check_capacity(self) -> None:
        """Refuse early, before reading a large body, when the queue is already full."""
        if self.batcher.depth >= self.batcher.max_queue:
            self.metrics.rejected.inc()
            raise ApiError(503, f"the queue is full ({self.batcher.depth} requests waiting); retry later",
                           headers={"Retry-After": str(self.config.retry_after_s)})

    @staticmethod
    def form(request: Request) -> contextlib.AbstractAsyncContextManager[FormData]:
        """The multipart form, as ``async with`` (closes its spooled files); a body over the limit raises
        UploadTooLarge (-> 413) while it is read."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, f"expected a multipart/form-data upload, got Content-Type {content_type!r}")
        return request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)

    def load(self, data: bytes, key: str, diarization: DiarizationOptions | None = None) -> Prepared:
        """Upload bytes -> prepared audio (the pipeline's ``prepare``: VAD and features, speaker turns with
        ``diarization``), on a decoder thread: 400 if not audio, 413 if too long, 422 for more speakers than the
        speech can hold."""
        try:
            wave = decode_upload(data, key)
        except AudioInputError as err:
            raise ApiError(400, str(err), "file") from err
        duration_s = len(wave) / sv.SAMPLE_RATE
        if duration_s > self.config.max_audio_s:
            raise ApiError(413, f"{key}: {duration_s:.1f} s of audio; the limit is {self.config.max_audio_s:g} s"
                           + ("" if self.config.use_vad else " (the server runs with --no-vad: without it, long audio is "
                                                              "cut at pauses)"), "file")
        if diarization is None:
            return self.batcher.transcriber.prepare_wave(wave, key)
        try:
            return self.batcher.transcriber.prepare_wave(wave, key, diarization=diarization)
        except ValueError as err:  # speakers asked for that the speech cannot hold
            raise ApiError(422, str(err), "num_speakers") from err

    async def decode(self, upload: UploadFile, key: str, diarization: DiarizationOptions | None = None) -> Prepared:
        data = await upload.read()
        return await asyncio.get_running_loop().run_in_executor(self.decoder, self.load, data, key, diarization)

    async def transcribe(self, items: list[Prepared], options: sv.DecodingOptions, arrival: Arrival) -> list[Transcript]:
        try:
            results = await self.batcher.transcribe(items, options, self.config.timeout_s, arrival)
        except (QueueFull, ShuttingDown) as err:
            raise ApiError(503, f"{err}; retry later", headers={"Retry-After": str(self.config.retry_after_s)}) from err
        except TimeoutError as err:
            raise ApiError(504, f"no result within {self.config.timeout_s:g} s (server busy); retry later") from err
        except AudioInputError as err:
            raise ApiError(400, str(err), "file") from err
        self.metrics.audio_seconds.inc(sum(item.duration_s for item in items))
        return results


# ----------------------------------------------------------------------------------------------- routes
def add_transcription_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/audio/transcriptions")
    async def openai_transcriptions(request: Request) -> Response:
        """OpenAI's audio transcription endpoint (multipart ``file``, ``model``, ``language``, ``response_format``,
        ``timestamp_granularities[]``), plus ``use_itn``."""
        service.check_key(request)
        service.check_capacity()
        with service.batcher.arriving() as arrival:
            async with service.form(request) as form:
                parsed = fields.parse_openai(form, service.model.id, service.config.decoding)
                audio = await service.decode(parsed.upload, parsed.upload.filename or "file", parsed.diarization)
            [result] = await service.transcribe([audio], parsed.options, arrival)
        body = formats.openai_body(result, parsed.response_format, parsed.granularities, service.model,
                                   parsed.subtitles)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=formats.MEDIA_TYPES[parsed.response_format])

    @app.post("/api/v1/asr")
    async def sensevoice_asr(request: Request) -> Response:
        """SenseVoice's api.py: several ``files``, comma-separated ``keys``, ``lang``, ``use_itn`` (default false)."""
        service.check_key(request)
        service.check_capacity()
        with service.batcher.arriving() as arrival:
            async with service.form(request) as form:
                options, files, keys = fields.parse_asr(form, service.config.decoding)
                items = [await service.decode(f, k) for f, k in zip(files, keys)]
            results = await service.transcribe(items, options, arrival)
        return JSONResponse({"result": [formats.asr_result(r) for r in results]})


def add_info_routes(app: FastAPI, service: Service) -> None:
    config, batcher, model = service.config, service.batcher, service.model

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Status, the model that answers (the page names it, and warns while the demo model serves), and the
        limits an upload must keep (the page shows them before anything is sent)."""
        return {"status": "ok", "model": model.id, "model_identity": model.as_dict(), "vad": config.use_vad,
                "queue_depth": batcher.depth, "max_queue": batcher.max_queue,
                "languages": list(fields.LANGUAGE_CHOICES),
                "response_formats": list(formats.RESPONSE_FORMATS),
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_audio_s": config.max_audio_s,
                           "audio_formats": list(AUDIO_FORMATS), "upload_timeout_s": config.upload_timeout_s,
                           "min_upload_rate": config.min_upload_rate, "header_timeout_s": config.header_timeout_s},
                "streaming": getattr(app.state, "streams", None) is not None}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        service.check_key(request)
        return {"object": "list", "data": [{**model.as_dict(), "object": "model", "created": 0,
                                            "owned_by": "sensevoice"}]}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        service.check_key(request)
        return Response(service.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def docs_page(schema: dict[str, Any]) -> str:
    """The routes of the OpenAPI schema as one self-contained page (no scripts, nothing fetched)."""
    rows = "".join(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                   f"<td>{html.escape(operation.get('description') or operation.get('summary', ''))}</td></tr>"
                   for path, item in schema["paths"].items() for method, operation in item.items())
    title = html.escape(schema["info"]["title"])
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title} API</title>"
            "<link rel='stylesheet' href='/static/style.css'></head><body><main>"
            f"<h1>{title} API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI "
            f"{html.escape(schema.get('openapi', ''))}). Errors are JSON: "
            "<code>{\"error\": {\"message\", \"type\", \"param\", \"code\"}}</code>.</p>"
            f"<table><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table></main></body></html>")


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message, err.param, err.headers)

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, err: UploadTooLarge) -> JSONResponse:
        return error_response(413, str(err))

    @app.exception_handler(UploadStalled)
    async def stalled(request: Request, err: UploadStalled) -> JSONResponse:
        return error_response(408, str(err), headers={"Connection": "close"})  # the rest of the body is unread

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), headers=getattr(err, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, err: ClientDisconnect) -> JSONResponse:
        log.info("client went away during %s %s", request.method, request.url.path)
        return error_response(400, "the client disconnected before the upload was complete")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(err).__name__}: {err})")


def create_app(batcher: Batcher, config: ServeConfig = ServeConfig(), streams: Any = None) -> FastAPI:
    """The service over a (not yet started) batcher; the app's lifespan starts and stops it. ``streams`` (a
    ``websocket.StreamHub`` over the same batcher) adds live transcription in FunASR's protocol at ws://.../."""
    service = Service(batcher, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, batcher.stop)
            service.decoder.shutdown(wait=False, cancel_futures=True)
            if streams is not None:
                streams.shutdown()

    app = FastAPI(title="SenseVoiceSmall", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    add_error_handlers(app)
    add_transcription_routes(app, service)
    add_info_routes(app, service)
    if streams is not None:
        @app.websocket("/")
        async def live(websocket: WebSocket) -> None:
            """Live transcription in FunASR's runtime protocol (sensevoice/serve/websocket.py)."""
            await streams.serve(websocket)

        app.state.streams = streams
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(UploadTimeout, timeout_s=config.upload_timeout_s, min_rate=config.min_upload_rate)
    app.add_middleware(RequestMetrics, metrics=service.metrics, paths=frozenset(r.path for r in app.routes))
    return app


class StopOnSignal(uvicorn.Server):
    """uvicorn's Server, but SIGINT and SIGTERM are the way to stop it: after the graceful shutdown ``run`` returns
    (``sensevoice serve`` exits 0, as its --help says) instead of raising the signal again as uvicorn does (which
    exits 130 / 143)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, **uvicorn_kwargs: Any) -> Iterator[str]:
    """Run uvicorn in a daemon thread (tests, notebooks); yields the base URL (port 0: a free one)."""
    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level="warning", **uvicorn_kwargs))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(30)
