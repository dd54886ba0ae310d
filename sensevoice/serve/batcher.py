"""Cross-request dynamic batching: requests wait in a bounded queue; one worker thread, which alone touches the
model, takes the oldest request together with the later ones that have the same decoding options, up to a
budget of audio seconds, and decodes them in one call.

While the worker is busy, requests pile up and the next batch takes them at once. When it is idle, the oldest
request waits for company at most ``max_wait_ms``, and only while other requests are still arriving (being
uploaded or decoded: see ``arriving``); a lone request is never delayed.

*Best-effort* requests (a live stream's partial results, which a later one supersedes) yield to the others: a batch
starts from the oldest request that is not best effort, and best-effort ones join it only in the audio budget that
is left, or make a batch of their own when nothing else waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import model as sv
from sensevoice.pipeline import Prepared
from sensevoice.result import Transcript
from sensevoice.serve.metrics import Metrics

log = logging.getLogger(__name__)


class Decoder(Protocol):
    """What the batcher drives, e.g. sensevoice.pipeline.Transcriber: ``decode`` on its one worker thread."""

    def decode(self, items: Sequence[Prepared], options: sv.DecodingOptions) -> list[Transcript]:
        """One result per prepared item, in item order."""
        ...


class QueueFull(RuntimeError):
    """The queue already holds ``max_queue`` requests (the service answers 503 with Retry-After)."""


class ShuttingDown(RuntimeError):
    """The batcher is stopping and takes no more work."""


@dataclass(eq=False)
class Job:
    """One request: its uploads, their options and the future its handler awaits."""

    items: Sequence[Prepared]
    options: sv.DecodingOptions
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    best_effort: bool = False
    arrived: float = field(default_factory=time.monotonic)

    @property
    def audio_s(self) -> float:
        return sum(item.duration_s for item in self.items)


@dataclass(eq=False)
class Arrival:
    """A request on its way to the queue (receiving or decoding its upload)."""

    counted: bool = True


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the handler gave up (timeout or cancellation) meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Owns the transcriber's worker thread; ``await transcribe(items, options)`` from any request handler."""

    def __init__(self, transcriber: Decoder, batch_size_s: float = 60.0, max_wait_ms: float = 10.0,
                 max_queue: int = 256, max_queue_audio_s: float = 7200.0, metrics: Metrics | None = None):
        if batch_size_s <= 0 or max_wait_ms < 0 or max_queue < 1 or max_queue_audio_s <= 0:
            raise ValueError(f"batch_size_s={batch_size_s!r} and max_queue_audio_s={max_queue_audio_s!r} must be > 0, "
                             f"max_wait_ms={max_wait_ms!r} >= 0 and max_queue={max_queue!r} >= 1")
        self.transcriber = transcriber
        self.batch_size_s = batch_size_s
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue  # requests waiting
        self.max_queue_audio_s = max_queue_audio_s  # their audio (memory: 64 kB per second as float32 samples)
        self.metrics = metrics or Metrics()
        self._pending: deque[Job] = deque()
        self._arriving = 0  # requests announced by arriving() and not queued yet
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- event-loop side --------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Requests waiting (not counting the batch being decoded)."""
        return len(self._pending)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[Arrival]:
        """Announce a request before its upload is read; pass the arrival to ``transcribe``. An idle worker waits
        (up to max_wait_ms) for announced requests to join the oldest one's batch."""
        arrival = Arrival()
        with self._cond:
            self._arriving += 1
        try:
            yield arrival
        finally:
            with self._cond:
                self._uncount(arrival)

    def _uncount(self, arrival: Arrival | None) -> None:
        if arrival is not None and arrival.counted:
            arrival.counted = False
            self._arriving -= 1
            self._cond.notify()

    async def transcribe(self, items: Sequence[Prepared], options: sv.DecodingOptions, timeout_s: float | None = None,
                         arrival: Arrival | None = None, best_effort: bool = False) -> list[Transcript]:
        """File results for ``items``; raises QueueFull, ShuttingDown, TimeoutError or the transcriber's error.
        ``best_effort``: the request yields to the others (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        job = Job(list(items), options, loop.create_future(), loop, best_effort)
        with self._cond:
            self._uncount(arrival)  # queued or refused: either way no longer on its way
            if self._stopping or self._thread is None:
                raise ShuttingDown("the transcription worker is not running")
            queued_s = sum(j.audio_s for j in self._pending)
            over_audio = bool(self._pending) and queued_s + job.audio_s > self.max_queue_audio_s  # one always fits
            if len(self._pending) >= self.max_queue or over_audio:
                self.metrics.rejected.inc()
                raise QueueFull(f"{len(self._pending)} requests with {queued_s:.0f} s of audio are waiting "
                                f"(max_queue={self.max_queue}, max_queue_audio_s={self.max_queue_audio_s:g})")
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending))
            self._cond.notify()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        finally:
            self._withdraw(job)

    def _withdraw(self, job: Job) -> None:
        """Forget a job that is still waiting (its handler timed out or was cancelled)."""
        with self._cond:
            if job in self._pending:
                self._pending.remove(job)
                self.metrics.queue_depth.set(len(self._pending))

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="sensevoice-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in progress, fail the waiting requests with ShuttingDown, end the thread."""
        with self._cond:
            self._stopping = True
            waiting, self._pending = list(self._pending), deque()
            self.metrics.queue_depth.set(0)
            self._cond.notify_all()
        for job in waiting:
            job.loop.call_soon_threadsafe(_settle, job.future, None, ShuttingDown("the service is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    # ---- worker thread ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            try:
                self._run(jobs)
            except BaseException as err:  # never lose the worker: fail this batch, keep serving
                log.exception("batch of %d requests failed outside the transcriber", len(jobs))
                for job in jobs:
                    job.loop.call_soon_threadsafe(_settle, job.future, None, err)

    def _next_batch(self) -> list[Job] | None:
        """Block until a batch is due: the oldest job and the same-options jobs behind it, once they fill
        batch_size_s of audio, no other request is arriving, or the oldest has waited max_wait_ms. None when
        stopping."""
        with self._cond:
            while True:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return None
                first = next((job for job in self._pending if not job.best_effort), self._pending[0])
                remaining = first.arrived + self.max_wait_s - time.monotonic()
                if remaining > 0 and self._arriving > 0 and self._ready_s(first.options) < self.batch_size_s:
                    self._cond.wait(remaining)
                    continue  # re-check: more jobs, a withdrawn first job, or the deadline
                return self._take(first.options)

    def _ready_s(self, options: sv.DecodingOptions) -> float:
        return sum(job.audio_s for job in self._pending if job.options == options)

    def _take(self, options: sv.DecodingOptions) -> list[Job]:
        """Remove and return waiting jobs with these options within the audio budget (at least one): oldest first,
        best-effort ones after all the others."""
        jobs: list[Job] = []
        total_s = 0.0
        for job in sorted(self._pending, key=lambda job: job.best_effort):  # stable: oldest first in each class
            if job.options != options:
                continue
            if jobs and total_s + job.audio_s > self.batch_size_s:
                break
            jobs.append(job)
            total_s += job.audio_s
            self._pending.remove(job)
        self.metrics.queue_depth.set(len(self._pending))
        return jobs

    def _run(self, jobs: list[Job]) -> None:
        jobs = [job for job in jobs if not job.future.done()]  # handlers that gave up need no answer
        if not jobs:
            return
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        try:
            results = self.transcriber.decode(items, jobs[0].options)
        except Exception as err:
            if len(jobs) > 1:  # find the culprit: decode each request alone, so only its own request fails
                log.warning("batch of %d requests failed (%s); retrying them one by one", len(jobs), err)
                for job in jobs:
                    self._run([job])
                return
            log.exception("transcription failed for %s", [item.key for item in jobs[0].items])
            jobs[0].loop.call_soon_threadsafe(_settle, jobs[0].future, None, err)
            return
        if len(results) != len(items):
            raise RuntimeError(f"transcriber returned {len(results)} results for {len(items)} items")
        self.metrics.batch_compute.observe(time.perf_counter() - started)
        self.metrics.batch_requests.observe(len(jobs))
        self.metrics.batch_audio.observe(sum(item.duration_s for item in items))
        start = 0
        for job in jobs:
            end = start + len(job.items)
            job.loop.call_soon_threadsafe(_settle, job.future, results[start:end], None)
            start = end
