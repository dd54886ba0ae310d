"""One live audio stream, apart from any protocol: its audio, its streaming-VAD state, the speech segment that is
open, and the prepared items the model decodes for it (``Prepared``, as the pipeline's ``prepare`` makes them):

    samples -> streaming FSMN-VAD -> closed segment  -> Prepared of the whole segment       (the final result)
                                  -> open segment    -> Prepared of its last window         (a partial result)

A closed segment's features are those of the same span cut from the whole recording, so its final text is the
offline transcription of that VAD segment. A partial decodes only the open segment's audio since its *anchor*;
once that window reaches ``window_ms`` its text is frozen and the anchor moves to its end, so a partial never
costs more than one window however long the segment grows (the VAD closes any segment at 30 s, as offline).

Partials are re-decodes, so each may revise the last. What a client is sent as it comes must never need taking
back (FunASR's clients concatenate it), so a partial also yields its *stable* text: the longest prefix the last
``STABLE_AGREEMENT`` hypotheses agree on, up to a word boundary that more agreed text follows (never a hypothesis's
last word, which may still grow). Stable text only grows. Once a window is frozen, no more is made stable in that
segment: its frozen tail (a hypothesis's end, never stable) was decoded without its right context and stays in
every later hypothesis; the segment's final text brings the rest.

Memory is bounded: the stream keeps the open segment's audio and ``PREROLL_MS`` before it (the VAD dates a start
back by a few hundred ms), never the whole recording.

Speakers (a stream that asked for diarization): ``SpeakerTracker`` labels each closed segment as it closes, in
stream order, with the offline diarization's speaker encoder (``sensevoice.diarize``: the same windows, loudness
gain and embeddings): the segment's voice is the mean of its windows' embeddings, and it joins the known speaker
whose centroid is nearest (cosine) when that is at least ``SAME_SPEAKER_SIMILARITY``, else opens the next speaker
(S1, S2, ... in order of appearance). A label, once given, is never changed: a final cannot be taken back. Look-back:
no audio beyond the closing segment's is kept; each speaker's centroid is the mean of its last
``LOOKBACK_SEGMENTS`` segments' embeddings (a voice that drifts is followed, and memory stays at most
speakers x LOOKBACK_SEGMENTS x 256 floats whatever the stream's length). ``num_speakers`` and ``max_speakers``
cap the speakers opened (then a segment joins the nearest); a minimum cannot be promised without changing labels
already sent, so ``min_speakers`` above 1 is refused. A segment shorter than one embedding window
(``diarize.WINDOW_MS``) is too little voice to open a speaker: it joins the nearest one, if any. A tracker outlives
its Stream: the WebSocket door keeps one per connection, so labels hold across its utterances.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from torch import Tensor

from sensevoice import diarize
from sensevoice.audio import CONTAINER_MAGIC
from sensevoice.pipeline import SAMPLES_PER_MS, Prepared
from sensevoice.vad import VadStream

PREROLL_MS = 3000  # audio kept before the open segment (or the present, in silence)
MIN_PARTIAL_MS = 200  # a shorter open window is not worth a model call
STABLE_AGREEMENT = 2  # successive partial hypotheses that must agree on text before it is stable

# Cosine similarity of a segment's voice to a speaker's centroid at which it is that speaker. A few seconds of one
# voice and of two voices can score alike, so an online label is a best guess made once; the offline diarization,
# which clusters the whole recording's windows, is the accurate one (tests/test_streaming.py holds the stream to
# the official en/zh/en clips).
SAME_SPEAKER_SIMILARITY = 0.7
LOOKBACK_SEGMENTS = 16  # segments per speaker whose embeddings make its centroid (older ones are forgotten)

Features = Callable[[np.ndarray, str], Tensor]  # (N,) 16 kHz samples, key -> (T, n_input), Transcriber.features


class SpeakerTracker:
    """Online speaker labels of one stream's segments (see the module's doc): ``assign(wave)`` -> (label, score),
    the score being the segment's cosine similarity to its speaker's centroid before it joined (1.0 for the
    segment that opens a speaker: its voice is the whole centroid)."""

    def __init__(self, encoder: diarize.SpeakerEncoder, options: diarize.DiarizationOptions):
        if options.min_speakers > 1:
            raise ValueError(f"min_speakers={options.min_speakers}: a stream labels speakers as they appear and "
                             "never changes a label sent, so it cannot promise a minimum; use num_speakers or "
                             "max_speakers (a cap)")
        self.encoder = encoder
        self.cap = options.bounds[1]  # num_speakers or max_speakers
        self.recent: list[deque[np.ndarray]] = []  # per speaker: its last LOOKBACK_SEGMENTS embeddings

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """(D,) L2-normalised voice of a segment: the mean of its windows' embeddings, as diarization windows it."""
        mean = diarize.embed_speech(wave, [(0, len(wave) // SAMPLES_PER_MS)], self.encoder).embeddings.mean(0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def centroids(self) -> np.ndarray:
        means = np.stack([np.mean(list(recent), axis=0) for recent in self.recent])
        return means / np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)

    def assign(self, wave: np.ndarray) -> tuple[str, float]:
        voice = self.embed(wave)
        similarity = self.centroids() @ voice if self.recent else np.zeros(0)  # (speakers,)
        best = int(similarity.argmax()) if len(similarity) else -1
        joins = best >= 0 and (similarity[best] >= SAME_SPEAKER_SIMILARITY or len(self.recent) >= self.cap
                               or len(wave) < diarize.WINDOW_MS * SAMPLES_PER_MS)
        if joins:
            score = float(similarity[best])
        else:
            self.recent.append(deque(maxlen=LOOKBACK_SEGMENTS))
            best, score = len(self.recent) - 1, 1.0
        self.recent[best].append(voice)
        return diarize.speaker_label(best), round(score, 4)


@dataclass(frozen=True)
class StreamConfig:
    """Limits and pacing of live streams (``sensevoice serve --max-streams ...``)."""

    max_streams: int = 32  # open WebSocket streams; one more is refused with a reason
    partial_interval_ms: int = 480  # audio between two partial decodes of the open segment
    window_ms: int = 8000  # a partial decodes at most this much audio (then its text is frozen)
    idle_timeout_s: float = 30.0  # a stream silent (no message) this long is closed
    max_lag_s: float = 1.0  # audio waiting longer than this for the server: the client is told and partials pause
    max_file_mb: float = 64.0  # a whole file sent as wav_format "others" (the service's --max-upload-mb)
    # mode "online": send each partial's newly stable text (live; a final that disagrees with text already sent
    # leaves the client's text wrong) instead of all of a segment's text with its final (the client's text is then
    # the offline transcript). "2pass" always sends stable text: its finals replace it.
    online_partials: bool = False

    def __post_init__(self):
        for name in ("max_streams", "partial_interval_ms", "window_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        for name in ("idle_timeout_s", "max_lag_s", "max_file_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be a positive number")
        if self.window_ms < MIN_PARTIAL_MS:
            raise ValueError(f"window_ms={self.window_ms} must be at least {MIN_PARTIAL_MS}")


class Stream:
    """One utterance's audio and VAD state. ``feed`` and ``partial_item`` compute features (call them off the event
    loop); a stream is used by one task at a time."""

    def __init__(self, vad: VadStream, features: Features, key: str, window_ms: int,
                 speakers: SpeakerTracker | None = None):
        self.vad, self.features, self.key, self.window_ms = vad, features, key, window_ms
        self.speakers = speakers  # labels each closed segment (diarization asked for)
        self.speaker_of: dict[str, dict[str, object]] = {}  # a closed segment's spk_name/spk_score, by its key
        self.voices: list[tuple[str, np.ndarray]] = []  # closed segments' audio (views) awaiting their speaker
        self.samples = np.zeros(0, np.float32)  # kept audio; samples[0] is the stream's sample number `offset`
        self.offset = 0
        self.received = 0  # samples since the stream's start
        self.open_start: int | None = None  # ms: the open segment's start (None: in silence)
        self.anchor_ms = 0  # start of the open segment's partial window
        self.frozen = ""  # text of the open segment's earlier windows
        self.recent: list[str] = []  # the open segment's last hypotheses (at most STABLE_AGREEMENT)
        self.stable = ""  # the open segment's stable text (what its partials may send): it only grows
        self.stable_closed = False  # a window froze with an unstable tail: nothing more becomes stable
        self.stable_of: dict[str, str] = {}  # a closed segment's stable text, by its item's key (until taken)
        self.last_partial_ms = 0  # stream time of the last partial decode
        self.lock = threading.Lock()  # feed (a worker thread) vs partial_item (another) and partial_text (the loop)

    @property
    def now_ms(self) -> int:
        return self.received // SAMPLES_PER_MS

    @property
    def kept_samples(self) -> int:
        return len(self.samples)

    def feed(self, samples: np.ndarray, is_final: bool = False) -> list[Prepared]:
        """Append 16 kHz samples and run the VAD on them; the segments that closed, ready for the model.
        ``is_final`` ends the utterance: an open segment closes at the last sample."""
        with self.lock:
            closed = self._feed(samples, is_final)
            voices, self.voices = self.voices, []
        # Embedded outside the lock: partial_text (on the event loop) must not wait for the speaker encoder. Still
        # on this thread and in stream order, so labels are given as voices appear.
        for key, voice in voices:
            name, score = self.speakers.assign(voice)
            self.speaker_of[key] = {"spk_name": name, "spk_score": score}
        return closed

    def _feed(self, samples: np.ndarray, is_final: bool) -> list[Prepared]:
        self.samples = np.concatenate([self.samples, samples.astype(np.float32, copy=False)])
        self.received += len(samples)
        closed: list[Prepared] = []
        for start_ms, end_ms in self.vad.feed(samples, is_final):
            if start_ms != -1:
                self.open_start = self.anchor_ms = self.last_partial_ms = start_ms
                self.frozen, self.recent, self.stable, self.stable_closed = "", [], "", False
            if end_ms != -1 and self.open_start is not None:
                closed.append(self.close_segment(min(end_ms, self.now_ms)))
        if is_final and self.open_start is not None:
            closed.append(self.close_segment(self.now_ms))
        self.trim()
        return [item for item in closed if item.duration_ms > 0]

    def close_segment(self, end_ms: int) -> Prepared:
        item = self.item(self.open_start, end_ms)
        if item.duration_ms > 0:  # an empty segment is dropped by _feed
            self.stable_of[item.key] = self.stable
            if self.speakers is not None:  # its audio, before trim drops it; labelled by feed
                self.voices.append((item.key, self.wave(self.open_start, end_ms)))
        self.open_start = None
        return item

    def wave(self, start_ms: int, end_ms: int) -> np.ndarray:
        """The kept samples of [start_ms, end_ms) (stream time)."""
        first = max(start_ms * SAMPLES_PER_MS - self.offset, 0)
        return self.samples[first:max(end_ms * SAMPLES_PER_MS - self.offset, first)]

    def item(self, start_ms: int, end_ms: int) -> Prepared:
        """The span [start_ms, end_ms) of the stream as a prepared item whose timestamps are stream-absolute."""
        key = f"{self.key}@{start_ms}ms"
        features = self.features(self.wave(start_ms, end_ms), key)
        return Prepared(key, end_ms - start_ms, ((start_ms, end_ms),), (features,))

    def trim(self) -> None:
        keep_from = (self.open_start if self.open_start is not None else self.now_ms - PREROLL_MS) * SAMPLES_PER_MS
        drop = min(max(keep_from - self.offset, 0), len(self.samples))
        if drop:
            self.samples = self.samples[drop:]
            self.offset += drop

    # ---- partial results ----------------------------------------------------------------------------------------
    def partial_due(self, interval_ms: int) -> bool:
        return self.open_start is not None and self.now_ms - self.last_partial_ms >= interval_ms \
            and self.now_ms - self.anchor_ms >= MIN_PARTIAL_MS

    def partial_item(self) -> Prepared | None:
        """The open segment's window (anchor to now) as a prepared item; None in silence."""
        with self.lock:
            return self._partial_item()

    def _partial_item(self) -> Prepared | None:
        if self.open_start is None or self.now_ms - self.anchor_ms < MIN_PARTIAL_MS:
            return None
        self.last_partial_ms = self.now_ms
        return self.item(self.anchor_ms, self.now_ms)

    def partial_text(self, item: Prepared, text: str) -> tuple[str, str] | None:
        """(the open segment's hypothesis, the text that became stable with it) from a decoded window; None when
        the window is stale (its segment closed or its anchor moved meanwhile). A window that reached
        ``window_ms`` is frozen into the hypothesis."""
        start_ms, end_ms = item.spans[0]
        with self.lock:
            return self._partial_text(start_ms, end_ms, text)

    def _partial_text(self, start_ms: int, end_ms: int, text: str) -> tuple[str, str] | None:
        if self.open_start is None or start_ms != self.anchor_ms:
            return None
        hypothesis = join_texts(self.frozen, text)
        self.recent = [*self.recent, hypothesis][-STABLE_AGREEMENT:]
        newly = ""
        if len(self.recent) == STABLE_AGREEMENT and not self.stable_closed:
            stable = stable_prefix(self.recent)
            if len(stable) > len(self.stable) and stable.startswith(self.stable):
                newly, self.stable = stable[len(self.stable):], stable
        if end_ms - start_ms >= self.window_ms:
            self.frozen, self.anchor_ms = hypothesis, end_ms
            self.stable_closed = True  # the frozen tail is never stable (a hypothesis's end never is)
        return hypothesis, newly

    def close(self) -> None:
        self.vad.close()
        self.samples = np.zeros(0, np.float32)


def join_texts(*texts: str) -> str:
    return " ".join(t for t in texts if t)


def stable_prefix(hypotheses: list[str]) -> str:
    """The longest prefix all ``hypotheses`` share that ends at a word boundary followed by more shared text: before
    a space, or between two characters of which one is of a script written without spaces (CJK). The shared text's
    last word is left out: in the hypothesis that ends there it may still grow ("wor" -> "world")."""
    common = os.path.commonprefix(hypotheses)
    for end in range(len(common) - 1, 0, -1):
        before, after = common[end - 1], common[end]
        if before != " " and (after == " " or not (before.isascii() and after.isascii())):
            return common[:end]
    return ""


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes (an even number) -> (N,) float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def looks_like_container(data: bytes) -> bool:
    """A file header (WAV, FLAC, Ogg, MP3 with ID3, MP4) where raw PCM samples were expected. Only magics of 3+ bytes:
    MP3's 2-byte frame sync is also a plausible first PCM sample."""
    return data.startswith(tuple(m for m in CONTAINER_MAGIC if len(m) >= 3)) or data[4:8] == b"ftyp"
