"""The dbt project and the analyst warehouse, on hand-built silver Delta tables.

The scenario (day N = 2026-11-01 + N days, UTC) and what it must produce, computed by hand:

* u1 — anonymous page view (stitched to u1) then signs up on day 0 with google/cpc attribution,
  starts a trial on day 0, active on days 1 and 7, subscribes and pays 29 on day 10 (10.0 days
  after the trial start), cancels on day 12.
* u2 — first page view from twitter, then an unattributed sign-up on day 0; active on day 1
  (trial starts that day, never converts) and on day 8.
* u3 — signs up and starts a trial on day 0; on day 7 only opens an email (not activity);
  subscribes and pays 99 on day 15 (15.0 days: after the 14-day window).
* u4 — signs up on day 1, active on day 8, subscribes and pays 29 on day 8 without a trial.
* anon:a9 — an anonymous visitor on days 0 and 1: never a user, never in DAU.

DAU: day 0 = 3 (u1 u2 u3), day 1 = 3 (u1 u2 u4), day 7 = 1 (u1), day 8 = 2 (u2 u4), other days 0.
Retention, cohort day 0 (u1 u2 u3): D1 = 2/3 (u1 u2 on day 1), D7 = 1/3 (u1 on day 7);
cohort day 1 (u4): D1 = 0/1, D7 = 1/1. No D30 row: the data ends on day 15.
Trials, cohort day 0: 2 trials, 2 converted, 1 within 14 days (rate 0.5), median 12.5 days.
OEC: day 8 revenue 29 / 2 active = 14.5 per active user; day 10 revenue 29 with nobody active ->
null; d7_retention on day 7 = 1/3; trial_to_paid_rate on day 14 = 0.5, on day 15 = 0.0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lake.errors import ConfigError, WarehouseAuditFailed, WarehouseBuildFailed, WarehouseBusy
from lake.paths import LakePaths
from lake.warehouse import (
    DBT_PROJECT_DIR,
    WAREHOUSE_PATH_VAR,
    build_warehouse,
    dbt_build_args,
    dbt_env,
    oec_audit,
    read_warehouse_verdict,
    staged_warehouse,
)

pytestmark = pytest.mark.xdist_group("dbt_warehouse")  # one worker builds the shared warehouse once

UTC_TS = pa.timestamp("us", tz="UTC")
DAY0 = dt.date(2026, 11, 1)

EVENTS_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("event_name", pa.string()), ("event_ts", UTC_TS), ("event_date", pa.date32()),
    ("received_at", UTC_TS), ("person_id", pa.string()), ("user_id", pa.string()), ("anonymous_id", pa.string()),
    ("client_session_id", pa.string()), ("device_type", pa.string()), ("browser_family", pa.string()),
    ("locale", pa.string()), ("consent_marketing", pa.bool_()), ("properties", pa.string()),
    ("revenue", pa.float64()), ("currency", pa.string()), ("plan", pa.string()), ("onboarding_step", pa.string()),
    ("feature", pa.string()), ("referrer", pa.string()), ("utm_source", pa.string()), ("utm_medium", pa.string()),
    ("utm_campaign", pa.string()), ("_landing_partition", pa.string()),
])
SESSIONS_SCHEMA = pa.schema([
    ("session_id", pa.string()), ("person_id", pa.string()), ("session_start", UTC_TS), ("session_end", UTC_TS),
    ("session_date", pa.date32()), ("event_count", pa.int64()), ("duration_s", pa.float64()),
    ("first_event_name", pa.string()), ("device_type", pa.string()), ("is_bounce", pa.bool_()),
])
IDENTITY_SCHEMA = pa.schema([
    ("anonymous_id", pa.string()), ("user_id", pa.string()), ("linked_at", UTC_TS), ("link_event_id", pa.string()),
    ("link_event_name", pa.string()),
])


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(days=n)


def _at(n: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day(n), dt.time(hour, minute), tzinfo=dt.UTC)


def _event(name: str, n: int, *, person: str, anon: str, hour: int = 10, minute: int = 0, known: bool = True,
           revenue: float | None = None, plan: str | None = None, **attribution: str) -> dict:
    """One silver event; ``known=False`` for an anonymous event (stitched to ``person`` or not)."""
    ts = _at(n, hour, minute)
    return {
        "event_id": str(uuid.uuid4()), "event_name": name, "event_ts": ts, "event_date": ts.date(),
        "received_at": ts + dt.timedelta(seconds=2), "person_id": person,
        "user_id": person if known else None, "anonymous_id": anon, "client_session_id": f"s-{anon}-{n}",
        "device_type": "desktop", "browser_family": "Firefox", "locale": "en-US", "consent_marketing": False,
        "properties": "{}", "revenue": revenue, "currency": "USD" if revenue is not None else None, "plan": plan,
        "onboarding_step": None, "feature": None, "referrer": attribution.get("referrer"),
        "utm_source": attribution.get("utm_source"), "utm_medium": attribution.get("utm_medium"),
        "utm_campaign": attribution.get("utm_campaign"), "_landing_partition": f"{ts:%Y-%m-%d-%H}:00",
    }


def scenario_events() -> list[dict]:
    e = _event
    return [
        e("page_viewed", 0, person="u1", anon="a1", hour=9, known=False, utm_source="google"),
        e("user_signed_up", 0, person="u1", anon="a1", referrer="https://www.google.com", utm_source="google",
          utm_medium="cpc", utm_campaign="brand"),
        e("trial_started", 0, person="u1", anon="a1", minute=5, plan="pro"),
        e("page_viewed", 1, person="u1", anon="a1"),
        e("feature_used", 7, person="u1", anon="a1"),
        e("subscription_started", 10, person="u1", anon="a1", minute=5, plan="pro"),
        e("payment_succeeded", 10, person="u1", anon="a1", minute=6, revenue=29.0, plan="pro"),
        e("subscription_cancelled", 12, person="u1", anon="a1", plan="pro"),

        e("page_viewed", 0, person="u2", anon="a2", hour=8, known=False, utm_source="twitter", utm_medium="social"),
        e("user_signed_up", 0, person="u2", anon="a2", hour=11),
        e("feature_used", 1, person="u2", anon="a2"),
        e("trial_started", 1, person="u2", anon="a2", minute=30, plan="pro"),
        e("page_viewed", 8, person="u2", anon="a2"),

        e("user_signed_up", 0, person="u3", anon="a3", hour=12),
        e("trial_started", 0, person="u3", anon="a3", hour=12, minute=10, plan="team"),
        e("email_opened", 7, person="u3", anon="a3"),
        e("subscription_started", 15, person="u3", anon="a3", hour=12, minute=10, plan="team"),
        e("payment_succeeded", 15, person="u3", anon="a3", hour=12, minute=11, revenue=99.0, plan="team"),

        e("user_signed_up", 1, person="u4", anon="a4"),
        e("page_viewed", 8, person="u4", anon="a4"),
        e("subscription_started", 8, person="u4", anon="a4", hour=11, plan="pro"),
        e("payment_succeeded", 8, person="u4", anon="a4", hour=11, minute=1, revenue=29.0, plan="pro"),

        e("page_viewed", 0, person="anon:a9", anon="a9", known=False),
        e("page_viewed", 1, person="anon:a9", anon="a9", known=False),
    ]


def scenario_sessions(events: list[dict]) -> list[dict]:
    by_session: dict[str, list[dict]] = {}
    for ev in events:
        by_session.setdefault(ev["client_session_id"], []).append(ev)
    rows = []
    for sid, evs in sorted(by_session.items()):
        evs.sort(key=lambda ev: ev["event_ts"])
        start, end = evs[0]["event_ts"], evs[-1]["event_ts"]
        rows.append({"session_id": sid, "person_id": evs[0]["person_id"], "session_start": start,
                     "session_end": end, "session_date": start.date(), "event_count": len(evs),
                     "duration_s": (end - start).total_seconds(), "first_event_name": evs[0]["event_name"],
                     "device_type": "desktop", "is_bounce": len(evs) == 1})
    return rows


def write_silver(paths: LakePaths, *, duplicate_session: bool = False, session_column: str = "client_session_id",
                 ) -> None:
    """The scenario as the three silver Delta tables (replacing what is there).

    ``session_column``: silver names the client's session id ``client_session_id``; the first
    contract called it ``session_id``. Staging accepts either.
    """
    events = scenario_events()
    sessions = scenario_sessions(events)
    if duplicate_session:
        sessions.append(dict(sessions[0]))
    events_schema = EVENTS_SCHEMA
    if session_column != "client_session_id":
        events = [{(session_column if k == "client_session_id" else k): v for k, v in ev.items()} for ev in events]
        events_schema = pa.schema([f.with_name(session_column) if f.name == "client_session_id" else f
                                   for f in EVENTS_SCHEMA])
    links = [("a1", "u1", 0), ("a2", "u2", 0), ("a3", "u3", 0), ("a4", "u4", 1)]
    identity = [{"anonymous_id": a, "user_id": u, "linked_at": _at(n, 10, 0), "link_event_id": str(uuid.uuid4()),
                 "link_event_name": "user_signed_up"} for a, u, n in links]
    write_deltalake(paths.table("silver", "events"), pa.Table.from_pylist(events, events_schema),
                    mode="overwrite", schema_mode="overwrite", partition_by=["event_date"])
    write_deltalake(paths.table("silver", "sessions"), pa.Table.from_pylist(sessions, SESSIONS_SCHEMA),
                    mode="overwrite", partition_by=["session_date"])
    write_deltalake(paths.table("silver", "identity_map"), pa.Table.from_pylist(identity, IDENTITY_SCHEMA),
                    mode="overwrite")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One successful build of the scenario, shared by the tests of this module."""
    paths = LakePaths.from_root(tmp_path_factory.mktemp("dbt") / "lake")
    write_silver(paths)
    started = time.monotonic()
    build = build_warehouse(paths)
    print(f"\nbuild_warehouse on the fixture: {time.monotonic() - started:.2f}s (dbt {build.dbt_elapsed_s:.2f}s)")
    return paths, build


