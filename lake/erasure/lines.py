"""The ids a landed line, or a quarantined raw line, carries: parsed id fields, never substrings.

A landed line is a canonical event (``user_id``, ``anonymous_id``, ``event_id``) or a Segment /
RudderStack message, read exactly as ingestion reads it: the file's format is detected the same
way (:func:`lake.ingest.formats.converters_for`) and a Segment message goes through the same
:class:`lake.ingest.segment.SegmentMapper` — ``userId`` is the user, ``anonymousId`` the device
(``previousId`` for an ``alias``), ``messageId`` the event id, and numbers are ids too (Segment
stringifies them). A canonical line that carries no canonical id but Segment id fields (a message
landed in a canonical file) is read by those fields. An id that is not a string or a number
(``{}``, ``true``) is no id.

A line that is not JSON (quarantined as ``malformed_json``) still names its ids: they are read
from its ``"field": value`` pairs (the first of each), so a truncated line of one person is theirs
and nobody else's.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lake.landing import LandingFile, list_landing_files, list_landing_partitions
from lake.paths import LakePaths

if TYPE_CHECKING:
    from lake.contracts.plan import TrackingPlan

__all__ = ["LineIds", "landed_files", "line_ids", "parse_landed_line", "parse_record", "read_landed"]

_USER_FIELDS = ("user_id", "userId")
_ANON_FIELDS = ("anonymous_id", "anonymousId", "previousId")
_EVENT_FIELDS = ("event_id", "messageId")
_SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias", "group"})  # lake.ingest.segment
# "field": value pairs of a line that is not JSON: a JSON string (escapes included) or a number.
_PAIR = re.compile(
    r'"(user_id|userId|anonymous_id|anonymousId|previousId|event_id|messageId)"\s*:\s*'
    r'("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
)


@dataclass(frozen=True)
class LineIds:
    """What one line says about who it is from.

    Attributes:
        user_id: The user id field, as ingestion would store it (before PII hashing).
        anonymous_id: The device id field.
        event_id: The event id field (``event_id`` / ``messageId``).
        timestamp: When the event happened, if the line says so parseably (links are ordered by it).
        event: The canonical event (Segment messages converted), None for a line that is not JSON.
    """

    user_id: str | None
    anonymous_id: str | None
    event_id: str | None = None
    timestamp: datetime | None = None
    event: dict[str, Any] | None = None

    @property
    def has_ids(self) -> bool:
        return self.user_id is not None or self.anonymous_id is not None


def _id(value: Any) -> str | None:
    # ingestion's rule (lake.ingest.segment._str_id): strings are ids, numbers are stringified.
    t = type(value)
    if t is str:
        return value
    if t is int or t is float:
        return str(value)
    return None


def _first(ev: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    for f in fields:
        value = _id(ev.get(f))
        if value is not None:
            return value
    return None


def line_ids(ev: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(user_id, anonymous_id)`` of a parsed canonical event (Segment fields when it has no canonical id)."""
    user, anon = _id(ev.get("user_id")), _id(ev.get("anonymous_id"))
    if user is None and anon is None:
        user = _first(ev, _USER_FIELDS[1:])
        anon = _id(ev.get("previousId")) if ev.get("type") == "alias" else None
        anon = anon or _first(ev, _ANON_FIELDS[1:])
    return user, anon


def _is_segment(ev: dict[str, Any]) -> bool:
    # lake.ingest.formats.sniff, for one line.
    if "event_id" in ev or "event_name" in ev:
        return False
    return "messageId" in ev or ev.get("type") in _SEGMENT_TYPES


def _malformed_ids(text: str) -> LineIds:
    found: dict[str, str] = {}
    for m in _PAIR.finditer(text):
        if m.group(1) not in found:
            try:
                value = _id(orjson.loads(m.group(2)))
            except orjson.JSONDecodeError:
                continue
            if value is not None:
                found[m.group(1)] = value
    return LineIds(_first(found, _USER_FIELDS), _first(found, _ANON_FIELDS), _first(found, _EVENT_FIELDS))


def _timestamp(ev: dict[str, Any]) -> datetime | None:
    from lake.contracts.validate import parse_timestamp

    return parse_timestamp(ev.get("timestamp"))


def parse_landed_line(raw: bytes, convert: Callable[[dict[str, Any]], dict[str, Any]] | None) -> LineIds | None:
    """The ids of one landed line (None for a blank line); ``convert`` is the file's converter."""
    if not raw or raw.isspace():
        return None
    try:
        ev = orjson.loads(raw)
    except orjson.JSONDecodeError:
        ev = None
    if type(ev) is not dict:
        return _malformed_ids(raw.decode("utf-8", errors="replace"))
    canonical = convert(ev) if convert is not None else ev
    user, anon = line_ids(canonical)
    if user is None and anon is None and canonical is not ev:
        user, anon = line_ids(ev)
    event_id = _id(canonical.get("event_id")) or _first(ev, _EVENT_FIELDS)
    return LineIds(user, anon, event_id, _timestamp(canonical), canonical)


def parse_record(text: str) -> LineIds:
    """The ids of a quarantined ``raw_line`` (the canonical event as ingestion saw it, PII masked)."""
    try:
        ev = orjson.loads(text)
    except orjson.JSONDecodeError:
        ev = None
    if type(ev) is not dict:
        return _malformed_ids(text)
    if _is_segment(ev):
        user, anon = _first(ev, _USER_FIELDS[1:]), _first(ev, _ANON_FIELDS[1:])
    else:
        user, anon = line_ids(ev)
    return LineIds(user, anon, _first(ev, _EVENT_FIELDS), None, ev)


# -- the landing zone ------------------------------------------------------------------------------


def read_landed(path: str, paths: LakePaths | None = None) -> bytes:
    """The bytes of a landing file (gunzipped when its name ends in ``.gz``); ``path`` as
    :func:`lake.landing.list_landing_files` gives it, in the landing filesystem of ``paths`` (local when
    ``paths`` is None or a local root, else the object store's)."""
    if paths is not None and not paths.is_local:
        from lake.landing import landing_fs

        with landing_fs(paths)[0].open_input_stream(path) as src:
            data = src.read()
    else:
        data = Path(path).read_bytes()
    return gzip.decompress(data) if path.endswith(".gz") else data


def landed_files(
    paths: LakePaths, *, plan: TrackingPlan
) -> Iterator[tuple[str, LandingFile, Callable[[dict[str, Any]], dict[str, Any]] | None]]:
    """Every landing file as ``(hour key, file, converter)``, the converter as ingestion picks it."""
    from lake.ingest.formats import converters_for  # lake.ingest imports lake.erasure.requests

    for key in list_landing_partitions(paths):
        files = list_landing_files(paths, key)
        for f, convert in zip(files, converters_for(paths, files, plan=plan), strict=True):
            yield key, f, convert
