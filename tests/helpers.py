"""Builders for hand-made landing batches (tests that need exact control over every line)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from lake.ingest import partition_folder
from lake.paths import LakePaths

UA_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")


def event(name: str = "page_viewed", props: dict[str, Any] | None = None, *, event_id: str | None = None,
          ts: str = "2026-11-02T05:10:00Z", received: str = "2026-11-02T05:10:01Z", user_id: str | None = None,
          anonymous_id: str | None = "anon-1", analytics: bool = True, ip: str = "203.0.113.7") -> dict:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_name": name,
        "timestamp": ts,
        "received_at": received,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "session_id": "sess-1",
        "properties": {"path": "/pricing"} if props is None else props,
        "context": {"ip": ip, "user_agent": UA_IPHONE, "locale": "en-US",
                    "consent": {"analytics": analytics, "marketing": False}},
    }


def write_batch(paths: LakePaths, key: str, lines: list[dict | bytes], name: str = "batch-1.jsonl") -> Path:
    """Write a complete batch file into the landing hour ``key`` (dicts are serialized)."""
    folder = Path(paths.landing_events) / partition_folder(key)
    folder.mkdir(parents=True, exist_ok=True)
    raw = [x if isinstance(x, bytes) else orjson.dumps(x) for x in lines]
    target = folder / name
    target.write_bytes(b"\n".join(raw) + b"\n")
    return target


def every_fault_batch() -> tuple[list[dict | bytes], dict[str, int]]:
    """One batch holding every fault kind, and what the ledger must say about it."""
    good = [event(props={"path": f"/p{i}"}) for i in range(5)]
    signup = event("user_signed_up", {"method": "email", "email": "ada.lovelace@example.com"}, user_id="u-1")
    lines: list[dict | bytes] = [*good, signup]
    lines.append(good[0])  # duplicate in the same batch
    lines.append(b'{"event_id": "broken", "context": {"ip": "198.51.100.23", "email": "eve@example.org"')  # malformed
    no_id = event()
    del no_id["event_id"]
    lines.append(no_id)
    lines.append(event(ts="yesterday"))  # invalid timestamp
    lines.append(event(ts="2026-11-05T05:10:00Z"))  # days after received_at
    lines.append(event("button_clicked", {}))  # unplanned event
    lines.append(event("onboarding_step_completed", {"step": "profile"}))  # required step_index missing
    lines.append(event("onboarding_step_completed", {"step": "profile", "step_index": "one"}))  # wrong type
    lines.append(event("trial_started", {"plan": "gold", "trial_days": 14}))  # not an allowed value
    lines.append(event(props={"path": "/", "contact": "bob@example.com"}))  # unexpected property with PII
    lines.append(event(analytics=False))  # no analytics consent
    lines.append(b"")  # blank line: not an event
    expected = {
        "lines_landed": 17, "bronze_rows": 6, "quarantined": 9, "consent_dropped": 1, "duplicates_dropped": 1,
        "by_reason": {"malformed_json": 1, "missing_event_id": 1, "invalid_timestamp": 2, "unplanned_event": 1,
                      "required_missing": 1, "datatype_mismatch": 1, "disallowed_value": 1, "unexpected_property": 1},
    }
    return lines, expected


def write_hours(paths: LakePaths, day: str, hours: int, per_hour: int) -> dict[str, Any]:
    """``hours`` landing hours of ``day``, each with ``per_hour`` valid events, a redelivery of the
    previous hour's first event, one contract violation and one unconsented event.

    Returns the truth: the set of valid event_ids and per-kind line counts.
    """
    valid: set[str] = set()
    prev_first: dict | None = None
    for h in range(hours):
        key = f"{day}-{h:02d}:00"
        ts = f"{day}T{h:02d}:15:00Z"
        rec = f"{day}T{h:02d}:15:02Z"
        batch: list[dict | bytes] = []
        for i in range(per_hour):
            ev = event(props={"path": f"/h{h}/{i}"}, ts=ts, received=rec, anonymous_id=f"anon-{h}-{i % 17}")
            valid.add(ev["event_id"])
            batch.append(ev)
        if prev_first is not None:
            batch.append(dict(prev_first, received_at=rec))
        batch.append(event("button_clicked", {}, ts=ts, received=rec))
        batch.append(event(ts=ts, received=rec, analytics=False))
        prev_first = batch[0]  # type: ignore[assignment]
        half = len(batch) // 2
        write_batch(paths, key, batch[:half], name="part-a.jsonl")
        write_batch(paths, key, batch[half:], name="part-b.jsonl")
    return {"valid": valid, "duplicates": hours - 1, "quarantined": hours, "consent": hours,
            "lines": hours * (per_hour + 2) + hours - 1}


def stop_process(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    """Stop a server a test started (by its PID): SIGTERM, then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def warehouse_from_one_batch(root: Path, *, users: int, days: int, seed: int) -> tuple[LakePaths, LakePaths]:
    """A simulated run's landed files ingested as one landing batch (in its last hour), silver and the
    warehouse built from it — for tests of the marts, not of hourly ingestion. Returns (simulator's
    lake, built lake)."""
    import os
    import secrets

    from lake.contracts import load_plan
    from lake.ingest import ingest_partition, list_landing_partitions
    from lake.pii import PiiMasker
    from lake.silver import build_silver
    from lake.warehouse import build_warehouse
    from simulation import simulate

    sim = LakePaths.from_root(root / "sim")
    simulate(sim.root, users=users, days=days, seed=seed)
    paths = LakePaths.from_root(root / "lake")
    last = list_landing_partitions(sim)[-1]
    target = Path(paths.landing_events) / f"date={last[:10]}" / f"hour={last[11:13]}"
    target.mkdir(parents=True)
    for i, f in enumerate(sorted(Path(sim.landing_events).rglob("*.jsonl"))):
        os.link(f, target / f"{i:04d}-{f.name}")
    ingest_partition(paths, last, plan=load_plan(), masker=PiiMasker(secrets.token_bytes(32)))
    build_silver(paths)
    build_warehouse(paths)
    return sim, paths


def rewrite_landing_hour(paths: LakePaths, key: str, change: Callable[[dict], None]) -> None:
    """Rewrite the landing files of hour ``key`` in place: ``change`` edits each JSON object line (a client
    release); lines that are not JSON objects stay as they are."""
    from lake.landing import list_landing_files

    for file in list_landing_files(paths, key):
        path = Path(paths.landing_events) / file.relative
        out = []
        for line in path.read_bytes().splitlines():
            try:
                e = orjson.loads(line)
            except orjson.JSONDecodeError:
                out.append(line)
                continue
            if isinstance(e, dict):
                change(e)
            out.append(orjson.dumps(e))
        path.write_bytes(b"\n".join(out) + b"\n")
