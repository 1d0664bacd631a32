"""Acceptance: injected faults trip the right gate, no decision is actuated, the trust table says so.

A closed-loop lake runs four clean days (simulator → ingestion → silver → features → loops, every
loop approved and acting). On day five one fault is injected into the landing zone before
ingestion; the day goes through the Dagster jobs as ``growthlake run`` drives them (ranged hourly run
with its gates and trust hooks, then the day's features and decisions).
A clean fifth day is the control: the same path acts.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest

from growth_loops.actuation import document_hash, features_document_path, load_features_document
from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import LoopSettings
from lake import delta_io
from lake.contracts import load_plan
from lake.ingest import ingest_partition
from lake.landing import list_landing_files, parse_partition_key, partition_key
from lake.ledger import read_ledger, verify_partition
from lake.paths import LakePaths
from lake.pii import PiiMasker, pii_key_from_env
from lake.trust import DAILY_TRUST, latest_gate_evaluations, read_asset_runs, write_daily_trust
from orchestration.closed_loop import run_closed_loop
from simulation.closed_loop import ClosedLoopConfig
from tests.helpers import event, write_batch

pytestmark = pytest.mark.slow

START = dt.date(2026, 3, 2)
DAY5 = START + dt.timedelta(days=4)
CONFIG = ClosedLoopConfig(arrivals_per_day=300, trial_days=3, extra_sessions_per_day=0.4, actions_per_session=1.0)
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")


def _approve(paths: LakePaths):
    def approve(day, runs):
        for run in runs:
            if run.status == "awaiting_approval":
                approvals.approve(paths, run.loop, run.policy_version, actor="maria@growth")
    return approve


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory) -> Path:
    """Four clean closed-loop days, every loop approved (built once, copied per test)."""
    root = tmp_path_factory.mktemp("fault_base") / "lake"
    paths = LakePaths.from_root(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROWTHLAKE_PII_KEY", "fault-injection-test-key-0123456789")
        run_closed_loop(paths, start=START, days=4, seed=9, config=CONFIG, settings=LoopSettings(),
                        on_day=_approve(paths))
    return root


# -- faults: each rewrites the landing files of one hour (or the day) before ingestion -------------------

def _rewrite(paths: LakePaths, key: str, change) -> None:
    """Apply ``change(list of parsed events) -> list of events`` to every file of the hour (bad JSON kept)."""
    for file in list_landing_files(paths, key):
        path = Path(paths.landing_events) / file.relative
        raw = path.read_bytes().splitlines()
        parsed = []
        for line in raw:
            try:
                parsed.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                parsed.append(line)
        events = [p for p in parsed if isinstance(p, dict)]
        kept = change(events)
        out = [orjson.dumps(p) if isinstance(p, dict) else p for p in parsed if not isinstance(p, dict)]
        out += [orjson.dumps(e) for e in kept]
        path.write_bytes(b"\n".join(out) + b"\n")


def _lines(paths: LakePaths, key: str) -> int:
    return sum(len((Path(paths.landing_events) / f.relative).read_bytes().splitlines())
               for f in list_landing_files(paths, key))


def volume_drop(paths: LakePaths, key: str) -> None:
    """Half the hour never arrives. History: the same weekday and hour of four earlier weeks, at the
    hour's usual volume, ingested like any hour. (Their visitors declined analytics: the lines count
    as landed, which is what the gate measures, and stay out of silver and the features.)"""
    usual = _lines(paths, key)
    hour = parse_partition_key(key)
    masker = PiiMasker(pii_key_from_env(paths))
    for weeks in range(1, 5):
        past = hour - dt.timedelta(weeks=weeks)
        ts = past.strftime("%Y-%m-%dT%H:20:00Z")
        write_batch(paths, partition_key(past),
                    [event(ts=ts, received=ts, analytics=False) for _ in range(usual + weeks)])
        ingest_partition(paths, partition_key(past), plan=load_plan(), masker=masker)
    _rewrite(paths, key, lambda events: events[::2])


def unplanned_property(paths: LakePaths, key: str) -> None:
    """A client release starts sending a property the tracking plan does not know."""
    def change(events):
        for i, e in enumerate(events):
            if i % 3 == 0 and isinstance(e.get("properties"), dict):
                e["properties"]["coupon_code"] = "SPRING26"
        return events
    _rewrite(paths, key, change)


def shifted_distribution(paths: LakePaths, key: str) -> None:
    """Every event of the hour suddenly comes from an iPhone (a bot, a broken user-agent parser)."""
    def change(events):
        for e in events:
            if isinstance(e.get("context"), dict):
                e["context"]["user_agent"] = MOBILE_UA
        return events
    _rewrite(paths, key, change)


def no_fault(paths: LakePaths, key: str) -> None:
    pass


# -- the day-five run ------------------------------------------------------------------------------

def _day_five(tmp_path: Path, base: Path, fault, monkeypatch) -> tuple[LakePaths, str, dict, dict]:
    """Copy the base lake, run day five with ``fault`` injected into its busiest hour; return the
    lake, the hour, the day's runs by loop, and the gate verdicts of that hour."""
    monkeypatch.setenv("GROWTHLAKE_PII_KEY", "fault-injection-test-key-0123456789")
    root = tmp_path / "lake"
    shutil.copytree(base, root)
    paths = LakePaths.from_root(root)
    state: dict = {}

    def inject(paths: LakePaths, keys: list[str]) -> None:
        busiest = max(keys, key=lambda k: _lines(paths, k))
        state["key"] = busiest
        fault(paths, busiest)

    state["doc"] = document_hash(load_features_document(features_document_path(paths)))
    state["outbox"] = delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows
    result = run_closed_loop(paths, start=START, days=1, seed=9, config=CONFIG, settings=LoopSettings(),
                             before_ingest=inject)
    assert result.days == [DAY5]
    gates = latest_gate_evaluations(paths).filter((pl.col("partition") == state["key"])
                                                  & (pl.col("asset") == "bronze/events"))
    state["gates"] = {r["gate"]: r for r in gates.iter_rows(named=True)}
    state["failed"] = result.failed
    return paths, state["key"], {r.loop: r for r in result.runs[DAY5]}, state


