"""The landing zone: find the person's lines, and rewrite each batch file without them.

A line is the person's when its **parsed id fields** say so (:mod:`lake.erasure.lines`; the rule
is :meth:`lake.erasure.subject.Subject.owns`): its user id is theirs, or it has no user id and its
device is one attributed to them — never because some id occurs inside its bytes. Another user's
line on a device they shared, or a line whose event id or path merely contains their id, is not
theirs and stays byte for byte. A line that is not JSON is read by its ``"field": value`` pairs.

Their lines are replaced by **blank lines**, not removed: ingestion skips blank lines
(``Normalizer.add_line``) and the ledger does not count them as landed
(``lake.ledger.count_landed_lines``), so every other line keeps its number, and the
``_source_file`` / ``_line_number`` of every remaining bronze and quarantine row still points at
the right line. Files are rewritten atomically (a hidden temporary file in the same folder — the
landing listing ignores names starting with ``.`` — then ``os.replace``; on an object store one PUT
replaces the object whole), gzip files stay gzip.
"""

from __future__ import annotations

import gzip
import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lake.durable import fsync_dir
from lake.erasure.lines import landed_files, parse_landed_line, read_landed
from lake.erasure.subject import Subject
from lake.paths import LakePaths

if TYPE_CHECKING:
    from lake.contracts.plan import TrackingPlan

__all__ = ["LandingErasure", "erase_landing", "landing_leftovers"]


@dataclass
class LandingErasure:
    """What the landing rewrite did."""

    lines_removed: int = 0
    files_rewritten: list[str] = field(default_factory=list)  # relative to landing/events
    partitions: list[str] = field(default_factory=list)  # hourly keys whose files changed


def _needles(subject: Subject) -> list[bytes]:
    # A line can only be theirs if one of their ids occurs in it: a cheap prefilter, never the verdict.
    # An unknown id is in no landed line's id fields (resolution looked): nothing to search.
    if not subject.known:
        return []
    return [n.encode() for n in sorted(subject.user_ids | subject.anonymous_ids)]


def erase_landing(paths: LakePaths, subject: Subject, *, plan: TrackingPlan) -> tuple[LandingErasure, Subject]:
    """Blank the person's lines in every landing file; return what changed and the subject with the
    event ids of the blanked lines (so that a quarantined row without ids is matched by event id)."""
    needles = _needles(subject)
    out = LandingErasure()
    events: set[str] = set()
    if not needles:
        return out, subject
    for key, f, convert in landed_files(paths, plan=plan):
        data = read_landed(f.path, paths)
        if not any(n in data for n in needles):
            continue
        lines = data.split(b"\n")
        removed = 0
        for i, raw in enumerate(lines):
            if not any(n in raw for n in needles):
                continue
            ids = parse_landed_line(raw, convert)
            if ids is not None and subject.owns(ids):
                if ids.event_id:
                    events.add(ids.event_id)
                lines[i] = b""
                removed += 1
        if removed:
            _replace(f.path, b"\n".join(lines), paths)
            out.lines_removed += removed
            out.files_rewritten.append(f.relative)
            if key not in out.partitions:
                out.partitions.append(key)
    return out, replace(subject, event_ids=subject.event_ids | events)


def landing_leftovers(paths: LakePaths, subject: Subject, *, plan: TrackingPlan) -> list[str]:
    """Landing files (relative to the root) that still hold a line of the person's."""
    needles = _needles(subject)
    found: list[str] = []
    if not needles:
        return found
    for _, f, convert in landed_files(paths, plan=plan):
        data = read_landed(f.path, paths)
        if any(n in data for n in needles) and any(
            (ids := parse_landed_line(raw, convert)) is not None and subject.owns(ids)
            for raw in data.split(b"\n")
            if any(n in raw for n in needles)
        ):
            found.append(f"landing/events/{f.relative}")
    return found


def _replace(path: str, data: bytes, paths: LakePaths) -> None:
    """Write ``data`` to ``path`` atomically (gzip when the name ends in ``.gz``): on an object store one
    PUT, which replaces the object as a whole (readers get the old bytes or the new ones)."""
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    if not paths.is_local:
        from lake.landing import landing_fs

        with landing_fs(paths)[0].open_output_stream(path) as sink:
            sink.write(data)
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.erasing-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
