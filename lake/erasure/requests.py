"""Pending erasure requests: consent revocations captured at ingestion, until they are processed.

Ingestion drops every event without analytics consent, so a ``consent_updated`` event that
withdraws it would vanish with nothing else happening. Instead the normalizer captures it
(:class:`lake.ingest.normalize.ConsentRevocation`) and the pipeline persists it here, in
``$ROOT/delta/governance/erasure_requests`` (one row per request, keyed by a hash of its event).
:func:`process_pending_requests` — the Dagster asset ``["governance", "erasures"]`` — runs
:func:`lake.erasure.erase_person` for each; the erasure deletes the request row with the rest of
the person's data and purges the table's history, so a raw id is held only while pending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lake import delta_io
from lake.paths import LakePaths
from lake.pii import PiiMasker

if TYPE_CHECKING:
    from lake.contracts.plan import TrackingPlan
    from lake.erasure.core import ErasureReport
    from lake.ingest.normalize import ConsentRevocation

__all__ = ["ERASURE_REQUESTS", "REVOCATION_REASON", "pending_requests", "process_pending_requests", "record_requests"]

_TS = pa.timestamp("us", tz="UTC")
REVOCATION_REASON = "analytics consent revoked (consent_updated)"

ERASURE_REQUESTS = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),  # sha256 of the revoking event (not personal)
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("requested_at", _TS, nullable=False),
        pa.field("landing_partition", pa.string(), nullable=False),
        pa.field("captured_at", _TS, nullable=False),
    ]
)


def _request_id(r: ConsentRevocation) -> str:
    key = r.event_id or f"{r.user_id}|{r.anonymous_id}|{r.requested_at}|{r.landing_partition}"
    return hashlib.sha256(f"erasure-request|{key}".encode()).hexdigest()[:32]


def record_requests(paths: LakePaths, revocations: Sequence[ConsentRevocation]) -> int:
    """Persist captured revocations as pending requests, once each (re-ingesting an hour adds none).

    The caller holds the bronze writer lock (ingestion does), which also serializes this table.
    Returns how many requests are new.
    """
    if not revocations:
        return 0
    now = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for r in revocations:
        rows.setdefault(
            _request_id(r),
            {
                "request_id": _request_id(r),
                "user_id": r.user_id,
                "anonymous_id": r.anonymous_id,
                "requested_at": r.requested_at or now,
                "landing_partition": r.landing_partition,
                "captured_at": now,
            },
        )
    data = pa.Table.from_pylist(list(rows.values()), schema=ERASURE_REQUESTS)
    return delta_io.insert_missing(paths.erasure_requests, data, on=("request_id",), operation="erasure-request")


def pending_requests(paths: LakePaths) -> list[dict]:
    """Pending requests, oldest first (holds raw ids: never log or return them to a UI)."""
    rows = delta_io.read(paths.erasure_requests, ERASURE_REQUESTS).to_pylist()
    return sorted(rows, key=lambda r: (r["requested_at"], r["request_id"]))


def process_pending_requests(
    paths: LakePaths, *, masker: PiiMasker | None = None, plan: TrackingPlan | None = None
) -> list[ErasureReport]:
    """Erase the subject of every pending request; each erasure also deletes its request.

    Returns:
        One report per request processed (a request whose person an earlier request of the same
        run already erased yields a report with zero counts).
    """
    from lake.erasure.core import erase_person

    reports = []
    for req in pending_requests(paths):
        subject = req["user_id"] or req["anonymous_id"]
        reports.append(
            erase_person(
                paths, subject, reason=REVOCATION_REASON, requested_at=req["requested_at"], masker=masker, plan=plan
            )
        )
    return reports
