"""Segment / RudderStack messages -> canonical envelope columns, for the column-wise normalizer.

What :class:`lake.ingest.segment.SegmentMapper` does to one message, done to a batch: the fields that
are copied or chosen per message — ``messageId``, ``userId``, ``anonymousId`` (an alias's
``previousId``), ``context.ip`` / ``userAgent`` / ``locale`` / ``sessionId``, ``receivedAt``, and the
time (``timestamp``, else Segment's clock-skew correction ``receivedAt - (sentAt -
originalTimestamp)`` truncated to milliseconds) — become Arrow columns; what depends on the
message's shape — the event name, the properties (traits, page fields, renames, campaign) and the
consent categories — is mapped by the reference mapper itself, once per distinct combination of
the fields it reads (``type``, ``event``, ``properties``, ``traits``, ``name``, ``category``,
``groupId``, ``context.traits`` / ``campaign`` / ``consent`` / ``consentManagement``).

A message whose copied fields are not strings (a numeric ``messageId``, say), whose time is missing
and not of the column-parsed form, or whose fields orjson cannot write, is left out: the normalizer
hands its line to the per-line path, which maps it with the same mapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lake.ingest.segment import SegmentMapper

__all__ = ["SegmentColumns", "map_segment"]

_STRINGS = ("type", "messageId", "event", "userId", "anonymousId", "previousId", "timestamp", "originalTimestamp",
            "sentAt", "receivedAt")
_CTX_STRINGS = ("ip", "userAgent", "locale", "sessionId")
_STR = pa.string()
SEGMENT_TYPE = pa.struct([*((f, _STR) for f in _STRINGS), ("context", pa.struct([(f, _STR) for f in _CTX_STRINGS]))])
# What the mapper reads besides the copied fields: its output depends on nothing else.
_SHAPE = ("type", "event", "properties", "traits", "name", "category", "groupId")
_CTX_SHAPE = ("traits", "campaign", "consent", "consentManagement")


@dataclass(frozen=True)
class SegmentColumns:
    """The messages mapped column-wise: ``keep`` (their positions in the batch), and per kept message
    its canonical envelope fields, properties, and whether / when its time parsed."""

    keep: np.ndarray
    fields: dict[str, pa.Array]  # event_id, event_name, received_at, user_id, anonymous_id, session_id,
    #                              ip, user_agent, locale (strings), granted, marketing (booleans)
    props: list[Any]
    ts_ok: np.ndarray
    ts: np.ndarray


def _strings_ok(msg: dict[str, Any]) -> bool:
    """Whether one message converts to :data:`SEGMENT_TYPE` (stricter than pyarrow: a dict or None
    where the struct is)."""
    if any(msg.get(f) is not None and type(msg.get(f)) is not str for f in _STRINGS):
        return False
    ctx = msg.get("context")
    if ctx is None:
        return True
    return type(ctx) is dict and all(ctx.get(f) is None or type(ctx.get(f)) is str for f in _CTX_STRINGS)


def _shape(msg: dict[str, Any]) -> dict[str, Any]:
    out = {k: msg[k] for k in _SHAPE if k in msg}
    ctx = msg.get("context")
    if type(ctx) is dict:
        out["context"] = {k: ctx[k] for k in _CTX_SHAPE if k in ctx}
    return out


def map_segment(msgs: list[dict[str, Any]], mapper: SegmentMapper, *, consent_key: str,
                micros: Any) -> SegmentColumns:
    """Map a batch of parsed Segment messages to canonical columns (see the module docstring).

    Args:
        msgs: parsed messages (JSON objects).
        mapper: the reference mapper (names, traits and consent of the mapping file).
        consent_key: the plan's required consent purpose (``analytics``).
        micros: the normalizer's RFC 3339 column parser, ``(ok, microseconds) = micros(strings)``.
    """
    keep = list(range(len(msgs)))
    try:
        seg = pa.array(msgs, SEGMENT_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        keep = [i for i, m in enumerate(msgs) if _strings_ok(m)]
        seg = pa.array([msgs[i] for i in keep], SEGMENT_TYPE)
    # The mapper, once per distinct shape. A track call whose event has no property renames and whose
    # context has no campaign keeps its properties as they are (the mapper's own rule): its shape is
    # then its event name and consent alone, and its properties are the message's.
    kept_msgs = [msgs[i] for i in keep]
    keys: list[Any] = [None] * len(kept_msgs)
    own_props = np.zeros(len(kept_msgs), dtype=bool)
    renamed = {name for name, (_, renames) in mapper.mapping.events.items() if renames}
    dumps = orjson.dumps
    for i, m in enumerate(kept_msgs):
        ctx = m.get("context")
        ctx = ctx if type(ctx) is dict else {}
        event = m.get("event")
        try:
            if (m.get("type") == "track" and type(event) is str and event not in renamed
                    and type(ctx.get("campaign")) is not dict):
                own_props[i] = True
                keys[i] = (event, dumps([ctx.get("consent"), ctx.get("consentManagement")]))
            else:
                keys[i] = dumps(_shape(m))
        except orjson.JSONEncodeError:  # nested deeper than orjson writes: the per-line path's
            keys[i] = None
    first: dict[Any, int] = {}
    which = np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        which[i] = -1 if k is None else first.setdefault(k, len(first))
    names: list[str | None] = [None] * len(first)
    props: list[Any] = [None] * len(first)
    granted: list[bool] = [False] * len(first)
    marketing: list[bool | None] = [None] * len(first)
    done = set()
    for i, w in enumerate(which.tolist()):
        if w < 0 or w in done:
            continue
        done.add(w)
        m = kept_msgs[i]
        if own_props[i]:
            ctx = m.get("context")
            ctx = ctx if type(ctx) is dict else {}
            shape = {"type": "track", "event": m["event"],
                     "context": {k: ctx[k] for k in ("consent", "consentManagement") if k in ctx}}
        else:
            shape = _shape(m)
        mapped = mapper(shape)
        name = mapped["event_name"]
        names[w] = name if type(name) is str else None
        props[w] = mapped["properties"]
        consent = mapped["context"]["consent"]
        granted[w] = consent.get(consent_key) is True
        mk = consent.get("marketing")
        marketing[w] = mk if type(mk) is bool else None
    ok_shape = which >= 0  # the others are left to the per-line path
    mask = pa.array(ok_shape)
    seg = seg.filter(mask)
    at = which[ok_shape]
    col = {f: seg.field(f) for f in _STRINGS}
    ctx = seg.field("context")
    # an alias's previousId, when it is a non-empty string, is the anonymous id
    prev = col["previousId"]
    use_prev = pc.and_kleene(pc.equal(col["type"], "alias"), pc.greater(pc.utf8_length(prev), 0)).fill_null(False)
    # the event time: timestamp, else receivedAt - (sentAt - originalTimestamp) cut to milliseconds
    t_ok, t = micros(col["timestamp"])
    o_ok, o = micros(col["originalTimestamp"])
    s_ok, s = micros(col["sentAt"])
    r_ok, r = micros(col["receivedAt"])
    corrected = r - (s - o)
    corrected -= corrected % 1000
    lo, hi = micros(pa.array(["1971-01-01T00:00:00Z", "2100-01-01T00:00:00Z"]))[1]
    given = ~np.asarray(col["timestamp"].is_null(), dtype=bool)
    ts_ok = np.where(given, t_ok, o_ok & s_ok & r_ok & (corrected >= lo) & (corrected < hi))
    ts = np.where(given, t, corrected)
    pick = pa.array(at)
    fields = {
        "event_id": col["messageId"],
        "event_name": pa.array(names, _STR).take(pick),
        "received_at": col["receivedAt"],
        "user_id": col["userId"],
        "anonymous_id": pc.if_else(use_prev, prev, col["anonymousId"]),
        "session_id": ctx.field("sessionId"),
        "ip": ctx.field("ip"),
        "user_agent": ctx.field("userAgent"),
        "locale": ctx.field("locale"),
        "granted": pa.array(granted, pa.bool_()).take(pick),
        "marketing": pa.array(marketing, pa.bool_()).take(pick),
    }
    # a track call's own properties (None: {}, as the mapper has it); the mapped ones otherwise
    own = own_props[ok_shape].tolist()
    msgs_kept = [m for m, ok in zip(kept_msgs, ok_shape.tolist(), strict=True) if ok]
    out_props = [(m.get("properties") if m.get("properties") is not None else {}) if o else props[w]
                 for m, o, w in zip(msgs_kept, own, at.tolist(), strict=True)]
    return SegmentColumns(np.array(keep, dtype=np.int64)[ok_shape], fields, out_props, ts_ok, ts)
