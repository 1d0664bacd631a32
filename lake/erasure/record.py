"""The erasure record: that an erasure happened, and what it removed — never who it was about.

``$ROOT/delta/governance/erasures`` gets one row per run of :func:`lake.erasure.erase_person`:
its id, a keyed hash of the subject (HMAC with ``GROWTHLAKE_PII_KEY``, domain-separated from the
ingestion hashes, so the controller can answer "was this person erased?" by recomputing it, while
the table alone identifies nobody), the reason (with any of the person's ids masked out), when it
was requested and completed, and per-table counts. It is append-only.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from lake import delta_io
from lake.paths import LakePaths
from lake.pii import PiiMasker

__all__ = ["ERASURES", "subject_hash", "write_record"]

_TS = pa.timestamp("us", tz="UTC")

ERASURES = pa.schema(
    [
        pa.field("erasure_id", pa.string(), nullable=False),
        pa.field("subject_hash", pa.string(), nullable=False),  # keyed HMAC of the id given, never the id
        pa.field("reason", pa.string(), nullable=False),
        pa.field("requested_at", _TS, nullable=False),
        pa.field("completed_at", _TS, nullable=False),
        pa.field("rows_removed", pa.int64(), nullable=False),  # Delta rows deleted, all tables
        pa.field("rows_redacted", pa.int64(), nullable=False),  # Delta rows kept with the ids replaced
        pa.field("landing_lines_removed", pa.int64(), nullable=False),
        pa.field("files_rewritten", pa.int64(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),  # JSON: counts per table / store, files rewritten
    ]
)


def subject_hash(masker: PiiMasker, subject: str) -> str:
    """The keyed hash recorded for ``subject`` (a domain prefix keeps it apart from ingestion hashes)."""
    return masker.hash(f"growthlake-erasure-subject:{subject}")


def write_record(paths: LakePaths, row: dict[str, Any]) -> None:
    """Append one erasure record (the caller holds the ``governance`` lock)."""
    row = dict(row)
    if not isinstance(row.get("detail"), str):
        row["detail"] = json.dumps(row.get("detail") or {}, sort_keys=True, default=str)
    delta_io.append(
        paths.erasures,
        pa.Table.from_pylist([row], schema=ERASURES),
        operation="erasure-record",
        metadata={"erasure_id": row["erasure_id"]},
    )
