"""Prometheus text exposition (format 0.0.4) of the service's counters, written by hand: a few thread-safe
counters, gauges and histograms are all the service needs, so no client library is pulled in."""

from __future__ import annotations

import bisect
import math
import threading
from typing import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_AUDIO_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Labels, extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)] + ([extra] if extra else [])
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()):
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: Labels) -> Labels:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
        return tuple(str(v) for v in labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, labels: Labels = ()) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (amount={amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, labels: Labels = ()) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.labelnames:
            items = [((), 0.0)]
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, labels: Labels = ()) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], labelnames: Sequence[str] = ()):
        super().__init__(name, help_text, labelnames)
        self.bounds = tuple(sorted(buckets)) + (math.inf,)
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}  # labels -> (bucket counts, [sum])

    def observe(self, value: float, labels: Labels = ()) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.bounds), [0.0]))
            counts[bisect.bisect_left(self.bounds, value)] += 1
            total[0] += value

    def count(self, labels: Labels = ()) -> int:
        with self._lock:
            series = self._series.get(self._key(labels))
            return sum(series[0]) if series else 0

    def render(self) -> list[str]:
        with self._lock:
            series = sorted((k, (list(c), s[0])) for k, (c, s) in self._series.items())
        if not series and not self.labelnames:
            series = [((), ([0] * len(self.bounds), 0.0))]
        lines = self.header()
        for key, (counts, total) in series:
            cumulative = 0
            for bound, n in zip(self.bounds, counts):
                cumulative += n
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {cumulative}")
        return lines


class Metrics:
    """Everything /metrics reports; one instance per app."""

    def __init__(self):
        self.requests = Counter("sensevoice_requests_total", "HTTP requests by route and status code.",
                                ("route", "code"))
        self.errors = Counter("sensevoice_errors_total", "HTTP responses with status >= 400, by route and code.",
                              ("route", "code"))
        self.latency = Histogram("sensevoice_request_latency_seconds", "Time from request to response, by route.",
                                 LATENCY_BUCKETS_S, ("route",))
        self.audio_seconds = Counter("sensevoice_audio_seconds_total", "Seconds of audio transcribed.")
        self.queue_depth = Gauge("sensevoice_queue_depth", "Requests waiting for the model.")
        self.rejected = Counter("sensevoice_queue_rejections_total", "Requests refused because the queue was full.")
        self.batch_requests = Histogram("sensevoice_batch_requests", "Requests decoded together in one batch.",
                                        BATCH_SIZE_BUCKETS)
        self.batch_audio = Histogram("sensevoice_batch_audio_seconds", "Seconds of audio in one batch.",
                                     BATCH_AUDIO_BUCKETS_S)
        self.batch_compute = Histogram("sensevoice_batch_compute_seconds", "Model time of one batch.",
                                       LATENCY_BUCKETS_S)
        # live streams (sensevoice/serve/websocket.py)
        self.streams_open = Gauge("sensevoice_streams_open", "Live WebSocket streams open.")
        self.streams = Counter("sensevoice_streams_total", "Live streams accepted or refused.", ("outcome",))
        self.stream_audio_messages = Counter("sensevoice_stream_audio_messages_total",
                                             "Binary audio messages received on live streams.")
        self.stream_vad_feeds = Counter("sensevoice_stream_vad_feeds_total",
                                        "Streaming-VAD calls: one per audio message while the server keeps up, "
                                        "fewer while it catches up with a backlog.")
        self.stream_lag = Histogram("sensevoice_stream_lag_seconds",
                                    "How long a stream's audio waited for the server (its backlog) when the VAD "
                                    "took it.", LATENCY_BUCKETS_S)
        self.stream_warnings = Counter("sensevoice_stream_lag_warnings_total",
                                       "Warnings sent to streams whose audio waited too long for the server.")

    def render(self) -> str:
        metrics = (self.requests, self.errors, self.latency, self.audio_seconds, self.queue_depth, self.rejected,
                   self.batch_requests, self.batch_audio, self.batch_compute, self.streams_open, self.streams,
                   self.stream_audio_messages, self.stream_vad_feeds, self.stream_lag, self.stream_warnings)
        return "\n".join(line for m in metrics for line in m.render()) + "\n"
