"""The service's connections, bounded in time and in number: uvicorn's h11 protocol with the limits uvicorn lacks.

uvicorn waits forever for a request's headers and for the rest of a body that the app answered without reading,
and its ``limit_concurrency`` counts every open connection, slow or not, and answers plain text. So 600 clients
trickling one byte a second took every slot of ``limit_concurrency`` and each real request got a plain 503.
``GuardedH11`` keeps uvicorn's protocol and adds:

- a header deadline: a request's line and headers must arrive whole within ``header_timeout_s`` of the moment the
  connection awaits them (it opened, or the first byte of a further request on a kept-alive connection came);
  else a JSON 408 and the connection closed, however steadily the bytes trickle;
- an unread body (the app answered first, e.g. 401) must end within ``header_timeout_s`` of the answer; then the
  connection is closed;
- at most ``max_per_client`` open connections from one address (0: no cap): one more is answered 429 when its
  request arrives (it has ``REFUSED_GRACE_S`` to send it), so one client cannot take every slot;
- at most ``max_connections`` open connections in all (one file descriptor each): one more is answered 503;
- at most ``max_requests`` requests in progress: one more is answered 503 (uvicorn's ``limit_concurrency``, which
  also counted idle and trickling connections).

Every refusal is the service's JSON error (``fields.error_response``) with ``Retry-After`` and ``Connection:
close``, for an HTTP request and a WebSocket handshake alike. The body's pace is the app's to bound
(``app.UploadTimeout``): only the app knows when it waits for data.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol, h11

from sensevoice.serve.fields import error_response

log = logging.getLogger(__name__)

REFUSED_GRACE_S = 1.0  # a refused connection's time to send the request its refusal answers
FD_RESERVE = 256  # file descriptors kept from connections: model files, spooled uploads, logs, threads


def default_max_connections(max_requests: int) -> int:
    """Open connections the file-descriptor limit allows, leaving each request in progress one more (a spooled
    upload) and FD_RESERVE for the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = 65536 if soft == resource.RLIM_INFINITY else soft
    return max(1, soft - max_requests - FD_RESERVE)


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise this process's soft limit on open files towards its hard limit (a server's connections are files);
    returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of every connection of one server (see the module's docstring)."""

    header_timeout_s: float = 10.0  # request line and headers complete within this; an unread body ends within it
    max_per_client: int = 128  # open connections from one address; 0: no cap
    max_connections: int = 4096  # open connections in all
    max_requests: int = 576  # requests in progress (received, queued or decoded)
    retry_after_s: int = 1  # Retry-After of a refusal

    def __post_init__(self) -> None:
        if not self.header_timeout_s > 0:
            raise ValueError(f"header_timeout_s={self.header_timeout_s!r} must be > 0")
        for name in ("max_connections", "max_requests", "retry_after_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")
        if self.max_per_client < 0:
            raise ValueError(f"max_per_client={self.max_per_client!r} must be >= 0 (0: no cap)")


class ClientTable:
    """Open connections per client address, shared by the protocols of one server (one event loop: no lock)."""

    def __init__(self) -> None:
        self.open: collections.Counter[str] = collections.Counter()
        self.total = 0

    def add(self, address: str) -> int:
        self.open[address] += 1
        self.total += 1
        return self.open[address]

    def remove(self, address: str) -> None:
        self.total -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


def refusal_bytes(status: int, message: str, retry_after_s: int | None) -> bytes:
    """A whole HTTP/1.1 error response (the service's JSON, ``Connection: close``), for answering on a connection
    whose request h11 cannot answer (still incomplete, or a WebSocket handshake)."""
    headers = {"Connection": "close", **({"Retry-After": str(retry_after_s)} if retry_after_s else {})}
    response = error_response(status, message, headers=headers)
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode("ascii"),
             *(name + b": " + value for name, value in response.raw_headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(response.body)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with the module's limits; built per connection by uvicorn (``http=`` a partial with
    ``limits`` and the server's shared ``table``)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, table: ClientTable, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits, self.table = limits, table
        self.limit_concurrency = None  # uvicorn's plain-text 503: ours (``admit``) answers JSON
        self.inner_app, self.app = self.app, self.admit
        self.address: str | None = None  # the client address counted in ``table`` while open
        self.refusal: tuple[int, str] | None = None  # why this connection's request will be refused
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase: str | None = None

    # ---- connection ----------------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        count = self.table.add(self.address)
        if self.limits.max_per_client and count > self.limits.max_per_client:
            self.refusal = (429, f"{count - 1} connections from {self.address} are open; the limit per client is "
                                 f"{self.limits.max_per_client}. Retry later")
        elif self.table.total > self.limits.max_connections:
            self.refusal = (503, f"the server holds {self.table.total - 1} connections, its limit; retry later")
        self.update_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.set_deadline(None)
        self.release()
        super().connection_lost(exc)

    def release(self) -> None:
        if self.address is not None:
            self.table.remove(self.address)
            self.address = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.update_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.update_deadline()

    # ---- deadlines -----------------------------------------------------------------------------------------
    def phase(self) -> str | None:
        """What the client owes now against the clock: "headers" (a request is due and no keep-alive timer runs;
        uvicorn's keep-alive timer stops at the first byte), "unread body" (answered, body still coming) or
        nothing (the app is reading the body, or answering)."""
        if self.transport.is_closing():
            return None
        if self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is None:
            return "headers"
        if self.conn.their_state is h11.SEND_BODY and self.cycle is not None and self.cycle.response_complete:
            return "unread body"
        return None

    def update_deadline(self) -> None:
        phase = self.phase()
        if phase != self.deadline_phase:
            self.set_deadline(phase)

    def set_deadline(self, phase: str | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline, self.deadline_phase = None, phase
        if phase is not None:
            delay = REFUSED_GRACE_S if self.refusal else self.limits.header_timeout_s
            self.deadline = self.loop.call_later(delay, self.expire, phase, delay)

    def expire(self, phase: str, delay: float) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if phase == "headers":  # answered as h11 cannot (no request yet), then closed
            log.info("%s: no complete request line and headers within %g s; closing", self.address, delay)
            status, message = self.refusal or (408, f"the request line and headers did not arrive within {delay:g} "
                                                    "s (--header-timeout-s)")
            self.transport.write(refusal_bytes(status, message, self.limits.retry_after_s if self.refusal else None))
        self.transport.close()

    # ---- admission -----------------------------------------------------------------------------------------
    def overload(self) -> tuple[int, str] | None:
        """Why a request arriving now is refused: this connection's refusal, or too many requests in progress
        (uvicorn counts the request's own task before the app runs)."""
        if self.refusal:
            return self.refusal
        if len(self.tasks) > self.limits.max_requests:
            return 503, f"{len(self.tasks) - 1} requests are in progress, the server's limit; retry later"
        return None

    async def admit(self, scope: dict, receive: Any, send: Any) -> None:
        """The app, or the JSON refusal of a request this connection or the server cannot take."""
        refused = self.overload()
        if refused is None:
            return await self.inner_app(scope, receive, send)
        status, message = refused
        log.warning("refused %s %s from %s: %s", scope["method"], scope["path"], self.address, message)
        headers = {"Retry-After": str(self.limits.retry_after_s), "Connection": "close"}
        await error_response(status, message, headers=headers)(scope, receive, send)

    def handle_websocket_upgrade(self, event: Any) -> None:
        self.set_deadline(None)
        refused = self.refusal or (None if len(self.tasks) < self.limits.max_requests else
                                   (503, f"{len(self.tasks)} requests are in progress, the server's limit; retry later"))
        if refused is not None:
            log.warning("refused a WebSocket from %s: %s", self.address, refused[1])
            self.transport.write(refusal_bytes(*refused, self.limits.retry_after_s))
            self.transport.close()
            return
        super().handle_websocket_upgrade(event)
        # The WebSocket protocol owns the transport now and gets its connection_lost: release the slot there.
        upgraded = self.transport.get_protocol()
        lost = upgraded.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self.release()
            lost(exc)

        upgraded.connection_lost = connection_lost
