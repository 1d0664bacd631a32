"""The Segment / RudderStack HTTP API, as the SDKs speak it: bodies in, landing lines out (pure).

``/v1/batch`` takes ``{"batch": [message, …], "sentAt": …, "context": {…}}``; ``/v1/track``,
``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/alias`` and ``/v1/group`` take one message.
Only what makes a request or a message unusable is refused here (a body that is not JSON, a
message without the ids or name its type needs, a size over the limits); everything else is
landed as it is and judged by the tracking plan at ingestion, where a bad line is quarantined, not
lost. A batch is judged message by message: the good messages land, the bad ones are reported
(:class:`Rejection`) — one bad message does not cost the batch.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from lake.errors import RequestRejected
from lake.ingest.segment import SEGMENT_TYPES, corrected_timestamp

__all__ = [
    "ENRICHMENT_BYTES",
    "BodyDecoder",
    "Prepared",
    "Rejection",
    "RequestRejected",
    "decode_body",
    "iso_utc",
    "landing_line",
    "messages_of",
    "parse_body",
    "prepare",
]

ENRICHMENT_BYTES = 512  # what receipt adds to a message (times, ip, id): not counted against its limit
_ID_TYPES = (str, int, float)
_MAX_MESSAGE_ID_ECHO = 200  # a rejected message's id is echoed back at most this long


def iso_utc(ts: datetime) -> str:
    """RFC 3339, UTC, milliseconds, ``Z`` — the shape of Segment's times."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BodyDecoder:
    """A request body, fed chunk by chunk as it arrives, decompressed within a limit.

    ``gzip`` bodies are inflated as they stream in — every member of a multi-member stream (RFC 1952
    allows several; ``cat a.gz b.gz`` makes one) — and decompression stops as soon as the output
    passes ``limit``: a small body that inflates large is refused with 413 after at most ``limit``
    bytes of output, not after inflating it all. Identity bodies are kept as they come.

    Args:
        encoding: the request's ``Content-Encoding`` (``gzip``, ``identity`` or empty).
        limit: the most decoded bytes accepted.

    Raises:
        RequestRejected: 400 for an encoding other than gzip or identity (before any byte is read).
    """

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        if encoding not in ("gzip", "", "identity"):
            raise RequestRejected(400, "invalid_request",
                                  f"Content-Encoding {encoding[:40]!r} is not supported; use gzip")
        self.gzip = encoding == "gzip"
        self.limit = limit
        self.size = 0  # decoded bytes so far
        self._parts: list[bytes] = []
        self._inflater: Any = None
        self._members = 0

    def feed(self, chunk: bytes) -> int:
        """Take the next chunk of the body; return how many decoded bytes it added.

        Raises:
            RequestRejected: 413 past the limit, 400 for a body that is not gzip.
        """
        if not self.gzip:
            self._add(chunk)
            return len(chunk)
        before, data = self.size, chunk
        while data:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                # At most one byte past the limit: enough to know it is over, never more.
                out = self._inflater.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                where = f" (after {self._members} complete member(s))" if self._members else ""
                raise RequestRejected(400, "invalid_request", f"body is not valid gzip{where}: {exc}") from None
            self._add(out)  # raises 413 when over; so a capped call (unconsumed_tail) never gets here
            if self._inflater.eof:  # a member ended: what follows is the next member
                data = self._inflater.unused_data
                self._inflater = None
                self._members += 1
            else:
                data = b""
        return self.size - before

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            what = "decompressed body" if self.gzip else "body"
            raise RequestRejected(413, "payload_too_large", f"{what} exceeds {self.limit // 1024} KB")
        self._parts.append(data)

    def finish(self) -> bytes:
        """The whole decoded body, once every chunk was fed.

        Raises:
            RequestRejected: 400 for a gzip body that is empty or ends inside a member.
        """
        if self.gzip and (self._inflater is not None or self._members == 0):
            raise RequestRejected(400, "invalid_request", "gzip body is truncated" if self._members or
                                  self._inflater is not None else "gzip body is empty")
        data = b"".join(self._parts)
        self._parts = []
        return data


def parse_body(data: bytes) -> dict[str, Any]:
    """A decoded body as a JSON object.

    Raises:
        RequestRejected: 400 when it is not JSON or not an object.
    """
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected(400, "invalid_request", f"body is not JSON ({exc})") from None
    if type(body) is not dict:
        raise RequestRejected(400, "invalid_request", "body must be a JSON object")
    return body


def decode_body(raw: bytes, encoding: str, limit: int) -> dict[str, Any]:
    """Decompress (``gzip`` — every member — or identity, at most ``limit`` bytes) and parse a whole body."""
    decoder = BodyDecoder(encoding, limit)
    decoder.feed(raw)
    return parse_body(decoder.finish())


def _check(msg: Any, where: str) -> None:
    if type(msg) is not dict:
        raise RequestRejected(400, "invalid_request", f"{where} is not a JSON object")
    mtype = msg.get("type")
    if type(mtype) is not str or mtype not in SEGMENT_TYPES:
        shown = mtype if type(mtype) is str else type(mtype).__name__
        raise RequestRejected(400, "invalid_request",
                              f"{where}.type {shown!r:.60} is not one of {sorted(SEGMENT_TYPES)}")
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


