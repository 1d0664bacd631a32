"""Alerts: an append-only Delta table, a log line and a pluggable notifier per new alert.

No Dagster import here: the orchestration layer decides *what* failed (a gate, a run) or is
breached (a freshness SLA), this module records and announces it. ``alert_id`` is deterministic
(kind, subject, and the breach window or the failing run), so raising the same alert again is a
no-op: one failure, one row, one log line, one notification. People acknowledge and resolve
alerts (``growthlake alerts``); those actions go to a second append-only table, so the alert rows
stay as raised and every action keeps its actor.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.errors import AlertError
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.settings import current as current_settings

__all__ = [
    "ALERTS_SCHEMA",
    "ALERT_ACTIONS_SCHEMA",
    "FRESHNESS",
    "GATE_FAILED",
    "RUN_FAILED",
    "WEBHOOK_ENV",
    "Alert",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "ack_alert",
    "alert_id",
    "alert_summary",
    "format_duration",
    "gate_alerts",
    "notifier_from_env",
    "raise_alerts",
    "read_alerts",
    "resolve_alert",
]

log = logging.getLogger("growthlake.alerts")

WEBHOOK_ENV = "GROWTHLAKE_ALERT_WEBHOOK"
_LOCK = "alerts"

Severity = Literal["warn", "fail"]
Action = Literal["ack", "resolve"]

#: The kinds of alert: a blocking gate failed, a run failed (not by a gate), an SLA was breached.
GATE_FAILED, RUN_FAILED, FRESHNESS = "gate_failed", "run_failed", "freshness"

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

ALERT_ACTIONS_SCHEMA = pa.schema([
    pa.field("alert_id", pa.string(), nullable=False),
    pa.field("action", pa.string(), nullable=False),  # ack | resolve
    pa.field("actor", pa.string(), nullable=False),
    pa.field("note", pa.string()),
    pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def alert_id(kind: str, subject: str, occurrence: datetime | str) -> str:
    """sha256 of ``kind|subject|occurrence``: the same failure always has the same id.

    ``occurrence`` tells one failure of a subject from the next: a breach's window start (a datetime,
    as UTC ISO) for freshness, the failing run's id for gates and runs.
    """
    at = _utc(occurrence).isoformat() if isinstance(occurrence, datetime) else occurrence
    return hashlib.sha256(f"{kind}|{subject}|{at}".encode()).hexdigest()


@dataclass(frozen=True)
class Alert:
    """One alert. Give ``window_start`` (freshness: when the breach began) or ``occurrence`` (the run id)."""

    kind: str
    subject: str
    severity: Severity
    detail: str
    observed_lag_s: float | None = None
    threshold_s: float | None = None
    window_start: datetime | None = None
    occurrence: str | None = None
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.window_start is None and not self.occurrence:
            raise ValueError(f"alert {self.kind} {self.subject}: give window_start or occurrence (its id needs one)")

    @property
    def alert_id(self) -> str:
        occurrence = self.occurrence or self.window_start
        assert occurrence is not None  # __post_init__
        return alert_id(self.kind, self.subject, occurrence)

    def row(self) -> dict:
        def num(v: float | None) -> float | None:
            return float(v) if v is not None else None

        return {"alert_id": self.alert_id, "kind": self.kind, "subject": self.subject, "severity": self.severity,
                "detail": self.detail, "observed_lag_s": num(self.observed_lag_s),
                "threshold_s": num(self.threshold_s), "raised_at": _utc(self.raised_at)}

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("window_start", "raised_at")}
        return {"alert_id": self.alert_id, **out,
                "window_start": _utc(self.window_start).isoformat() if self.window_start else None,
                "raised_at": _utc(self.raised_at).isoformat()}

    def log_line(self) -> str:
        lag = (f" (lag {self.observed_lag_s:.0f}s > {self.threshold_s:.0f}s)"
               if self.observed_lag_s is not None and self.threshold_s is not None else "")
        return f"ALERT {self.kind} {self.severity.upper()} {self.subject}: {self.detail}{lag} id={self.alert_id[:12]}"


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
        log.warning("%s", a.log_line())
        try:
            notifier(a)
        except Exception:  # a custom notifier must not lose the remaining notifications
            log.exception("alert notifier %r failed for %s", notifier, a.alert_id[:12])
    return len(new)


def gate_alerts(evaluations: Iterable[Mapping[str, Any]], *, raised_at: datetime | None = None) -> list[Alert]:
    """One ``gate_failed`` alert per failed gate evaluation of error severity (a warn-level check, such as a
    dbt test configured to warn, is not a gate). ``evaluations`` are rows of ``observability/gate_evaluations``
    (``run_id``, ``asset``, ``partition``, ``gate``, ``passed``, ``severity``, ``description``); the failing run
    is the occurrence, so the same evaluation reported twice is one alert."""
    out = []
    for e in evaluations:
        if e["passed"] or str(e.get("severity") or "ERROR").upper() != "ERROR":
            continue
        subject = f"{e['asset']}[{e['partition']}] {e['gate']}" if e.get("partition") else f"{e['asset']} {e['gate']}"
        out.append(Alert(kind=GATE_FAILED, subject=subject, severity="fail",
                         detail=(e.get("description") or "failed")[:500], occurrence=str(e["run_id"]),
                         raised_at=raised_at or datetime.now(UTC)))
    return out


def read_alerts(paths: LakePaths, *, open_only: bool = False) -> pl.DataFrame:
    """Every alert, oldest first (an empty frame with the schema when none was raised), with what people
    did about it: ``acked_at``, ``acked_by``, ``resolved_at``, ``resolved_by``, ``resolve_note``, ``state``
    (open | acked | resolved) and ``time_to_resolve_s`` (resolved_at − raised_at). ``open_only`` keeps
    the alerts not resolved yet."""
    df = pl.from_arrow(delta_io.read(paths.alerts, ALERTS_SCHEMA))
    actions = pl.from_arrow(delta_io.read(paths.alert_actions, ALERT_ACTIONS_SCHEMA))
    assert isinstance(df, pl.DataFrame) and isinstance(actions, pl.DataFrame)
    firsts = actions.sort("at").group_by("alert_id", "action").first()

    def of(action: str, names: dict[str, str]) -> pl.DataFrame:
        return firsts.filter(pl.col("action") == action).select("alert_id", *names).rename(names)

    df = (df.join(of("ack", {"at": "acked_at", "actor": "acked_by"}), on="alert_id", how="left")
          .join(of("resolve", {"at": "resolved_at", "actor": "resolved_by", "note": "resolve_note"}),
                on="alert_id", how="left")
          .with_columns(
              pl.when(pl.col("resolved_at").is_not_null()).then(pl.lit("resolved"))
              .when(pl.col("acked_at").is_not_null()).then(pl.lit("acked")).otherwise(pl.lit("open")).alias("state"),
              ((pl.col("resolved_at") - pl.col("raised_at")).dt.total_microseconds() / 1e6).alias("time_to_resolve_s"))
          .sort("raised_at", "alert_id"))
    return df.filter(pl.col("state") != "resolved") if open_only else df


def _find(paths: LakePaths, alert: str) -> dict[str, Any]:
    """The alert whose id is ``alert`` or starts with it (the 12 characters ``alerts list`` shows)."""
    if len(alert) < 6:
        raise AlertError(alert, "give at least 6 characters of its id")
    frame = read_alerts(paths).filter(pl.col("alert_id").str.starts_with(alert.lower()))
    if frame.is_empty():
        raise AlertError(alert, "no alert has this id")
    if frame.height > 1:
        raise AlertError(alert, f"{frame.height} alerts start with this id: give more of it")
    return frame.row(0, named=True)


def _act(paths: LakePaths, alert: str, action: Action, *, actor: str, note: str | None,
         now: datetime | None) -> dict[str, Any]:
    if not actor.strip():
        raise AlertError(alert, "an action needs an actor (--actor or $GROWTHLAKE_ACTOR)")
    with table_lock(paths, _LOCK):
        row = _find(paths, alert)
        if row["resolved_at"] is not None:
            raise AlertError(row["alert_id"][:12], f"already resolved by {row['resolved_by']} at "
                             f"{row['resolved_at']:%Y-%m-%d %H:%M} UTC")
        if action == "ack" and row["acked_at"] is not None:
            raise AlertError(row["alert_id"][:12], f"already acknowledged by {row['acked_by']} at "
                             f"{row['acked_at']:%Y-%m-%d %H:%M} UTC")
        at = _utc(now or datetime.now(UTC))
        record = {"alert_id": row["alert_id"], "action": action, "actor": actor, "note": note, "at": at}
        delta_io.append(paths.alert_actions, pa.Table.from_pylist([record], schema=ALERT_ACTIONS_SCHEMA),
                        operation=f"alert_{action}")
    log.info("alert %s %s by %s", row["alert_id"][:12], "acknowledged" if action == "ack" else "resolved", actor)
    return {**row, **({"acked_at": at, "acked_by": actor} if action == "ack" else
                      {"resolved_at": at, "resolved_by": actor, "resolve_note": note, "state": "resolved",
                       "time_to_resolve_s": (at - _utc(row["raised_at"])).total_seconds()})}


def ack_alert(paths: LakePaths, alert: str, *, actor: str, note: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Record that ``actor`` is on it; returns the alert as :func:`read_alerts` shows it after the action.

    Raises:
        AlertError: no alert (or several) has that id or prefix, or it is already acknowledged or resolved.
    """
    return _act(paths, alert, "ack", actor=actor, note=note, now=now)


