"""The collector's HTTP service (aiohttp): authenticate, bound memory, land durably, then acknowledge.

A request is answered ``200 {"success": true}`` only after every message it carried is in a batch
file that was fsynced and renamed into the landing zone (:class:`~lake.collector.writer.LandingWriter`).
Requests are grouped: a commit writes one file per landing hour for everything pending, and starts
at most once per ``linger_ms`` (at once when the collector was idle), so the number of landing
files grows with time — at most ``1000 / linger_ms`` per second — not with traffic.

What a request goes through, in order (each step refuses with a 4xx and a reason, and a refusal
before the body is read closes the connection without reading it):

1. the connection guard (:mod:`lake.collector.guard`): at most ``max_connections_per_ip`` open
   connections per address (429), request line and headers within ``header_timeout_s`` (408);
2. the ``Authorization`` header, when there is one: HTTP Basic with a known write key, or 401 at
   once. Without one the key may be ``writeKey`` in the body (analytics.js), so the body is read —
   but only when it is at most ``max_unauthenticated_bytes`` (401 at once otherwise);
3. the size the client announces (413), the encoding (400), and memory (429 with Retry-After when
   the collector already holds ``max_inflight_bytes``);
4. the body, within ``body_timeout_s`` (408), decompressed as it arrives — every gzip member —
   and counted against ``max_inflight_bytes`` as decompressed bytes, as they arrive (413 past the
   request's limit, 429 past the collector's budget: a client that announces a large body but
   sends it slowly holds only what it sent);
5. the key in the body when there was no header (401), then each message on its own: the good
   ones land, the others are listed in the answer (``"rejected"``: index, messageId, reason); a
   request none of whose messages can land is 400 (413 when all were too large).

A client that hangs up mid-body costs one log line. No input is answered 500: a failure nobody
foresaw while judging a message rejects that message (logged with its traceback, as a bug).
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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from lake.collector.config import CollectorConfig
from lake.collector.guard import ConnectionGuard
from lake.collector.protocol import BodyDecoder, Prepared, RequestRejected, iso_utc, parse_body, prepare
from lake.collector.writer import LandingWriter
from lake.landing import partition_key
from lake.paths import LakePaths

__all__ = ["Collector", "CollectorStats", "RunningCollector", "serve", "start_in_thread"]

log = logging.getLogger("growthlake.collector")
_KINDS = ("batch", "track", "identify", "page", "screen", "alias", "group")
_FLUSH_BYTES = 8 << 20  # commit at once when this much is pending, without waiting for the linger
_CHUNK = 1 << 16
_HUNG_UP = 499  # nginx's "client closed request": never sent (nobody is listening), only counted


@dataclass
class CollectorStats:
    """Counters since start (one process)."""

    requests: int = 0
    acknowledged_messages: int = 0
    files_landed: int = 0
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> requests
    rejected_messages: int = 0  # messages refused inside requests that landed others (or none)
    hangups: int = 0  # clients that closed the connection mid-body
    refused_connections: int = 0  # over the per-address connection cap
    header_timeouts: int = 0  # connections closed for a request header that did not arrive in time


class _Held:
    """The bytes one request holds against the in-flight budget."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class Collector:
    """The Segment-compatible endpoints over one landing zone.

    Args:
        paths: the lake (a local storage root).
        config: keys, limits, timeouts and address.
    """

    def __init__(self, paths: LakePaths, config: CollectorConfig) -> None:
        self.paths = paths
        self.config = config
        self.writer = LandingWriter(paths)
        self.stats = CollectorStats()
        self.guard = ConnectionGuard(max_per_ip=config.max_connections_per_ip,
                                     header_timeout_s=config.header_timeout_s, retry_after_s=config.retry_after_s,
                                     on_refused=self._count_refused, on_header_timeout=self._count_header_timeout)
        self._inflight = 0
        self._pending: list[tuple[str, list[bytes], asyncio.Future]] = []
        self._pending_bytes = 0
        self._last_commit = float("-inf")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthlake-collector-io")
        self._closing = False

    @property
    def inflight_bytes(self) -> int:
        """Decompressed request bytes held now (being received, or waiting to be landed)."""
        return self._inflight

    def _count_refused(self) -> None:
        self.stats.refused_connections += 1

    def _count_header_timeout(self) -> None:
        self.stats.header_timeouts += 1

    # -- the aiohttp application ----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._track_connection])
        for kind in _KINDS:
            app.router.add_post(f"/v1/{kind}", self._handler(kind), expect_handler=self._expect_handler(kind))
        app.router.add_get("/health", self._health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    @web.middleware
    async def _track_connection(self, request: web.Request,
                                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        self.guard.request_started(request.transport)
        response = None
        try:
            response = await handler(request)
            return response
        finally:
            self.guard.request_finished(request.transport,
                                        keep_alive=response is None or response.keep_alive is not False)

    async def _start(self, _app: web.Application) -> None:
        removed = await asyncio.get_running_loop().run_in_executor(self._io, self.writer.open)
        if removed:
            log.warning("removed %d unacknowledged temp file(s) of a collector that died", removed)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._commit_loop(), name="growthlake-collector-commit")

    async def _stop(self, _app: web.Application) -> None:
        self._closing = True  # new requests get 503; what is pending is landed (and acknowledged) first
        if self._task is not None:
            assert self._wake is not None  # made with the task
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
                prepared = await self._receive(request, kind)
            except RequestRejected as exc:
                if exc.status == _HUNG_UP:  # nobody to answer: aiohttp drops this response quietly
                    return web.Response(status=400)
                return self._refuse(request, exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not become a 500 the SDK retries forever
                log.exception("request from %s to /v1/%s failed unexpectedly (a collector bug)", request.remote, kind)
                return self._refuse(request, RequestRejected(
                    400, "invalid_request", f"the collector could not process this request ({type(exc).__name__})"))
            self._report_rejections(request, kind, prepared)
            failure = prepared.failure()
            if failure is not None:
                return self._refuse(request, failure, prepared)
            self.stats.acknowledged_messages += len(prepared.lines)
            answer: dict = {"success": True}
            if prepared.rejected:
                answer["rejected"] = [r.as_json() for r in prepared.rejected]
            return web.json_response(answer)

        return handle

    def _expect_handler(self, kind: str) -> Callable:
        """``Expect: 100-continue``: the header checks run before the client is told to send the body."""

        async def expect(request: web.Request) -> web.StreamResponse | None:
            self.guard.request_started(request.transport)  # middlewares run after this hook
            try:
                self._admit(request, kind)
                expectation = request.headers.get("Expect", "")
                if request.version != HttpVersion11 or expectation.lower() != "100-continue":
                    raise RequestRejected(417, "expectation_failed", f"Expect {expectation[:40]!r} is not "
                                          "supported (only 100-continue, in HTTP/1.1)")
            except RequestRejected as exc:
                self.stats.requests += 1
                response = self._refuse(request, exc)
                self.guard.request_finished(request.transport, keep_alive=False)
                return response
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the 100 is not the response: aiohttp may still send one
            return None

        return expect

    def _refuse(self, request: web.Request, exc: RequestRejected, prepared: Prepared | None = None) -> web.Response:
        self.stats.rejected[exc.status] = self.stats.rejected.get(exc.status, 0) + 1
        headers = {"Retry-After": str(self.config.retry_after_s)} if exc.status in (429, 503) else {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="growthlake"'
        answer: dict = {"code": exc.code, "message": exc.message}
        if prepared is not None and any(r.index is not None for r in prepared.rejected):  # a batch: each listed
            answer["rejected"] = [r.as_json() for r in prepared.rejected]
        response = web.json_response(answer, status=exc.status, headers=headers)
        if not request.content.at_eof():
            # Refused before its body was read: do not read it (aiohttp drains at most its lingering
            # time, discarding) and close the connection — the next request needs a fresh one.
            response.force_close()
        return response

    def _report_rejections(self, request: web.Request, kind: str, prepared: Prepared) -> None:
        if not prepared.rejected:
            return
        self.stats.rejected_messages += len(prepared.rejected)
        for r in prepared.rejected:
            if r.error is not None:
                log.error("a message from %s could not be processed (a collector bug; it was refused): %s",
                          request.remote, r.message, exc_info=r.error)
        if prepared.lines:
            first = prepared.rejected[0]
            log.info("/v1/%s from %s: landed %d message(s), refused %d (first: %s)", kind, request.remote,
                     len(prepared.lines), len(prepared.rejected), first.message)

    # -- one request ----------------------------------------------------------------------------
    def _header_key(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        if not header.isascii():
            raise RequestRejected(401, "unauthorized", "the Authorization header is not ASCII; use HTTP Basic "
                                  "auth with the write key as the user name")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise RequestRejected(401, "unauthorized", "use HTTP Basic auth with the write key as the user name")
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            raise RequestRejected(401, "unauthorized", "malformed Basic credentials") from None
        if not self.config.accepts(user):
            raise RequestRejected(401, "unauthorized", "unknown write key")
        return user

    def _admit(self, request: web.Request, kind: str) -> tuple[str | None, int, BodyDecoder]:
        """The checks that need only the headers: ``(header key or None, most body bytes to read, decoder)``."""
        key = self._header_key(request)
        if self._closing:
            raise RequestRejected(503, "unavailable", "the collector is shutting down; retry")
        limit = self.config.max_batch_bytes if kind == "batch" else self.config.max_message_bytes
        length = request.content_length
        cap = limit
        if key is None:
            cap = min(limit, self.config.max_unauthenticated_bytes)
            if length is not None and length > cap:
                raise RequestRejected(401, "unauthorized", (
                    f"no Authorization header, and the body ({length:,} bytes) is larger than the "
                    f"{cap // 1024} KB read to find a writeKey in it; send the write key as the HTTP Basic user name"))
        if length is not None and length > limit:
            raise RequestRejected(413, "payload_too_large",
                                  f"body is {length:,} bytes; the limit is {limit // 1024} KB")
        decoder = BodyDecoder(request.headers.get("Content-Encoding", ""), limit)
        # What the client announces is a lower bound of what it will hold once decompressed.
        if self._inflight and self._inflight + (length or 0) > self.config.max_inflight_bytes:
            raise RequestRejected(429, "too_many_requests", "the collector is busy landing earlier requests; retry")
        return key, cap, decoder

    def _charge(self, held: _Held, n: int) -> None:
        """Count ``n`` more decompressed bytes of a request against the in-flight budget (429 past it).

        A request alone may exceed the budget (the config keeps it at least one batch); one that
        would pass it while others hold bytes is refused, to be retried once they landed.
        """
        if not n:
            return
        if self._inflight + n > self.config.max_inflight_bytes and self._inflight > held.bytes:
            raise RequestRejected(429, "too_many_requests", "the collector is busy landing earlier requests; retry")
        self._inflight += n
        held.bytes += n

    async def _receive(self, request: web.Request, kind: str) -> Prepared:
        key, cap, decoder = self._admit(request, kind)
        held = _Held()
        try:
            await self._read(request, decoder, held, cap, authenticated=key is not None)
            body = parse_body(decoder.finish())
            if key is None:  # analytics.js-style: the key in the body
                given = body.get("writeKey")
                if type(given) is not str or not self.config.accepts(given):
                    raise RequestRejected(401, "unauthorized", "no Authorization header, and no known writeKey in the "
                                          "body; send the write key as the HTTP Basic user name")
            received = datetime.now(UTC)
            prepared = prepare(body, kind, received_iso=iso_utc(received), peer_ip=request.remote,
                               max_message_bytes=self.config.max_message_bytes)
            del body
            if prepared.lines and prepared.failure() is None:
                await self._land(partition_key(received), prepared.lines)
            return prepared
        finally:
            self._inflight -= held.bytes

    async def _read(self, request: web.Request, decoder: BodyDecoder, held: _Held, cap: int, *,
                    authenticated: bool) -> None:
        got = 0
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                async for chunk in request.content.iter_chunked(_CHUNK):
                    got += len(chunk)
                    if got > cap:
                        if not authenticated:
                            raise RequestRejected(401, "unauthorized", (
                                f"no Authorization header, and the body is larger than the {cap // 1024} KB read "
                                "to find a writeKey in it; send the write key as the HTTP Basic user name"))
                        raise RequestRejected(413, "payload_too_large", f"body exceeds {cap // 1024} KB")
                    self._charge(held, decoder.feed(chunk))
        except TimeoutError:
            log.info("%s sent %d body byte(s) of %s in %g s, the body timeout: answered 408", request.remote, got,
                     request.path, self.config.body_timeout_s)
            raise RequestRejected(408, "request_timeout", f"the body did not arrive within "
                                  f"{self.config.body_timeout_s:g} s ({got:,} bytes came); retry") from None
        except (ConnectionError, web.RequestPayloadError) as exc:
            transport = request.transport
            if isinstance(exc, ConnectionError) or transport is None or transport.is_closing():
                self.stats.hangups += 1
                log.info("%s hung up after %d body byte(s) of %s (%s)", request.remote, got,
                         request.path, exc or type(exc).__name__)
                raise RequestRejected(_HUNG_UP, "client_closed_request", "the client hung up") from None
            raise RequestRejected(400, "invalid_request", f"the body is not valid HTTP framing ({exc})") from None

    async def _land(self, hour: str, lines: list[bytes]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((hour, lines, future))
        self._pending_bytes += sum(map(len, lines))
        assert self._wake is not None  # made at startup, before any request
        self._wake.set()
        try:
            # Shielded: a client that hangs up does not un-land its events (a retry dedups on messageId).
            await asyncio.shield(future)
        except Exception as exc:  # noqa: BLE001 - any failure to land is the client's cue to retry
            detail = getattr(exc, "strerror", None) or exc
            raise RequestRejected(503, "unavailable", f"landing the events failed ({detail}); retry") from None

    # -- group commit ---------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        assert self._wake is not None  # made before this task
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
        assert self._wake is not None  # made at startup
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


class _HttpLog:
    """aiohttp's server log, as the collector wants it: a request that is not valid HTTP (a garbled
    line, a header too long, a bad Content-Length — aiohttp answers each 400 with the reason) is one
    line, not a traceback; anything else aiohttp reports keeps its traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    def exception(self, msg: str, *args, exc_info=None, **kw) -> None:
        if isinstance(exc_info, HttpProcessingError):
            detail = (exc_info.message or "").strip().splitlines()
            self._log.info("a request from %s is not valid HTTP (answered 400): %.200s", args[0] if args else "?",
                           detail[0] if detail else type(exc_info).__name__)
        else:
            self._log.exception(msg, *args, exc_info=exc_info if exc_info is not None else True, **kw)

    def __getattr__(self, name: str):  # debug, warning, …: unchanged
        return getattr(self._log, name)


class _GuardedSite(web.SockSite):
    """aiohttp's socket site, with every connection's protocol behind the collector's guard."""

    __slots__ = ("_guard",)

    def __init__(self, runner: web.AppRunner, sock: socket.socket, guard: ConnectionGuard) -> None:
        super().__init__(runner, sock)
        self._guard = guard

    async def start(self) -> None:
        # SockSite.start with the protocol factory wrapped (BaseSite.start registers the site; stop()
        # closes self._server, which is why it is set here).
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), sock=self._sock, backlog=self._backlog)


async def _start_site(collector: Collector, host: str, port: int) -> tuple[web.AppRunner, str]:
    config = collector.config
    # The body is decompressed by BodyDecoder, within the size limit (not by aiohttp, unbounded);
    # keepalive_timeout: how long an idle kept-alive connection may wait for its next request.
    runner = web.AppRunner(collector.app(), access_log=None, auto_decompress=False,
                           keepalive_timeout=config.idle_timeout_s, logger=_HttpLog(log))
    await runner.setup()
    sock = _bind(host, port)
    await _GuardedSite(runner, sock, collector.guard).start()
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


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
        # What outlives the cleanup (aiohttp draining the unread body of a connection already gone)
        # is cancelled, as asyncio.run does, rather than destroyed pending with the loop.
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop).result(timeout=60)
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
        started = asyncio.run_coroutine_threadsafe(_start_site(collector, config.host, config.port), loop)
        runner, url = started.result(30)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise
    return RunningCollector(url, collector, loop, runner, thread)
