"""Which format a landing file is in: canonical events or Segment / RudderStack messages.

Decided once per file (never per line): a ``file_formats`` rule of the Segment mapping (file name
glob), else the first JSON object among the file's first lines — Segment messages carry
``messageId`` / ``type``, canonical events ``event_id`` / ``event_name``. A file with no JSON object
near its start is read as canonical (its lines are quarantined as malformed either way).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from fnmatch import fnmatch
from typing import Any, Literal

import orjson

from lake.contracts.plan import TrackingPlan
from lake.ingest.segment import SEGMENT_TYPES, SegmentMapper, SegmentMapping, load_segment_mapping
from lake.landing import LandingFile, iter_lines
from lake.paths import LakePaths

__all__ = ["LandingFormat", "converters_for", "detect_format", "sniff"]

LandingFormat = Literal["canonical", "segment"]
Converter = Callable[[dict[str, Any]], dict[str, Any]]
_PROBE_LINES = 32
_PROBE_CHUNK = 8 << 10  # the first line is usually all detection reads


def sniff(ev: dict[str, Any]) -> LandingFormat:
    """The format of one parsed line."""
    if "event_id" in ev or "event_name" in ev:
        return "canonical"
    mtype = ev.get("type")
    if "messageId" in ev or (type(mtype) is str and mtype in SEGMENT_TYPES):
        return "segment"
    return "canonical"


def detect_format(paths: LakePaths, file: LandingFile, *, mapping: SegmentMapping | None = None,
                  max_line_bytes: int | None = None) -> LandingFormat:
    """The format of a landing file: a configured rule for its name, else its first JSON object.

    Lines longer than ``max_line_bytes`` (default: the lake's ``GROWTHLAKE_MAX_LINE_BYTES``) are
    skipped unread, as ingestion quarantines them.
    """
    name = file.relative.rsplit("/", 1)[-1]
    for pattern, fmt in (mapping.file_formats if mapping is not None else ()):
        if fnmatch(name, pattern):
            return fmt  # type: ignore[return-value]
    limit = paths.settings.max_line_bytes if max_line_bytes is None else max_line_bytes
    with closing(iter_lines(paths, file, chunk_size=_PROBE_CHUNK, max_line_bytes=limit)) as lines:
        for number, raw in lines:
            if number > _PROBE_LINES:
                break
            if len(raw) > limit:
                continue
            try:
                ev = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(ev) is dict:
                return sniff(ev)
    return "canonical"


def converters_for(paths: LakePaths, files: list[LandingFile], *, plan: TrackingPlan) -> list[Converter | None]:
    """Per file, the converter to the canonical model (``None``: already canonical)."""
    mapping = load_segment_mapping()
    mapper: SegmentMapper | None = None
    out: list[Converter | None] = []
    for f in files:
        if detect_format(paths, f, mapping=mapping) == "segment":
            mapper = mapper or SegmentMapper(mapping, plan)
            out.append(mapper)
        else:
            out.append(None)
    return out