def resolve_alert(paths: LakePaths, alert: str, *, actor: str, note: str | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Record that ``actor`` resolved the alert (an unacknowledged alert may be resolved at once).

    Raises:
        AlertError: no alert (or several) has that id or prefix, or it is already resolved.
    """
    return _act(paths, alert, "resolve", actor=actor, note=note, now=now)


def alert_summary(alerts: pl.DataFrame) -> dict[str, Any]:
    """``open`` (not resolved), ``resolved``, ``median_time_to_resolve_s`` (None before the first resolve)
    and ``open_by_kind`` of a :func:`read_alerts` frame."""
    if alerts.is_empty():
        return {"open": 0, "resolved": 0, "median_time_to_resolve_s": None, "open_by_kind": {}}
    unresolved = alerts.filter(pl.col("state") != "resolved")
    resolved = alerts.filter(pl.col("state") == "resolved")
    median = resolved["time_to_resolve_s"].median() if resolved.height else None
    return {"open": unresolved.height, "resolved": resolved.height,
            "median_time_to_resolve_s": float(median) if median is not None else None,  # type: ignore[arg-type]
            "open_by_kind": dict(sorted(unresolved.group_by("kind").len().iter_rows()))}


def format_duration(seconds: float | None) -> str:
    """``"-"``, ``"45s"``, ``"12m"``, ``"3h 05m"`` or ``"2d 04h"``: a time to resolve or an alert's age."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