def _assert_nothing_actuated(paths: LakePaths, runs: dict, state: dict, reason: str) -> None:
    # The hour that failed its gate makes the day untrusted: the run (as `growthlake run`) skips the
    # day's features and loops, so the product keeps yesterday's flags and nothing new is queued.
    assert runs == {}
    assert state["failed"] == [state["key"]]
    assert document_hash(load_features_document(features_document_path(paths))) == state["doc"]
    assert delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows == state["outbox"]
    assert audit.read_audit(paths, kind="action").filter(pl.col("decision_day") == DAY5).is_empty(), reason


def _assert_trust_table_shows(paths: LakePaths, key: str, gate: str) -> None:
    verdicts = {v.day: v for v in write_daily_trust(paths)}
    assert not verdicts[DAY5].trusted and any(gate in r for r in verdicts[DAY5].reasons)
    assert all(verdicts[START + dt.timedelta(days=d)].trusted for d in range(4))  # the clean days stay trusted
    table = pl.from_arrow(delta_io.read(paths.data_trust_daily, DAILY_TRUST))
    row = table.filter(pl.col("date_day") == DAY5).row(0, named=True)
    assert row["is_trusted"] is False and gate in row["untrusted_reasons"]
    runs = read_asset_runs(paths).filter((pl.col("asset") == "bronze/events") & (pl.col("partition") == key))
    assert runs.height == 1 and runs["gates_failed"][0] >= 1 and gate in runs["failed_gates"][0]


@pytest.mark.parametrize(("fault", "gate", "finding"), [
    (volume_drop, "volume_within_history", "below the median"),
    (unplanned_property, "schema_drift_at_landing", "unplanned property"),
    (shifted_distribution, "distribution_within_history", "device_type shifted"),
], ids=["volume_drop", "unplanned_property", "shifted_distribution"])
def test_a_fault_trips_its_gate_and_no_decision_is_actuated(base_lake, tmp_path, monkeypatch, fault, gate, finding):
    paths, key, runs, state = _day_five(tmp_path, base_lake, fault, monkeypatch)

    tripped = {name for name, e in state["gates"].items() if not e["passed"]}
    # The unplanned property's lines are quarantined (unexpected_property): a third of the hour, which
    # the quarantine-rate gate rightly reports as well.
    also = {"quarantine_rate_within_history"} if gate == "schema_drift_at_landing" else set()
    assert tripped == {gate} | also, f"only {gate} may trip, got {tripped}"
    assert finding in (state["gates"][gate]["description"] or "")
    assert verify_partition(paths, key).ok  # nothing lost: every landed line is in bronze or quarantine

    _assert_nothing_actuated(paths, runs, state, gate)
    _assert_trust_table_shows(paths, key, gate)


def test_a_clean_day_through_the_same_path_acts(base_lake, tmp_path, monkeypatch):
    paths, key, runs, state = _day_five(tmp_path, base_lake, no_fault, monkeypatch)
    assert state["gates"] and all(e["passed"] for e in state["gates"].values()), state["gates"]
    assert {r.status for r in runs.values()} <= {"actuated", "canary"}
    assert all(not r.outcome.evidence.get("untrusted_days") for r in runs.values())
    assert {v.day: v.trusted for v in write_daily_trust(paths)}[DAY5]
    assert latest_gate_evaluations(paths).filter(pl.col("partition") == key)["passed"].all()


def test_a_stale_upstream_stops_the_decisions(base_lake, tmp_path, monkeypatch):
    """The collector goes down at noon: the afternoon never lands, silver stops at noon."""
    monkeypatch.setenv("GROWTHLAKE_PII_KEY", "fault-injection-test-key-0123456789")
    root = tmp_path / "lake"
    shutil.copytree(base_lake, root)
    paths = LakePaths.from_root(root)
    before = (document_hash(load_features_document(features_document_path(paths))),
              delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows)

    def collector_down_at_noon(paths: LakePaths, keys: list[str]) -> None:
        for key in keys:
            if parse_partition_key(key).hour >= 12:
                shutil.rmtree(Path(paths.landing_events) / f"date={key[:10]}" / f"hour={key[11:13]}")

    result = run_closed_loop(paths, start=START, days=1, seed=9, config=CONFIG, settings=LoopSettings(),
                             before_ingest=collector_down_at_noon)
    runs = {r.loop: r for r in result.runs[DAY5]}
    assert runs and {r.status for r in runs.values()} == {"skipped"}
    skipped = audit.read_audit(paths, kind="skipped").filter(pl.col("decision_day") == DAY5)
    assert sorted(skipped["loop"]) == sorted(runs)
    for evidence in skipped["evidence"]:
        assert "stale upstream" in "; ".join(json.loads(evidence)["untrusted_days"][DAY5.isoformat()])
    assert (document_hash(load_features_document(features_document_path(paths))),
            delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows) == before
    verdicts = {v.day: v for v in write_daily_trust(paths)}
    assert not verdicts[DAY5].trusted and "stale upstream" in verdicts[DAY5].reasons[0]
    assert verdicts[DAY5 - dt.timedelta(days=1)].trusted
    assert max(read_ledger(paths)["landing_partition"].to_pylist()) == f"{DAY5}-11:00"
