"""Silver tables written directly, so feature-store tests control every value (and run fast)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from lake import delta_io
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_SESSIONS

UTC = dt.UTC


def at(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


def silver_event(person: str, name: str, ts: dt.datetime, **fields: Any) -> dict:
    """One silver event row; ``fields`` may set revenue, currency, plan, onboarding_step,
    consent_marketing, utm_source or properties (a dict)."""
    props = fields.pop("properties", {})
    identity = f"{person}|{name}|{ts.isoformat()}|{json.dumps(props, sort_keys=True)}|{fields}"
    eid = hashlib.sha1(identity.encode()).hexdigest()
    row = {f.name: None for f in SILVER_EVENTS}
    row.update(event_id=eid, event_name=name, event_ts=ts, event_date=ts.date(), received_at=ts, person_id=person,
               user_id=person, properties=json.dumps(props), _landing_partition=ts.strftime("%Y-%m-%d-%H:00"))
    row.update(fields)
    return row


def write_events(paths: LakePaths, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if rows:
        delta_io.append(paths.silver_events, pa.Table.from_pylist(rows, schema=SILVER_EVENTS),
                        partition_by=["event_date"])


def write_sessions(paths: LakePaths, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if rows:
        delta_io.append(paths.silver_sessions, pa.Table.from_pylist(rows, schema=SILVER_SESSIONS),
                        partition_by=["session_date"])


def session(person: str, start: dt.datetime, events: int, duration_s: float) -> dict:
    return {"session_id": hashlib.sha1(f"{person}{start}".encode()).hexdigest(), "person_id": person,
            "session_start": start, "session_end": start + dt.timedelta(seconds=duration_s),
            "session_date": start.date(), "event_count": events, "duration_s": duration_s,
            "first_event_name": "page_viewed", "device_type": "desktop", "is_bounce": events == 1}


def synthetic_days(paths: LakePaths, start: dt.date, days: int, *, people: int, seed: int,
                   events_per_day: float = 4.0, p_active: float = 0.5) -> None:
    """Stationary traffic: each person is active on a day with ``p_active`` and then views
    Poisson(``events_per_day``)+1 pages in one session; a third consent to marketing. One commit per day."""
    rng = np.random.default_rng(seed)
    for i in range(days):
        day = start + dt.timedelta(days=i)
        events, sessions = [], []
        for p in range(people):
            if rng.random() >= p_active:
                continue
            person = f"usr_{p:05d}"
            n = int(rng.poisson(events_per_day)) + 1
            t0 = at(day, int(rng.integers(0, 23)), int(rng.integers(0, 59)))
            for k in range(n):
                events.append(silver_event(person, "page_viewed", t0 + dt.timedelta(seconds=30 * k),
                                           consent_marketing=p % 3 == 0, utm_source="google" if p % 2 else "bing"))
            sessions.append(session(person, t0, n, 30.0 * (n - 1)))
        write_events(paths, events)
        write_sessions(paths, sessions)
