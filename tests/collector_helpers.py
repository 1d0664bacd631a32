"""Talking to a collector under test: Segment messages, HTTP posts, raw sockets, what landed."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import requests

from lake.ingest import list_landing_files, list_landing_partitions


def msg(i: int = 0, **fields) -> dict:
    """A valid Segment track message (``fields`` override or add keys)."""
    return {"type": "track", "event": "Feature Used", "userId": f"u{i}", "messageId": str(uuid.uuid4()),
            "properties": {"feature": "api"}, "timestamp": "2026-11-02T05:10:00.000Z"} | fields


def landed(paths) -> list[dict]:
    """Every landed line, parsed (each file must be a complete batch)."""
    out = []
    for key in list_landing_partitions(paths):
        for f in list_landing_files(paths, key):
            data = Path(f.path).read_bytes()
            assert data.endswith(b"\n"), f"{f.relative} is not a complete batch"
            out += [orjson.loads(line) for line in data.splitlines()]
    return out


def post(collector, path: str, body, *, key: str | None, headers: dict | None = None,
         timeout: float = 30) -> requests.Response:
    """POST ``body`` (bytes, or serialized) with the key as the HTTP Basic user (None: no header)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(collector.url + path, data=data, auth=(key, "") if key else None,
                         headers={"Content-Type": "application/json"} | (headers or {}), timeout=timeout)


def address(collector) -> tuple[str, int]:
    host, port = collector.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(collector, timeout: float = 30) -> socket.socket:
    """A raw TCP connection to the collector (the test writes the HTTP itself)."""
    return socket.create_connection(address(collector), timeout=timeout)


def head(path: str, *, key: str | None, length: int | None = None, extra: tuple[str, ...] = ()) -> bytes:
    """A request line and headers, ending with the blank line (the body is the caller's)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *extra]
    if key is not None:
        lines.append("Authorization: Basic " + base64.b64encode(f"{key}:".encode()).decode())
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 30) -> tuple[int, dict[str, str], dict | None]:
    """The next HTTP response on a raw socket: status, headers (lower-case names), JSON body (or
    ``{"text": …}`` for another content type).

    A ``100 Continue`` is a response too (returned as such, with no body).
    """
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed without a (complete) response: {buf!r}")
        buf += chunk
    raw_head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("the connection closed mid-response")
        rest += chunk
    body = rest[:length]
    if "json" in headers.get("content-type", ""):
        return status, headers, orjson.loads(body)
    return status, headers, {"text": body.decode("utf-8", "replace")} if length else None


def closed_by_server(sock: socket.socket, timeout: float = 30) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``timeout`` (reading what is left)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def wait_until(condition: Callable[[], bool], *, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``condition`` (deterministic synchronization with a generous deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.01)


def nested(depth: int) -> bytes:
    """A JSON value nested ``depth`` objects deep (orjson refuses to write those past 254 levels)."""
    return b'{"a":' * depth + b"1" + b"}" * depth
