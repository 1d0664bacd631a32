"""Alerts: an append-only Delta table, a log line and a pluggable notifier per new alert.

No Dagster import here: the orchestration layer decides *what* is breached, this module records
and announces it. ``alert_id`` is deterministic, so raising the same alert again is a no-op.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.settings import current as current_settings

__all__ = [
    "ALERTS_SCHEMA",
    "WEBHOOK_ENV",
    "Alert",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "alert_id",
    "notifier_from_env",
    "raise_alerts",
    "read_alerts",
]

log = logging.getLogger("growthlake.alerts")

WEBHOOK_ENV = "GROWTHLAKE_ALERT_WEBHOOK"
_LOCK = "alerts"

Severity = Literal["warn", "fail"]

ALERTS_SCHEMA = pa.schema([
    pa.field("alert_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("severity", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("observed_lag_s", pa.float64()),
    pa.field("threshold_s", pa.float64()),
    pa.field("raised_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def alert_id(kind: str, subject: str, window_start: datetime) -> str:
    """sha256 of ``kind|subject|window start`` (UTC ISO): the same breach always has the same id."""
    return hashlib.sha256(f"{kind}|{subject}|{_utc(window_start).isoformat()}".encode()).hexdigest()


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str
    severity: Severity
    detail: str
    observed_lag_s: float
    threshold_s: float
    window_start: datetime
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def alert_id(self) -> str:
        return alert_id(self.kind, self.subject, self.window_start)

    def row(self) -> dict:
        return {"alert_id": self.alert_id, "kind": self.kind, "subject": self.subject, "severity": self.severity,
                "detail": self.detail, "observed_lag_s": float(self.observed_lag_s),
                "threshold_s": float(self.threshold_s), "raised_at": _utc(self.raised_at)}

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("window_start", "raised_at")}
        return {"alert_id": self.alert_id, **out, "window_start": _utc(self.window_start).isoformat(),
                "raised_at": _utc(self.raised_at).isoformat()}


class Notifier(Protocol):
    def __call__(self, alert: Alert) -> None: ...


class LogNotifier:
    """The default notifier: the WARNING line ``raise_alerts`` writes is the notification."""

    def __call__(self, alert: Alert) -> None:
        return None


class WebhookNotifier:
    """POST each alert as JSON to ``url``; a failure is logged, never raised."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def __call__(self, alert: Alert) -> None:
        body = json.dumps(alert.to_json()).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        # the row is already written: never fail the caller
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.error("alert webhook failed for %s (%s): %s", alert.alert_id[:12], alert.subject, exc)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r})"


def notifier_from_env() -> Notifier:
    """``WebhookNotifier($GROWTHLAKE_ALERT_WEBHOOK)`` when the variable is set, else ``LogNotifier``."""
    url = current_settings().alert_webhook or ""
    return WebhookNotifier(url) if url else LogNotifier()


def raise_alerts(paths: LakePaths, alerts: Iterable[Alert], notifier: Notifier | None = None) -> int:
    """Record the alerts whose id is new, log and notify each of them; return how many were new."""
    by_id: dict[str, Alert] = {}
    for a in alerts:
        by_id.setdefault(a.alert_id, a)
    if not by_id:
        return 0
    notifier = notifier if notifier is not None else notifier_from_env()
    with table_lock(paths, _LOCK):
        known = delta_io.read(paths.alerts, ALERTS_SCHEMA, columns=["alert_id"],
                              filter=pc.field("alert_id").isin(list(by_id)))
        seen = set(known.column("alert_id").to_pylist())
        new = [a for i, a in by_id.items() if i not in seen]
        if not new:
            return 0
        table = pa.Table.from_pylist([a.row() for a in new], schema=ALERTS_SCHEMA)
        delta_io.insert_missing(paths.alerts, table, on=("alert_id",), operation="alert")
    for a in new:
        log.warning("ALERT %s %s %s: %s (lag %.0fs > %.0fs) id=%s", a.kind, a.severity.upper(), a.subject,
                    a.detail, a.observed_lag_s, a.threshold_s, a.alert_id[:12])
        try:
            notifier(a)
        except Exception:  # a custom notifier must not lose the remaining notifications
            log.exception("alert notifier %r failed for %s", notifier, a.alert_id[:12])
    return len(new)


def read_alerts(paths: LakePaths) -> pl.DataFrame:
    """Every alert, oldest first (an empty frame with the schema when none was raised)."""
    df = pl.from_arrow(delta_io.read(paths.alerts, ALERTS_SCHEMA))
    assert isinstance(df, pl.DataFrame)
    return df.sort("raised_at", "alert_id")