def messages_of(body: dict[str, Any], kind: str) -> list[Any]:
    """The messages of a request to ``/v1/<kind>`` (``batch`` or a message type), not yet checked.

    Raises:
        RequestRejected: 400 for a ``/v1/batch`` body without a ``batch`` array.
    """
    if kind == "batch":
        batch = body.get("batch")
        if type(batch) is not list:
            raise RequestRejected(400, "invalid_request", "a /v1/batch body needs a `batch` array of messages")
        return batch
    body["type"] = kind
    return [body]


def landing_line(msg: dict[str, Any], *, received_iso: str, peer_ip: str | None, max_message_bytes: int,
                 where: str) -> bytes:
    """One message enriched on receipt and serialized as its landing line (newline included).

    Raises:
        RequestRejected: 413 for a message over ``max_message_bytes``, 400 for one nested deeper
            than a line can be written (orjson's limit, 254 levels).
    """
    msg.pop("writeKey", None)  # the key authenticates the request; it is never stored
    try:
        if msg.get("messageId") is None:
            # sentAt changes with every retry of a request; the rest of the message does not.
            content = {k: v for k, v in msg.items() if k != "sentAt"}
            digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
            msg["messageId"] = "gl-" + digest[:32]
        client_ts = msg.get("timestamp")
        if client_ts is None:
            msg["timestamp"] = received_iso
        else:
            msg.setdefault("originalTimestamp", client_ts)
            # A time that does not parse (or lies outside the calendar) is landed as the client
            # sent it: ingestion judges it (quarantine: invalid_timestamp), nothing is lost here.
            msg["timestamp"] = (corrected_timestamp(msg["originalTimestamp"], msg.get("sentAt"), received_iso)
                                or client_ts)
        msg["receivedAt"] = received_iso
        ctx = msg.get("context")
        if type(ctx) is not dict:
            ctx = msg["context"] = {}
        if peer_ip and not ctx.get("ip"):
            ctx["ip"] = peer_ip
        line = orjson.dumps(msg)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (or a key it cannot)
        raise RequestRejected(400, "invalid_request", f"{where} cannot be written as one JSON line ({exc}): "
                              "nest it less than 250 levels deep") from None
    if len(line) > max_message_bytes + ENRICHMENT_BYTES:
        raise RequestRejected(413, "payload_too_large", f"{where} is {len(line):,} bytes; "
                              f"the limit is {max_message_bytes // 1024} KB per message")
    return line + b"\n"


@dataclass(frozen=True)
class Rejection:
    """One message of a request that was not landed, and why (sent back to the client)."""

    index: int | None  # its position in ``batch`` (None for a single-message endpoint)
    message_id: str | None  # its ``messageId`` when it had a usable one
    status: int  # 400, or 413 for a message over the size limit
    code: str
    message: str
    error: Exception | None = field(default=None, repr=False, compare=False)  # an unforeseen failure (a bug)

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "messageId": self.message_id, "code": self.code, "message": self.message}


@dataclass
class Prepared:
    """A request's landing lines and the messages refused, in the order they came."""

    lines: list[bytes] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def failure(self) -> RequestRejected | None:
        """The error to answer when no message could be landed (None: land the lines, answer 200)."""
        if self.lines or not self.rejected:
            return None
        status = 413 if all(r.status == 413 for r in self.rejected) else 400
        reasons = "; ".join(r.message for r in self.rejected[:3])
        more = f" (and {len(self.rejected) - 3} more)" if len(self.rejected) > 3 else ""
        code = self.rejected[0].code if len(self.rejected) == 1 else "invalid_request"
        return RequestRejected(status, code, reasons + more)


def _message_id(msg: Any) -> str | None:
    value = msg.get("messageId") if type(msg) is dict else None
    if type(value) in _ID_TYPES and value != "":
        return str(value)[:_MAX_MESSAGE_ID_ECHO]
    return None


def prepare(body: dict[str, Any], kind: str, *, received_iso: str, peer_ip: str | None,
            max_message_bytes: int) -> Prepared:
    """The landing lines of a request to ``/v1/<kind>``, each message judged on its own.

    The batch's own ``sentAt`` and ``context`` apply to each message that does not set them. A
    message that is refused becomes a :class:`Rejection` and the others still land — as Segment's
    API does, which answers 200 and drops the bad ones (growthlake says which, in the answer).

    Raises:
        RequestRejected: the body as a whole is unusable (a batch that is not an array).
    """
    messages = messages_of(body, kind)
    sent_at, shared = (body.get("sentAt"), body.get("context")) if kind == "batch" else (None, None)
    out = Prepared()
    for i, msg in enumerate(messages):
        where = f"batch[{i}]" if kind == "batch" else "body"
        given_id = _message_id(msg)  # as the client sent it (landing_line derives one when missing)
        try:
            _check(msg, where)
            if sent_at is not None and "sentAt" not in msg:
                msg["sentAt"] = sent_at
            if type(shared) is dict:
                ctx = msg.get("context")
                msg["context"] = shared | ctx if type(ctx) is dict else dict(shared)
            out.lines.append(landing_line(msg, received_iso=received_iso, peer_ip=peer_ip,
                                          max_message_bytes=max_message_bytes, where=where))
        except RequestRejected as exc:
            out.rejected.append(Rejection(i if kind == "batch" else None, given_id, exc.status, exc.code,
                                          exc.message))
        except Exception as exc:  # noqa: BLE001 - a message nobody foresaw is refused, not a 500 for all
            out.rejected.append(Rejection(i if kind == "batch" else None, given_id, 400, "invalid_request",
                                          f"{where} could not be processed ({type(exc).__name__})", error=exc))
    return out
