"""The collector under abuse, over real sockets on 127.0.0.1: slow and keyless clients, compressed
bombs, slow headers, too many connections, clients that hang up. Each test holds the collector in
the state it checks through deterministic synchronization (a held commit, a counter, a response),
with generous deadlines — never a sleep that must be long enough."""

from __future__ import annotations

import gzip
import logging
import secrets
import socket
import struct
import threading
import zlib

import orjson
import pytest
import requests

from lake.collector import CollectorConfig, start_in_thread
from tests.collector_helpers import (
    closed_by_server,
    connect,
    head,
    landed,
    msg,
    post,
    read_response,
    wait_until,
)

KEY = secrets.token_hex(16)
SEGMENT_BATCH = 512_000  # what the starvation probe announced: Segment's 500 KB batch limit, exactly
# The probe held 132 such connections against the 64 MB default; two fill a budget of two batches.


def _config(**overrides) -> CollectorConfig:
    return CollectorConfig(**{"write_keys": frozenset({KEY}), "port": 0, "linger_ms": 5} | overrides)


class _HeldCommits:
    """Holds the collector's landing writes until released: requests stay admitted and unlanded."""

    def __init__(self, running, monkeypatch) -> None:
        self.started = threading.Event()
        self._release = threading.Event()
        writer = running.collector.writer
        real = writer.write

        def write(hours):
            self.started.set()
            assert self._release.wait(60), "the test never released the commit"
            return real(hours)

        monkeypatch.setattr(writer, "write", write)

    def release(self) -> None:
        self._release.set()


# -- memory: the in-flight budget ------------------------------------------------------------------
def test_keyless_clients_announcing_large_bodies_get_401_unread_and_do_not_starve_batches(paths):
    # The probe: connections without an Authorization header announcing 500 KB bodies and sending a
    # byte now and then reserved the whole budget; every real batch got 429 while they were held.
    with start_in_thread(paths, _config(max_inflight_bytes=2 * SEGMENT_BATCH)) as running:
        slow = [connect(running) for _ in range(4)]
        for s in slow:
            s.sendall(head("/v1/batch", key=None, length=SEGMENT_BATCH) + b"{")
        wait_until(lambda: running.collector.stats.requests >= 4, what="the slow requests' headers read")
        res = post(running, "/v1/batch", {"batch": [msg(1)]}, key=KEY)
        assert res.status_code == 200, res.text
        for s in slow:  # each was refused at once, without its body being sent
            status, headers, body = read_response(s)
            assert status == 401 and "Authorization" in body["message"], body
            assert headers["www-authenticate"].startswith("Basic")
            s.close()
    assert len(landed(paths)) == 1


def test_a_slow_body_holds_only_the_bytes_it_sent(paths):
    # Same clients with a valid key: the budget counts bytes as they arrive, not the announced length.
    with start_in_thread(paths, _config(max_inflight_bytes=2 * SEGMENT_BATCH)) as running:
        slow = [connect(running) for _ in range(4)]
        for s in slow:
            s.sendall(head("/v1/batch", key=KEY, length=SEGMENT_BATCH) + b"{")
        wait_until(lambda: running.collector.stats.requests >= 4, what="the slow requests' headers read")
        res = post(running, "/v1/batch", {"batch": [msg(1)]}, key=KEY)
        assert res.status_code == 200, res.text
        assert running.collector.inflight_bytes <= 4  # one byte from each slow client
        for s in slow:
            s.close()
    assert len(landed(paths)) == 1


def test_the_budget_counts_decompressed_bytes(paths, monkeypatch):
    # The probe: a 1 MB cap let memory grow by hundreds of MB, counting gzip bodies compressed.
    batch = [msg(i, properties={"feature": "api", "pad": "p" * 4000}) for i in range(10)]  # ~42 KB of JSON
    body = gzip.compress(orjson.dumps({"batch": batch}))
    assert len(body) < 2_000
    config = _config(max_batch_bytes=64 * 1024, max_inflight_bytes=64 * 1024)
    with start_in_thread(paths, config) as running:
        held = _HeldCommits(running, monkeypatch)
        first: list[requests.Response] = []
        t = threading.Thread(target=lambda: first.append(
            post(running, "/v1/batch", body, key=KEY, headers={"Content-Encoding": "gzip"})))
        t.start()
        try:
            assert held.started.wait(30), "the first request never reached its commit"
            again = gzip.compress(orjson.dumps({"batch": [msg(i, properties={"pad": "q" * 4000}) for i in range(10)]}))
            refused = post(running, "/v1/batch", again, key=KEY, headers={"Content-Encoding": "gzip"})
            assert running.collector.inflight_bytes >= 40_000  # the first, decompressed, while it waits to land
        finally:
            held.release()
            t.join(60)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1", refused.text
        assert first[0].status_code == 200
        assert running.collector.inflight_bytes == 0
    assert len(landed(paths)) == 10


@pytest.mark.parametrize("members", [1, 2])
def test_a_gzip_bomb_is_refused_as_soon_as_it_inflates_past_the_limit(paths, members):
    # 50 MB of spaces compress to ~50 KB; the first 8 KB already inflate past the 500 KB limit. The
    # answer must come before the client sent the rest (decompression stops; the rest is never read).
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = deflate.compress(b'{"batch": [' + b" " * (50 << 20)) + deflate.flush()
    prefix = gzip.compress(b'{"batch": [') if members == 2 else b""  # the bomb as a second member
    body = prefix + bomb
    with start_in_thread(paths, _config()) as running:
        s = connect(running)
        s.sendall(head("/v1/batch", key=KEY, length=len(body), extra=("Content-Encoding: gzip",)) + body[:8192])
        status, _, answer = read_response(s)
        assert status == 413 and "decompressed body exceeds 500 KB" in answer["message"], answer
        s.close()
        assert running.collector.inflight_bytes == 0
    assert landed(paths) == []