def _query(path: str, sql: str) -> list[tuple]:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _copy_lake(paths: LakePaths, root: Path) -> LakePaths:
    """A new lake holding the same silver tables and the same warehouse file."""
    target = LakePaths.from_root(root)
    shutil.copytree(Path(paths.root, "delta"), Path(target.root, "delta"))
    shutil.copyfile(paths.warehouse, target.warehouse)
    return target


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the dbt project -----------------------------------------------------------------------------

def test_dbt_parse_runs_offline_with_only_env_vars(tmp_path):
    paths = LakePaths.from_root(tmp_path / "lake")
    env = dbt_env(paths, tmp_path / "warehouse.duckdb")
    proc = subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "parse", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs")],
        env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    sources = {s["name"]: s for s in manifest["sources"].values()}
    assert {name: s["meta"]["dagster"]["asset_key"] for name, s in sources.items()} == {
        "events": ["silver", "events"], "sessions": ["silver", "sessions"],
        "identity_map": ["silver", "identity_map"], "data_trust_daily": ["observability", "data_trust_daily"]}
    assert sources["events"]["meta"]["delta_table_path"] == f"{paths.root}/delta/silver/events"
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {n["schema"] for n in models.values()} == {"staging", "intermediate", "marts"}
    assert models["fct_daily_oec"]["config"]["contract"]["enforced"] is True
    # The figures are incremental; the mart joins each date's trust verdict afresh on every run.
    assert models["int_daily_oec_figures"]["config"]["materialized"] == "incremental"
    assert models["fct_daily_oec"]["config"]["materialized"] == "table"
    assert {n["config"]["materialized"] for name, n in models.items() if name.startswith("stg_")} == {"view"}
    unit_tests = {u["name"] for u in manifest["unit_tests"].values()}
    assert {"retention_counts_activity_on_exactly_signup_plus_n", "trial_conversion_window_rate_and_median",
            "oec_arithmetic_and_no_division_by_zero"} <= unit_tests


