"""Transcribe an audio file with plain ``requests`` through SenseVoice's api.py route, ``POST /api/v1/asr``.

    python clients/python/requests_client.py FILE [URL]    # URL default http://127.0.0.1:8000

The API key, when the server wants one, comes from $SENSEVOICE_API_KEY. Prints the result's ``text``: the emoji
form of api.py (FunASR's rich_transcription_postprocess); ``raw_text`` and ``clean_text`` are in the JSON too.
"""

import os
import sys

import requests

DEFAULT_URL = "http://127.0.0.1:8000"


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, url = argv[0], (argv[1] if len(argv) > 1 else DEFAULT_URL).rstrip("/")
    key = os.environ.get("SENSEVOICE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with open(path, "rb") as audio:
        response = requests.post(f"{url}/api/v1/asr", headers=headers, timeout=300,
                                 files=[("files", (os.path.basename(path), audio))],
                                 data={"keys": os.path.basename(path), "lang": "auto"})
    if response.status_code != 200:
        print(f"HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    [result] = response.json()["result"]
    sys.stdout.buffer.write(result["text"].encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