# -- time: slow headers, slow bodies ----------------------------------------------------------------
def test_slow_request_headers_are_cut_off(paths):
    with start_in_thread(paths, _config(header_timeout_s=1)) as running:
        trickling = connect(running)
        trickling.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing more
        silent = connect(running)  # connects, never sends a byte
        for s in (trickling, silent):
            status, _, answer = read_response(s)
            assert status == 408 and "headers did not arrive within 1 s" in answer["message"]
            assert closed_by_server(s)
            s.close()
        assert running.collector.stats.header_timeouts == 2
        # A request on a kept-alive connection is judged from its own first byte, not the connection's age.
        kept = connect(running)
        body = orjson.dumps({"batch": [msg(1)]})
        for i in range(2):
            kept.sendall(head("/v1/batch", key=KEY, length=len(body)) + body)
            status, _, answer = read_response(kept)
            assert status == 200, answer
            if i == 0:  # idle longer than the header timeout, between two requests: still open
                assert not closed_by_server(kept, timeout=2.5)
        kept.close()
    assert len(landed(paths)) == 2


def test_a_body_that_does_not_arrive_in_time_is_408(paths):
    with start_in_thread(paths, _config(body_timeout_s=1)) as running:
        s = connect(running)
        s.sendall(head("/v1/batch", key=KEY, length=1000) + b'{"batch": [')
        status, _, answer = read_response(s)
        assert status == 408 and "body did not arrive within 1 s (11 bytes came)" in answer["message"], answer
        s.close()
        assert running.collector.inflight_bytes == 0
    assert landed(paths) == []


# -- connections --------------------------------------------------------------------------------
def test_connections_per_address_are_capped(paths):
    with start_in_thread(paths, _config(max_connections_per_ip=3, header_timeout_s=120)) as running:
        held = [connect(running) for _ in range(3)]  # accepted in order: these three count first
        extra = connect(running)
        status, headers, answer = read_response(extra)
        assert status == 429 and answer["code"] == "too_many_connections" and headers["retry-after"] == "1"
        assert closed_by_server(extra)
        extra.close()
        assert running.collector.stats.refused_connections == 1
        held[0].close()  # one slot frees up once the collector sees the close

        def one_gets_through() -> bool:
            try:
                return post(running, "/v1/batch", {"batch": [msg(1)]}, key=KEY).status_code == 200
            except requests.ConnectionError:  # refused and closed before the request was read
                return False

        wait_until(one_gets_through, what="a request after a held connection closed")
        for s in held[1:]:
            s.close()
    assert len(landed(paths)) == 1


def test_a_bad_key_is_refused_before_the_client_sends_its_body(paths):
    with start_in_thread(paths, _config()) as running:
        for key in ("not-a-key-not-a-key", None):  # a wrong key; no key and a body too large to search
            s = connect(running)
            s.sendall(head("/v1/batch", key=key, length=SEGMENT_BATCH, extra=("Expect: 100-continue",)))
            status, _, answer = read_response(s)  # instead of "100 Continue"
            assert status == 401 and answer["code"] == "unauthorized", (status, answer)
            s.close()
        s = connect(running)  # a good key: told to go on, and the body is taken
        body = orjson.dumps({"batch": [msg(1)]})
        s.sendall(head("/v1/batch", key=KEY, length=len(body), extra=("Expect: 100-continue",)))
        assert read_response(s)[0] == 100
        s.sendall(body)
        assert read_response(s)[0] == 200
        s.close()
    assert len(landed(paths)) == 1


@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_client_hanging_up_mid_body_is_one_log_line(paths, caplog, how):
    caplog.set_level(logging.INFO)
    with start_in_thread(paths, _config()) as running:
        s = connect(running)
        s.sendall(head("/v1/batch", key=KEY, length=10_000) + b'{"batch": [')
        wait_until(lambda: running.collector.stats.requests >= 1, what="the request's headers read")
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        s.close()
        wait_until(lambda: any(r.name.startswith(("growthlake", "aiohttp")) for r in caplog.records),
                   what="the hang-up logged")
        assert post(running, "/v1/batch", {"batch": [msg(1)]}, key=KEY).status_code == 200
    records = [r for r in caplog.records if r.name.startswith(("growthlake", "aiohttp"))]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "hung up after 11 body byte(s)" in records[0].getMessage()
    assert records[0].exc_info is None and records[0].levelno == logging.INFO
    assert running.collector.stats.hangups == 1
    assert len(landed(paths)) == 1


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
], ids=["header-without-colon", "header-too-long", "negative-length", "length-and-chunked"])
def test_a_request_that_is_not_http_is_400_and_one_log_line(paths, caplog, request_bytes):
    caplog.set_level(logging.INFO)
    with start_in_thread(paths, _config()) as running:
        s = connect(running)
        s.sendall(request_bytes)
        status, _, _ = read_response(s)
        assert status == 400
        s.close()
        wait_until(lambda: any(r.name.startswith(("growthlake", "aiohttp")) for r in caplog.records),
                   what="the bad request logged")
    records = [r for r in caplog.records if r.name.startswith(("growthlake", "aiohttp"))]
    assert len(records) == 1 and records[0].exc_info is None, [r.getMessage() for r in records]
    assert "is not valid HTTP" in records[0].getMessage()