def test_build_passes_every_model_test_and_unit_test(built):
    paths, build = built
    assert {"marts.dim_users", "marts.fct_sessions", "marts.fct_daily_active", "marts.fct_retention_cohorts",
            "marts.fct_trial_conversion", "marts.fct_daily_oec"} <= set(build.nodes_built)
    assert build.tests_failed == 0 and build.tests_passed >= 40
    results = json.loads(Path(build.run_results).read_text())["results"]
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit) >= 5 and {r["status"] for r in unit} == {"pass"}
    assert not list(Path(paths.root).glob("warehouse.duckdb.building-*"))


def test_daily_active_users(built):
    paths, _ = built
    rows = {d: (dau, wau, mau) for d, dau, wau, mau in _query(
        paths.warehouse, "select date_day, dau, wau, mau from marts.fct_daily_active")}
    assert sorted(rows) == [day(n) for n in range(16)]  # a row per date, days without activity included
    assert rows[day(0)] == (3, 3, 3)
    assert rows[day(1)] == (3, 4, 4)
    assert rows[day(7)] == (1, 3, 4)  # u3's email open is not activity; WAU over days 1..7: u1 u2 u4
    assert rows[day(8)] == (2, 3, 4)  # WAU over days 2..8: u1 (day 7), u2, u4
    assert rows[day(10)] == (0, 3, 4)


