"""Live transcription client for `sensevoice serve` over WebSocket (FunASR's runtime protocol).

    python stream_client.py AUDIO.wav ws://127.0.0.1:8000/ [--mode 2pass] [--chunk-ms 60] [--realtime]
    python stream_client.py --mic ws://127.0.0.1:8000/          (needs: pip install sounddevice)

Partial results go to stderr as they arrive; each segment's final text is printed on stdout as one line, so stdout
is the transcript. Sends $SENSEVOICE_API_KEY as a Bearer token when set. Needs: pip install websockets soundfile.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time

import numpy as np
from websockets.sync.client import connect

RATE = 16000


def file_chunks(path: str, chunk_ms: int, realtime: bool):
    """16-bit PCM chunks of a file (resampled to 16 kHz mono), paced at real time when asked."""
    import soundfile

    wave, fs = soundfile.read(path, dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if fs != RATE:
        wave = np.interp(np.arange(0, len(wave), fs / RATE), np.arange(len(wave)), wave).astype(np.float32)
    pcm = (np.clip(wave, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes()
    step = RATE * 2 * chunk_ms // 1000
    started = time.monotonic()
    for n, begin in enumerate(range(0, len(pcm), step)):
        if realtime:
            time.sleep(max(0.0, started + n * chunk_ms / 1000 - time.monotonic()))
        yield pcm[begin:begin + step]


def mic_chunks(chunk_ms: int):
    import sounddevice

    blocks: queue.Queue = queue.Queue()
    with sounddevice.RawInputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=RATE * chunk_ms // 1000,
                                    callback=lambda data, *_: blocks.put(bytes(data))):
        print("recording; Ctrl-C to stop", file=sys.stderr)
        try:
            while True:
                yield blocks.get()
        except KeyboardInterrupt:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", help="audio file (omit with --mic)")
    parser.add_argument("url", help="ws://host:port/")
    parser.add_argument("--mic", action="store_true", help="stream the microphone instead of a file")
    parser.add_argument("--mode", default="2pass", choices=("offline", "online", "2pass"))
    parser.add_argument("--chunk-ms", type=int, default=60)
    parser.add_argument("--realtime", action="store_true", help="send a file at real-time pace")
    parser.add_argument("--language", default="auto")
    parser.add_argument("--no-itn", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.mic) == bool(args.audio):
        parser.error("give an audio file or --mic (not both)")
    key = os.environ.get("SENSEVOICE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else None
    chunks = mic_chunks(args.chunk_ms) if args.mic else file_chunks(args.audio, args.chunk_ms, args.realtime)
    with connect(args.url, additional_headers=headers, subprotocols=["binary"], max_size=None) as ws:
        ws.send(json.dumps({"mode": args.mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "is_speaking": True,
                            "wav_name": os.path.basename(args.audio or "microphone"), "wav_format": "pcm",
                            "audio_fs": RATE, "itn": not args.no_itn, "language": args.language}))
        for chunk in chunks:
            ws.send(chunk)
            while (message := receive_now(ws)) is not None:
                if show(message):
                    return 1
        ws.send(json.dumps({"is_speaking": False}))
        while True:
            message = json.loads(ws.recv(timeout=300))
            if show(message) or message.get("is_end"):
                return 1 if "error" in message else 0


def receive_now(ws) -> dict | None:
    try:
        return json.loads(ws.recv(timeout=0))
    except TimeoutError:
        return None


def show(message: dict) -> bool:
    """Print one server message; True when it is an error."""
    if "error" in message:
        print(f"error: {message['error']}", file=sys.stderr)
        return True
    if "warning" in message:
        print(f"warning: {message['warning']}", file=sys.stderr)
    elif "segments" in message:  # offline: every segment at the end
        for segment in message["segments"]:
            if segment["segment_text"]:
                print(segment["segment_text"], flush=True)
    elif message.get("segment_final"):
        if message.get("segment_text"):
            print(message["segment_text"], flush=True)
    elif message.get("segment_text"):
        print(f"... {message['segment_text']}", file=sys.stderr, flush=True)
    return False


if __name__ == "__main__":
    sys.exit(main())
