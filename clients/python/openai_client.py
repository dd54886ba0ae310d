"""Transcribe an audio file with the official OpenAI Python SDK pointed at a SenseVoice server.

    python clients/python/openai_client.py FILE [URL]      # URL default http://127.0.0.1:8000

The API key, when the server wants one, comes from $SENSEVOICE_API_KEY (the SDK sends it as a Bearer token).
Prints the transcript (OpenAI's ``text``: no SenseVoice tags; punctuated, since the server defaults to use_itn).
"""

import os
import sys

from openai import APIStatusError, OpenAI

DEFAULT_URL = "http://127.0.0.1:8000"


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    url = (argv[1] if len(argv) > 1 else DEFAULT_URL).rstrip("/")
    # The SDK insists on a key; a server started without --api-key ignores it.
    client = OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("SENSEVOICE_API_KEY") or "unused", max_retries=0)
    with open(argv[0], "rb") as audio:
        try:
            transcription = client.audio.transcriptions.create(model="sensevoice-small", file=audio)
        except APIStatusError as err:
            print(f"HTTP {err.status_code}: {err.message}", file=sys.stderr)
            return 1
    sys.stdout.buffer.write(transcription.text.encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