def test_retention_cohorts(built):
    paths, _ = built
    rows = {(c, n): (size, kept, rate) for c, n, size, kept, rate in _query(
        paths.warehouse, "select cohort_date, day_n, cohort_users, retained_users, retention_rate "
                         "from marts.fct_retention_cohorts")}
    assert rows == {
        (day(0), 1): (3, 2, pytest.approx(2 / 3)),
        (day(0), 7): (3, 1, pytest.approx(1 / 3)),
        (day(1), 1): (1, 0, 0.0),
        (day(1), 7): (1, 1, 1.0),
    }


def test_trial_conversion(built):
    paths, _ = built
    rows = _query(paths.warehouse, "select trial_start_date, trials, converted_users, converted_in_window, "
                                   "window_conversion_rate, median_days_to_convert "
                                   "from marts.fct_trial_conversion order by 1")
    assert rows == [(day(0), 2, 2, 1, 0.5, pytest.approx(12.5)), (day(1), 1, 0, 0, 0.0, None)]


def test_daily_oec(built):
    paths, _ = built
    rows = {r[0]: r[1:] for r in _query(
        paths.warehouse, "select date_day, active_users, revenue, revenue_per_active_user, d7_cohort_users, "
                         "d7_retention, trial_cohort_trials, trial_to_paid_rate from marts.fct_daily_oec")}
    assert rows[day(8)] == (2, 29.0, 14.5, 1, 1.0, 0, None)
    assert rows[day(7)] == (1, 0.0, 0.0, 3, pytest.approx(1 / 3), 0, None)
    assert rows[day(10)] == (0, 29.0, None, 0, None, 0, None)  # revenue, nobody active: no division by zero
    assert rows[day(14)][5:] == (2, 0.5)
    assert rows[day(15)] == (0, 99.0, None, 0, None, 1, 0.0)
    assert sum(r[1] for r in rows.values()) == 157.0  # every payment, once


def test_dim_users(built):
    paths, _ = built
    rows = {r[0]: r[1:] for r in _query(
        paths.warehouse, "select person_id, signup_date, acquisition_touch, acquisition_utm_source, "
                         "acquisition_utm_medium, plan, is_paying, cancelled_at is not null, lifetime_revenue "
                         "from marts.dim_users")}
    assert rows == {
        "u1": (day(0), "user_signed_up", "google", "cpc", "pro", False, True, 29.0),
        "u2": (day(0), "page_viewed", "twitter", "social", "pro", False, False, 0.0),
        "u3": (day(0), None, None, None, "team", True, False, 99.0),
        "u4": (day(1), None, None, None, "pro", True, False, 29.0),
    }


