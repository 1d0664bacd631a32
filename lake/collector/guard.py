"""Connection-level defences of the collector: a cap on connections per address, a header timeout.

aiohttp parses the requests, but it lets one client open any number of connections, and it waits
for a request line and headers that trickle in a byte at a time for as long as its keep-alive
timeout (an hour). :class:`ConnectionGuard` wraps the protocol of every accepted connection:

* a connection beyond ``max_per_ip`` open ones from the same address is answered ``429`` (with
  ``Retry-After``) and closed before anything is read from it;
* a request's line and headers must be complete within ``header_timeout_s`` of the connection
  opening, or of the request's first byte on a kept-alive connection; otherwise ``408`` and the
  connection is closed. While a request is being handled (its body read, its messages landed) the
  body timeout of the server applies instead, and an idle kept-alive connection is closed by
  aiohttp's keep-alive timeout.

The server tells the guard where each connection is through :meth:`ConnectionGuard.request_started`
and :meth:`ConnectionGuard.request_finished` (an aiohttp middleware).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

import orjson

__all__ = ["ConnectionGuard"]

log = logging.getLogger("growthlake.collector")
_State = Literal["headers", "busy", "idle", "closing"]


def _canned(status: int, reason: str, code: str, message: str, headers: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection (written before or instead of aiohttp's)."""
    body = orjson.dumps({"code": code, "message": message})
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{headers}\r\n")
    return head.encode("ascii") + body


class ConnectionGuard:
    """Counts open connections per remote address and times out slow request headers.

    Args:
        max_per_ip: open connections one address may hold (0: no cap).
        header_timeout_s: seconds a request line and its headers may take.
        retry_after_s: the Retry-After sent with the 429 of a connection over the cap.
        on_refused, on_header_timeout: called once per connection refused / timed out (counters).
    """

    def __init__(self, *, max_per_ip: int, header_timeout_s: float, retry_after_s: int,
                 on_refused: Callable[[], None] | None = None,
                 on_header_timeout: Callable[[], None] | None = None) -> None:
        self.max_per_ip = max_per_ip
        self.header_timeout_s = header_timeout_s
        self._on_refused = on_refused or (lambda: None)
        self._on_header_timeout = on_header_timeout or (lambda: None)
        self._open: dict[str | None, int] = {}
        self._at_cap: set[str | None] = set()  # addresses already warned about (until they drop below)
        self._by_transport: dict[Any, _GuardedProtocol] = {}
        self._too_many = _canned(
            429, "Too Many Requests", "too_many_connections",
            f"more than {max_per_ip} open connections from this address; reuse or close connections and retry",
            f"Retry-After: {retry_after_s}\r\n")
        self._timed_out = _canned(
            408, "Request Timeout", "request_timeout",
            f"the request line and headers did not arrive within {header_timeout_s:g} s; retry")

    def open_connections(self, ip: str | None = None) -> int:
        """Connections open now: from ``ip``, or from every address."""
        return self._open.get(ip, 0) if ip is not None else sum(self._open.values())

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` around aiohttp's (``runner.server``)."""
        return lambda: _GuardedProtocol(self, factory())

    def request_started(self, transport: Any) -> None:
        """A request's headers are complete: its handler runs (no header timeout while it does)."""
        conn = self._by_transport.get(transport)
        if conn is not None:
            conn.set_state("busy")

    def request_finished(self, transport: Any, *, keep_alive: bool) -> None:
        """A request was answered; the connection waits for the next one, or is closing."""
        conn = self._by_transport.get(transport)
        if conn is not None:
            conn.set_state("idle" if keep_alive else "closing")

    # -- used by the protocols ------------------------------------------------------------------
    def _admit(self, ip: str | None) -> bool:
        count = self._open.get(ip, 0)
        if self.max_per_ip and count >= self.max_per_ip:
            self._on_refused()
            if ip not in self._at_cap:
                self._at_cap.add(ip)
                log.warning("%s holds %d open connections (the cap): refusing more with 429 until it closes some",
                            ip, count)
            return False
        self._open[ip] = count + 1
        return True

    def _release(self, ip: str | None) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)
        if count < self.max_per_ip:
            self._at_cap.discard(ip)


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's cap and header timer."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: Any = None
        self._ip: str | None = None
        self._admitted = False
        self._state: _State = "headers"
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._ip = peer[0] if isinstance(peer, tuple) and peer else None
        if not self._guard._admit(self._ip):
            transport.write(self._guard._too_many)  # type: ignore[attr-defined]
            transport.close()
            return
        self._admitted = True
        self._transport = transport
        self._guard._by_transport[transport] = self
        self.set_state("headers")  # a new connection must send its first request promptly too
        self._inner.connection_made(transport)

    def set_state(self, state: _State) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = state
        if state == "headers":
            self._timer = asyncio.get_running_loop().call_later(self._guard.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        self._timer = None
        if self._state != "headers" or self._transport is None or self._transport.is_closing():
            return
        self._guard._on_header_timeout()
        log.info("closed a connection from %s: no complete request header within %g s",
                 self._ip, self._guard.header_timeout_s)
        self._state = "closing"
        self._transport.write(self._guard._timed_out)
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return  # refused: answered and closing, nothing is read
        if self._state == "idle":
            self.set_state("headers")  # the first byte of the next request starts its header clock
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard._by_transport.pop(self._transport, None)
        self._guard._release(self._ip)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()
