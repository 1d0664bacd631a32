"""The landing zone: find the person's lines, and rewrite each batch file without them.

A line is the person's when it contains one of their ids (the parsed ids of a JSON line, or the
bytes of a line that is not JSON — a malformed line is still their data). Their lines are
replaced by **blank lines**, not removed: ingestion skips blank lines (``Normalizer.add_line``)
and the ledger does not count them as landed (``lake.ledger.count_landed_lines``), so every other
line keeps its number, and the ``_source_file`` / ``_line_number`` of every remaining bronze and
quarantine row still points at the right line. Files are rewritten atomically (a hidden
temporary file in the same folder — the landing listing ignores names starting with ``.`` — then
``os.replace``), gzip files stay gzip.
"""

from __future__ import annotations

import gzip
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lake.durable import fsync_dir
from lake.erasure.subject import Subject
from lake.landing import LandingFile, list_landing_files, list_landing_partitions
from lake.paths import LakePaths
from lake.pii import PiiMasker

__all__ = ["LandingErasure", "erase_landing", "link_landed_ids"]


@dataclass
class LandingErasure:
    """What the landing rewrite did."""

    lines_removed: int = 0
    files_rewritten: list[str] = field(default_factory=list)  # relative to landing/events
    partitions: list[str] = field(default_factory=list)  # hourly keys whose files changed


def _files(paths: LakePaths) -> list[tuple[str, LandingFile]]:
    return [(key, f) for key in list_landing_partitions(paths) for f in list_landing_files(paths, key)]


def _read(path: str) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if path.endswith(".gz") else data


def _parse(raw: bytes) -> dict | None:
    try:
        ev = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return ev if type(ev) is dict else None


def link_landed_ids(paths: LakePaths, subject: Subject, masker: PiiMasker) -> Subject:
    """Add the devices and event ids that landed lines carrying the person's user id link to them."""
    users = {u.encode() for u in subject.user_ids}
    if not users:
        return subject
    anons: set[str] = set()
    events: set[str] = set()
    for _, f in _files(paths):
        data = _read(f.path)
        if not any(u in data for u in users):
            continue
        for raw in data.split(b"\n"):
            if (
                any(u in raw for u in users)
                and (ev := _parse(raw)) is not None
                and (ev.get("user_id") or ev.get("userId")) in subject.user_ids  # canonical or Segment line
            ):
                anons.add(ev.get("anonymous_id") or ev.get("anonymousId") or ev.get("previousId"))
                events.add(ev.get("event_id") or ev.get("messageId"))
    return subject.with_ids(anons={a for a in anons if isinstance(a, str)}, events=events, masker=masker)


def erase_landing(paths: LakePaths, subject: Subject) -> tuple[LandingErasure, Subject]:
    """Blank the person's lines in every landing file; return what changed and the event ids of the
    removed lines (added to ``subject``, so that quarantine rows are matched by event id too)."""
    needles = [n.encode() for n in subject.needles]
    out = LandingErasure()
    events: set[str] = set()
    if not needles:
        return out, subject
    for key, f in _files(paths):
        data = _read(f.path)
        if not any(n in data for n in needles):
            continue
        lines = data.split(b"\n")
        removed = 0
        for i, raw in enumerate(lines):
            if raw and any(n in raw for n in needles):
                ev = _parse(raw)
                event_id = None if ev is None else ev.get("event_id") or ev.get("messageId")
                if isinstance(event_id, str):
                    events.add(event_id)
                lines[i] = b""
                removed += 1
        if removed:
            _replace(f.path, b"\n".join(lines))
            out.lines_removed += removed
            out.files_rewritten.append(f.relative)
            if key not in out.partitions:
                out.partitions.append(key)
    return out, subject.with_ids(events=events)


def _replace(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (gzip when the name ends in ``.gz``)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.erasing-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as sink:
            sink.write(gzip.compress(data, mtime=0) if path.endswith(".gz") else data)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