def test_analyst_reads_the_file_with_nothing_else_running(built):
    paths, _ = built
    script = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              "print(len(con.sql('select * from marts.fct_daily_oec').fetchall()), "
              "con.execute('select count(*) from staging.stg_silver__events').fetchone()[0])")
    proc = subprocess.run([sys.executable, "-c", script, paths.warehouse], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("GROWTHLAKE")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["16", str(len(scenario_events()))]


def test_the_duckdb_command_line_opens_the_warehouse(built):
    """What the README tells analysts: `duckdb -readonly $GROWTHLAKE_ROOT/warehouse.duckdb -c ...`."""
    paths, _ = built
    cli = Path(sys.executable).with_name("duckdb")
    assert cli.exists(), "duckdb-cli is a project dependency"
    proc = subprocess.run([str(cli), "-readonly", "-csv", paths.warehouse, "-c",
                           "select count(*) from marts.fct_daily_oec"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "16"


# -- build-and-swap ------------------------------------------------------------------------------

def test_failing_dbt_test_keeps_the_previous_warehouse(built, tmp_path):
    paths = _copy_lake(built[0], tmp_path / "lake")
    before = _digest(paths.warehouse)
    inode = os.stat(paths.warehouse).st_ino
    write_silver(paths, duplicate_session=True, session_column="session_id")  # the older column name too
    with pytest.raises(WarehouseBuildFailed) as failure:
        build_warehouse(paths)
    assert failure.value.failed == ["unique_stg_silver__sessions_session_id"]  # everything else passed
    assert "was left unchanged" in str(failure.value)
    assert _digest(paths.warehouse) == before and os.stat(paths.warehouse).st_ino == inode
    assert len(_query(paths.warehouse, "select * from marts.fct_daily_oec")) == 16
    assert not list(Path(paths.root).glob("warehouse.duckdb.building-*"))


def test_failing_gx_audit_keeps_the_previous_warehouse(built, tmp_path):
    """The GX suite runs on the private copy before the swap: a failing suite publishes nothing."""
    assert [(c.name, c.passed) for c in built[1].checks] == [("gx_fct_daily_oec", True)]
    paths = _copy_lake(built[0], tmp_path / "lake")
    before, inode = _digest(paths.warehouse), os.stat(paths.warehouse).st_ino
    # a daily-active-users band no day of the scenario reaches: the real suite, deliberately wrong parameters
    with pytest.raises(WarehouseAuditFailed) as failure:
        build_warehouse(paths, audit=oec_audit(band=(1e6, 1e7)))
    assert failure.value.failed == ["gx_fct_daily_oec"]
    assert "was left unchanged" in str(failure.value) and "active_users" in str(failure.value)
    assert _digest(paths.warehouse) == before and os.stat(paths.warehouse).st_ino == inode
    assert len(_query(paths.warehouse, "select * from marts.fct_daily_oec")) == 16
    assert not list(Path(paths.root).glob("warehouse.duckdb.building-*"))
    verdict = read_warehouse_verdict(paths)
    assert verdict is not None and not verdict["published"] and not verdict["checks"][0]["passed"]

    rebuilt = build_warehouse(paths)  # the cause removed (the learned band): the build is swapped in
    assert os.stat(paths.warehouse).st_ino != inode
    assert read_warehouse_verdict(paths)["build_id"] == rebuilt.build_id  # type: ignore[index]


def test_a_read_write_session_blocks_the_build_with_a_clear_error(built, tmp_path):
    paths = _copy_lake(built[0], tmp_path / "lake")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", paths.warehouse],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="read-only"):
            build_warehouse(paths)
    finally:
        holder.kill()
        holder.wait()


def test_staged_warehouse_discards_the_copy_when_the_block_raises(built, tmp_path):
    paths = _copy_lake(built[0], tmp_path / "lake")
    before = _digest(paths.warehouse)
    with pytest.raises(RuntimeError, match="dbt crashed"):
        with staged_warehouse(paths) as building:
            con = duckdb.connect(str(building))
            con.execute("drop table marts.fct_daily_oec")
            con.close()
            raise RuntimeError("dbt crashed")
    assert _digest(paths.warehouse) == before
    assert not list(Path(paths.root).glob("warehouse.duckdb.building-*"))


def test_staged_warehouse_with_a_runner_that_passes_the_path_as_a_dbt_var(built, tmp_path):
    """The dagster-dbt way: no per-call environment, the copy's path goes in --vars."""
    paths = _copy_lake(built[0], tmp_path / "lake")
    env = {k: v for k, v in os.environ.items() if k != "GROWTHLAKE_WAREHOUSE_PATH"}
    env["GROWTHLAKE_ROOT"] = paths.root
    with staged_warehouse(paths) as building:
        duckdb.connect(str(building)).execute("create table marts.marker as select 1 as x").close()
        args = dbt_build_args(select="stg_silver__identity_map", full_refresh=False,
                              vars={WAREHOUSE_PATH_VAR: str(building)})
        proc = subprocess.run([sys.executable, "-m", "dbt.cli.main", *args, "--project-dir", str(DBT_PROJECT_DIR),
                               "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
                               "--log-path", str(tmp_path / "logs")],
                              env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _query(paths.warehouse, "select x from marts.marker") == [(1,)]  # the copy was swapped in
    assert _query(paths.warehouse, "select count(*) from staging.stg_silver__identity_map") == [(4,)]


def test_missing_silver_tables_are_named(tmp_path):
    with pytest.raises(ConfigError, match="events, sessions, identity_map not found"):
        build_warehouse(LakePaths.from_root(tmp_path / "lake"))


READER = r"""
import json, pathlib, sys, time
import duckdb
path, stop, ready, out, mode = sys.argv[1:6]
ok, errors, messages = 0, 0, []
session = duckdb.connect(path, read_only=True) if mode == "session" else None
while not pathlib.Path(stop).exists():
    try:
        con = session or duckdb.connect(path, read_only=True)
        rows, active = con.execute("select count(*), sum(active_users) from marts.fct_daily_oec").fetchone()
        if con is not session:
            con.close()
        assert rows == 16 and active == 9, (rows, active)
        ok += 1
        pathlib.Path(ready).touch()
    except Exception as exc:
        errors += 1
        messages.append(repr(exc)[:300])
    time.sleep(0.02)
pathlib.Path(out).write_text(json.dumps({"ok": ok, "errors": errors, "messages": messages[:5]}))
"""


@pytest.mark.slow
def test_readers_never_fail_while_the_warehouse_is_rebuilt(built, tmp_path):
    paths = _copy_lake(built[0], tmp_path / "lake")
    before = _query(paths.warehouse, "select * from marts.fct_daily_oec order by date_day")
    stop = tmp_path / "stop"
    readers = {}
    for mode in ("session", "reconnect"):  # an analyst's open session, and one who reconnects per query
        ready, out = tmp_path / f"{mode}.ready", tmp_path / f"{mode}.json"
        proc = subprocess.Popen([sys.executable, "-c", READER, paths.warehouse, str(stop), str(ready), str(out), mode])
        readers[mode] = (proc, ready, out)
    try:
        deadline = time.monotonic() + 60
        while not all(ready.exists() for _, ready, _ in readers.values()):
            assert time.monotonic() < deadline, "readers did not start"
            assert all(p.poll() is None for p, _, _ in readers.values()), "a reader died"
            time.sleep(0.05)
        first = build_warehouse(paths)
        second = build_warehouse(paths, full_refresh=True)
    finally:
        stop.touch()
        for proc, _, _ in readers.values():
            proc.wait(timeout=60)
    for mode, (_, _, out) in readers.items():
        stats = json.loads(out.read_text())
        assert stats["errors"] == 0, (mode, stats["messages"])
        assert stats["ok"] > 10, (mode, stats)
    assert first.tests_failed == second.tests_failed == 0 and second.full_refresh
    # incremental and full-refresh rebuilds of unchanged silver give the same OEC
    assert _query(paths.warehouse, "select * from marts.fct_daily_oec order by date_day") == before
    proc = subprocess.run([sys.executable, "-c", "import duckdb, sys; print(len(duckdb.connect(sys.argv[1], "
                           "read_only=True).sql('select * from marts.fct_daily_oec').fetchall()))", paths.warehouse],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "16", proc.stderr


def test_dbt_docs_generate_works(built, tmp_path):
    """`dbt docs generate` documents every model with its columns from the built warehouse."""
    paths, _ = built
    from lake.warehouse import DBT_PROJECT_DIR, dbt_env

    target = tmp_path / "docs"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "docs", "generate", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)],
        env=dbt_env(paths, paths.warehouse), capture_output=True, text=True, timeout=180, cwd=DBT_PROJECT_DIR,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    catalog = json.loads((target / "catalog.json").read_text())
    oec = next(v for k, v in catalog["nodes"].items() if k.endswith(".fct_daily_oec"))
    assert {"date_day", "active_users", "revenue_per_active_user"} <= set(oec["columns"])
    assert (target / "index.html").exists()
