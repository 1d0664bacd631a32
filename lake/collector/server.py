"""The collector's HTTP service (aiohttp): authenticate, bound memory, land durably, then acknowledge.

A request is answered ``200 {"success": true}`` only after every message it carried is in a batch
file that was fsynced and renamed into the landing zone (:class:`~lake.collector.writer.LandingWriter`).
Requests are grouped: a commit writes one file per landing hour for everything pending, and starts
at most once per ``linger_ms`` (at once when the collector was idle), so the number of landing
files grows with time — at most ``1000 / linger_ms`` per second — not with traffic. Memory is bounded: bytes of requests admitted but not yet
landed are counted, and beyond ``max_inflight_bytes`` a request is refused with 429 and
``Retry-After`` (the SDKs retry it) before its body is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from aiohttp import web

from lake.collector.config import CollectorConfig
from lake.collector.protocol import RequestRejected, decode_body, iso_utc, landing_line, messages_of
from lake.collector.writer import LandingWriter
from lake.landing import partition_key
from lake.paths import LakePaths

__all__ = ["Collector", "CollectorStats", "RunningCollector", "serve", "start_in_thread"]

log = logging.getLogger("growthlake.collector")
_KINDS = ("batch", "track", "identify", "page", "screen", "alias", "group")
_FLUSH_BYTES = 8 << 20  # commit at once when this much is pending, without waiting for the linger


@dataclass
class CollectorStats:
    """Counters since start (one process)."""

    requests: int = 0
    acknowledged_messages: int = 0
    files_landed: int = 0
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> requests


class Collector:
    """The Segment-compatible endpoints over one landing zone.

    Args:
        paths: the lake (a local storage root).
        config: keys, limits and address.
    """

    def __init__(self, paths: LakePaths, config: CollectorConfig) -> None:
        self.paths = paths
        self.config = config
        self.writer = LandingWriter(paths)
        self.stats = CollectorStats()
        self._inflight = 0
        self._pending: list[tuple[str, list[bytes], asyncio.Future]] = []
        self._pending_bytes = 0
        self._last_commit = float("-inf")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthlake-collector-io")
        self._closing = False

    # -- the aiohttp application ----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        for kind in _KINDS:
            app.router.add_post(f"/v1/{kind}", self._handler(kind))
        app.router.add_get("/health", self._health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        removed = await asyncio.get_running_loop().run_in_executor(self._io, self.writer.open)
        if removed:
            log.warning("removed %d unacknowledged temp file(s) of a collector that died", removed)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._commit_loop(), name="growthlake-collector-commit")

    async def _stop(self, _app: web.Application) -> None:
        self._closing = True  # new requests get 503; what is pending is landed (and acknowledged) first
        if self._task is not None:
            self._wake.set()
            await self._task
        await asyncio.get_running_loop().run_in_executor(self._io, self.writer.close)
        self._io.shutdown(wait=True)

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": not self._closing})

    def _handler(self, kind: str) -> Callable:
        async def handle(request: web.Request) -> web.Response:
            self.stats.requests += 1
            try:
                acked = await self._receive(request, kind)
            except RequestRejected as exc:
                self.stats.rejected[exc.status] = self.stats.rejected.get(exc.status, 0) + 1
                headers = {"Retry-After": str(self.config.retry_after_s)} if exc.status in (429, 503) else {}
                if exc.status == 401:
                    headers["WWW-Authenticate"] = 'Basic realm="growthlake"'
                return web.json_response({"code": exc.code, "message": exc.message}, status=exc.status, headers=headers)
            self.stats.acknowledged_messages += acked
            return web.json_response({"success": True})

        return handle

    # -- one request ----------------------------------------------------------------------------
    def _header_key(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise RequestRejected(401, "unauthorized", "use HTTP Basic auth with the write key as the user name")
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise RequestRejected(401, "unauthorized", "malformed Basic credentials") from None
        if not self.config.accepts(user):
            raise RequestRejected(401, "unauthorized", "unknown write key")
        return user

    async def _receive(self, request: web.Request, kind: str) -> int:
        key = self._header_key(request)
        limit = self.config.max_batch_bytes if kind == "batch" else self.config.max_message_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise RequestRejected(413, "payload_too_large", f"body is {length:,} bytes; the limit is {limit // 1024} KB")
        if self._closing:
            raise RequestRejected(503, "unavailable", "the collector is shutting down; retry")
        reserve = length if length is not None else limit
        if self._inflight and self._inflight + reserve > self.config.max_inflight_bytes:
            raise RequestRejected(429, "too_many_requests", "the collector is busy landing earlier requests; retry")
        self._inflight += reserve
        try:
            raw = await self._read(request, limit)
            body = decode_body(raw, request.headers.get("Content-Encoding", ""), limit)
            if key is None:  # analytics.js-style: the key in the body
                given = body.get("writeKey")
                if type(given) is not str or not self.config.accepts(given):
                    raise RequestRejected(401, "unauthorized", "missing or unknown write key")
            messages = messages_of(body, kind)
            received = datetime.now(UTC)
            received_iso = iso_utc(received)
            lines = [landing_line(m, received_iso=received_iso, peer_ip=request.remote,
                                  max_message_bytes=self.config.max_message_bytes,
                                  where=f"batch[{i}]" if kind == "batch" else "body")
                     for i, m in enumerate(messages)]
            if lines:
                await self._land(partition_key(received), lines)
            return len(lines)
        finally:
            self._inflight -= reserve

    @staticmethod
    async def _read(request: web.Request, limit: int) -> bytes:
        buf = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            buf += chunk
            if len(buf) > limit:
                raise RequestRejected(413, "payload_too_large", f"body exceeds {limit // 1024} KB")
        return bytes(buf)

    async def _land(self, hour: str, lines: list[bytes]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((hour, lines, future))
        self._pending_bytes += sum(map(len, lines))
        self._wake.set()
        try:
            # Shielded: a client that hangs up does not un-land its events (a retry dedups on messageId).
            await asyncio.shield(future)
        except Exception as exc:  # noqa: BLE001 - any failure to land is the client's cue to retry
            detail = getattr(exc, "strerror", None) or exc
            raise RequestRejected(503, "unavailable", f"landing the events failed ({detail}); retry") from None

    # -- group commit ---------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            # At most one commit per linger interval: an idle collector commits at once, a busy one
            # gathers everything that arrives meanwhile into the next commit (one file per hour).
            wait = self._last_commit + self.config.linger_ms / 1000 - time.monotonic()
            if wait > 0 and self._pending_bytes < _FLUSH_BYTES and not self._closing:
                await asyncio.sleep(wait)
            self._last_commit = time.monotonic()
            await self._commit_pending()
            if self._closing and not self._pending:
                return

    async def _commit_pending(self) -> None:
        self._wake.clear()
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        if not batch:
            return
        hours: dict[str, list[bytes]] = {}
        for hour, lines, _ in batch:
            hours.setdefault(hour, []).extend(lines)
        try:
            landed = await asyncio.get_running_loop().run_in_executor(self._io, self.writer.write, hours)
        except Exception as exc:  # noqa: BLE001 - the commit task must outlive a failed write
            log.error("landing %d request(s) failed: %s", len(batch), exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.stats.files_landed += len(landed)
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)


def _bind(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)


async def _start_site(collector: Collector, host: str, port: int) -> tuple[web.AppRunner, str]:
    # The body is decompressed by decode_body, within the size limit (not by aiohttp, unbounded).
    runner = web.AppRunner(collector.app(), access_log=None, auto_decompress=False)
    await runner.setup()
    sock = _bind(host, port)
    await web.SockSite(runner, sock).start()
    bound_host, bound_port = sock.getsockname()[:2]
    return runner, f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"


def serve(paths: LakePaths, config: CollectorConfig, *, ready: Callable[[str], None] | None = None) -> CollectorStats:
    """Run the collector in this thread until SIGINT or SIGTERM; pending requests are landed first.

    Args:
        paths: the lake (a local storage root).
        config: keys, limits and address (``port=0``: any free port).
        ready: called with the base URL once the socket listens.
    """

    async def main() -> CollectorStats:
        collector = Collector(paths, config)
        runner, url = await _start_site(collector, config.host, config.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready(url)
        await stop.wait()
        await runner.cleanup()
        return collector.stats

    return asyncio.run(main())


@dataclass
class RunningCollector:
    """A collector serving from a background thread (tests, notebooks): ``url``, ``stop()``."""

    url: str
    collector: Collector
    _loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread

    def stop(self) -> None:
        """Stop accepting, land what is pending, and end the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(paths: LakePaths, config: CollectorConfig) -> RunningCollector:
    """Start a collector on ``config.host:config.port`` (0: a free port) in a daemon thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="growthlake-collector", daemon=True)
    thread.start()
    collector = Collector(paths, config)
    try:
        runner, url = asyncio.run_coroutine_threadsafe(_start_site(collector, config.host, config.port), loop).result(30)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise
    return RunningCollector(url, collector, loop, runner, thread)
