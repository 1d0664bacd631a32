"""The Segment / RudderStack HTTP API, as the SDKs speak it: bodies in, landing lines out (pure).

``/v1/batch`` takes ``{"batch": [message, …], "sentAt": …, "context": {…}}``; ``/v1/track``,
``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/alias`` and ``/v1/group`` take one message.
Only what makes a request unusable is rejected here (a body that is not JSON, a message without
the ids or name its type needs, a size over the limits); everything else is landed as it is and
judged by the tracking plan at ingestion, where a bad line is quarantined, not lost.

Each message is landed in the Segment object-storage format — the same lines the Segment S3 and
RudderStack destinations dump — enriched as Segment's API does on receipt: ``receivedAt``,
``sentAt``, the client's ``timestamp`` kept as ``originalTimestamp`` and corrected for the
device's clock skew, ``context.ip`` from the connection when the SDK did not set one, and a
``messageId`` when it is missing (a hash of the message, so a retried request keeps its id).
The conversion to the canonical model happens in one place only: ingestion
(:mod:`lake.ingest.segment`).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from lake.ingest.segment import SEGMENT_TYPES, corrected_timestamp

__all__ = ["ENRICHMENT_BYTES", "RequestRejected", "decode_body", "iso_utc", "landing_line", "messages_of"]

ENRICHMENT_BYTES = 512  # what receipt adds to a message (times, ip, id): not counted against its limit
_ID_TYPES = (str, int, float)


@dataclass
class RequestRejected(Exception):
    """A request the collector refuses: HTTP status, Segment-style error code and a reason."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def iso_utc(ts: datetime) -> str:
    """RFC 3339, UTC, milliseconds, ``Z`` — the shape of Segment's times."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode_body(raw: bytes, encoding: str, limit: int) -> Any:
    """Decompress (``gzip`` or identity, at most ``limit`` bytes) and parse a request body."""
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise RequestRejected(400, "invalid_request", f"body is not valid gzip ({exc})") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise RequestRejected(413, "payload_too_large", f"decompressed body exceeds {limit // 1024} KB")
        if not inflater.eof:
            raise RequestRejected(400, "invalid_request", "gzip body is truncated")
    elif encoding in ("", "identity"):
        data = raw
    else:
        raise RequestRejected(400, "invalid_request", f"Content-Encoding {encoding!r} is not supported; use gzip")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected(400, "invalid_request", f"body is not JSON ({exc})") from None
    if type(body) is not dict:
        raise RequestRejected(400, "invalid_request", "body must be a JSON object")
    return body


def _check(msg: Any, where: str) -> None:
    if type(msg) is not dict:
        raise RequestRejected(400, "invalid_request", f"{where} is not a JSON object")
    mtype = msg.get("type")
    if mtype not in SEGMENT_TYPES:
        raise RequestRejected(400, "invalid_request", f"{where}.type {mtype!r} is not one of {sorted(SEGMENT_TYPES)}")
    for key in ("userId", "anonymousId", "previousId", "groupId", "messageId"):
        value = msg.get(key)
        if value is not None and (type(value) not in _ID_TYPES or value == ""):
            raise RequestRejected(400, "invalid_request", f"{where}.{key} must be a non-empty string")
    if mtype == "alias":
        if msg.get("userId") is None or msg.get("previousId") is None:
            raise RequestRejected(400, "invalid_request", f"{where}: an alias needs userId and previousId")
    elif msg.get("userId") is None and msg.get("anonymousId") is None:
        raise RequestRejected(400, "invalid_request", f"{where} needs a userId or an anonymousId")
    if mtype == "track" and (type(msg.get("event")) is not str or not msg["event"]):
        raise RequestRejected(400, "invalid_request", f"{where}: a track call needs an event name")
    if mtype == "group" and msg.get("groupId") is None:
        raise RequestRejected(400, "invalid_request", f"{where}: a group call needs a groupId")


def messages_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The messages of a request to ``/v1/<kind>`` (``batch`` or a message type), checked.

    The batch's own ``sentAt`` and ``context`` apply to each message that does not set them.
    """
    if kind == "batch":
        batch = body.get("batch")
        if type(batch) is not list:
            raise RequestRejected(400, "invalid_request", "a /v1/batch body needs a `batch` array of messages")
        sent_at, shared = body.get("sentAt"), body.get("context")
        for i, msg in enumerate(batch):
            _check(msg, f"batch[{i}]")
            if sent_at is not None and "sentAt" not in msg:
                msg["sentAt"] = sent_at
            if type(shared) is dict:
                ctx = msg.get("context")
                msg["context"] = shared | ctx if type(ctx) is dict else dict(shared)
        return batch
    body["type"] = kind
    _check(body, "body")
    return [body]


def landing_line(msg: dict[str, Any], *, received_iso: str, peer_ip: str | None, max_message_bytes: int,
                 where: str) -> bytes:
    """One message enriched on receipt and serialized as its landing line (newline included)."""
    msg.pop("writeKey", None)  # the key authenticates the request; it is never stored
    if msg.get("messageId") is None:
        # sentAt changes with every retry of a request; the rest of the message does not.
        content = {k: v for k, v in msg.items() if k != "sentAt"}
        msg["messageId"] = "gl-" + hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    client_ts = msg.get("timestamp")
    if client_ts is None:
        msg["timestamp"] = received_iso
    else:
        msg.setdefault("originalTimestamp", client_ts)
        msg["timestamp"] = corrected_timestamp(msg["originalTimestamp"], msg.get("sentAt"), received_iso) or client_ts
    msg["receivedAt"] = received_iso
    ctx = msg.get("context")
    if type(ctx) is not dict:
        ctx = msg["context"] = {}
    if peer_ip and not ctx.get("ip"):
        ctx["ip"] = peer_ip
    line = orjson.dumps(msg)
    if len(line) > max_message_bytes + ENRICHMENT_BYTES:
        raise RequestRejected(413, "payload_too_large",
                              f"{where} is {len(line):,} bytes; the limit is {max_message_bytes // 1024} KB per message")
    return line + b"\n"
