"""`make dev` as a newcomer runs it: from the Makefile, with a PATH that does not hold the venv, on a
fresh lake and after `make demo` — the UI's code location must load every asset, check, job,
schedule and sensor.

The webserver is asked through its GraphQL API (what the UI itself shows). The expected graph comes
from the same definitions built in this process. Everything the servers write goes to temporary
folders (storage root, DAGSTER_HOME, HOME); they are stopped by their process group's PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"  # what a new shell has: no .venv/bin
LOAD_TIMEOUT_S = 300  # a loaded 2-core CI machine: make install's checks, dbt parse, then the code server
# landing sensor (60 s) -> hourly_ingestion run -> automation tick (30 s) -> dbt build, each run a subprocess
MARTS_TIMEOUT_S = 420

QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message stack }
    ... on RepositoryLocation { repositories { name
      assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
      jobs { name } schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # PY: should make find the venv out of date (pyproject.toml edited in a working copy), it rebuilds it
    # with the interpreter that made it, not with whatever `python3` the bare PATH has.
    return {"PATH": BARE_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PY": sys._base_executable,
            "GROWTHLAKE_ROOT": str(tmp_path / "lake"), "DAGSTER_HOME": str(tmp_path / "dagster_home"), **extra}


def _graphql(port: int) -> dict | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError):
        return None  # not listening yet


def _stop_group(proc: subprocess.Popen) -> None:
    """`dagster dev` started without a terminal ignores SIGTERM: end its whole process group by PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            time.sleep(0.5)  # the group's other members (code server, daemon) exit with it
        except subprocess.TimeoutExpired:
            continue


def _loaded_location(env: dict[str, str], log: Path, then=None) -> dict:
    """Start `make dev` and return the code location entry once the webserver reports it (``then(port, log)``
    runs before the server is stopped)."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(["make", "-C", str(REPO), "dev"], env={**env, "DAGSTER_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"make dev exited with {proc.returncode}: {log.read_text()[-3000:]}"
            answer = _graphql(port)
            entries = (answer or {}).get("data", {}).get("workspaceOrError", {}).get("locationEntries") or []
            if entries and entries[0].get("locationOrLoadError") is not None:
                if then is not None:
                    then(port, log)
                return entries[0]
            time.sleep(1)
        raise AssertionError(f"the code location did not load within {LOAD_TIMEOUT_S}s: {log.read_text()[-3000:]}")
    finally:
        _stop_group(proc)


def _expected(root: Path) -> dict[str, set]:
    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    defs = build_definitions(lake=LakeResource(root=str(root)))
    graph = defs.resolve_asset_graph()
    return {
        "assets": {k.to_user_string() for k in graph.get_all_asset_keys()},
        "checks": {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys},
        "jobs": {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")},
        "schedules": {s.name for s in defs.schedules or []},
        "sensors": {s.name for s in defs.sensors or []},
    }


def _assert_everything_loaded(entry: dict, root: Path) -> None:
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", f"the code location failed to load: {location}"
    (repo,) = location["repositories"]
    shown = {
        "assets": {"/".join(n["assetKey"]["path"]) for n in repo["assetNodes"]},
        "checks": {f"{'/'.join(n['assetKey']['path'])}:{c['name']}" for n in repo["assetNodes"]
                   for c in (n["assetChecksOrError"] or {}).get("checks", [])},
        "jobs": {j["name"] for j in repo["jobs"] if not j["name"].startswith("__")},
        "schedules": {s["name"] for s in repo["schedules"]},
        "sensors": {s["name"] for s in repo["sensors"]},
    }
    expected = _expected(root)
    assert shown == expected
    assert len(shown["assets"]) >= 29 and len(shown["checks"]) >= 70  # the graph of this release, at least
    assert {"governance/erasures:erased_subjects_absent", "reports/board:board_reconciles_with_marts",
            "marts/fct_daily_oec:assert_oec_revenue_reconciles_with_payments"} <= shown["checks"]
    assert {"marts/fct_daily_oec", "bronze/events", "loops/paywall/decisions"} <= shown["assets"]
    # out of the box: the landing sensor, the alerts and the automation run; every schedule is off (the
    # automation builds the layers a schedule would build a second time)
    running = {s["name"] for s in repo["sensors"] if s["sensorState"]["status"] == "RUNNING"}
    assert running == {"landing_files_sensor", "freshness_sla_sensor", "run_failure_alert_sensor",
                       "growthlake_automation"}
    assert {s["scheduleState"]["status"] for s in repo["schedules"]} == {"STOPPED"}


def _checkout_files() -> set[str]:
    """Files below dbt_project/ of the code checkout (dbt must never write there)."""
    return {str(p.relative_to(REPO)) for p in (REPO / "dbt_project").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_make_dev_loads_every_definition_on_a_fresh_lake_with_a_bare_path(tmp_path):
    before = _checkout_files()
    entry = _loaded_location(_bare_env(tmp_path), tmp_path / "dev.log")
    _assert_everything_loaded(entry, tmp_path / "lake")
    assert (tmp_path / "lake" / "_dbt" / "manifest" / "manifest.json").exists()  # prepared under the root
    assert _checkout_files() == before


@pytest.mark.slow
def test_make_dev_loads_every_definition_after_make_demo(tmp_path):
    """`make demo` (a small one: 40 visitors a day, 2 days of the closed loop), then `make dev` on the lake it
    left, then `growthlake status` over every layer it built."""
    env = _bare_env(tmp_path, DEMO_ARRIVALS="40", DEMO_DAYS="2")
    before = _checkout_files()
    demo = subprocess.run(["make", "-C", str(REPO), "demo"], env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "leaked semaphore" not in demo.stderr
    assert "partitions reconciled" in demo.stdout
    assert "report written to" in demo.stdout

    entry = _loaded_location(env, tmp_path / "dev.log")
    _assert_everything_loaded(entry, tmp_path / "lake")

    status = subprocess.run([str(REPO / ".venv" / "bin" / "growthlake"), "status"], env=env, capture_output=True,
                            text=True, timeout=300)
    out = status.stdout
    assert status.returncode == 0, out + status.stderr
    for section in ("bronze/events", "silver/events", "silver/sessions", "marts.fct_daily_oec", "user_features",
                    "pending approvals:", "alerts in the last 24 h:", "no failed gates"):
        assert section in out, (section, out)
    oec_rows = next(line for line in out.splitlines() if "marts.fct_daily_oec" in line).split()[-1]
    assert int(oec_rows.replace(",", "")) >= 1
    loops = [line for line in out.splitlines() if line.startswith(("onboarding", "paywall", "trial_nudge", "churn"))]
    assert len(loops) == 4, out
    assert _checkout_files() == before  # dbt wrote its target and logs under the storage root
    assert list((tmp_path / "lake" / "_dbt" / "builds").iterdir())


@pytest.mark.slow
def test_make_dev_turns_files_dropped_into_landing_into_marts_without_a_click(tmp_path):
    """Out of the box: `make dev` on a fresh lake, then a landing hour written as a collector would — the
    landing sensor ingests it, the automation builds the warehouse; nobody clicks anything."""
    from datetime import UTC, datetime, timedelta

    import duckdb

    from lake.ingest import partition_key
    from lake.paths import LakePaths
    from tests.helpers import event, write_batch

    paths = LakePaths.from_root(tmp_path / "lake")
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    ts, rec = hour.strftime("%Y-%m-%dT%H:15:00Z"), hour.strftime("%Y-%m-%dT%H:15:02Z")
    lines = [event(props={"path": f"/p{i}"}, ts=ts, received=rec, anonymous_id=f"anon-{i % 5}",
                   user_id=f"usr-{i % 5}" if i % 2 else None) for i in range(30)]
    seen: dict[str, float] = {}

    def drop_files_and_wait(port: int, log: Path) -> None:
        started = time.monotonic()
        write_batch(paths, partition_key(hour), lines)
        deadline = started + MARTS_TIMEOUT_S
        while time.monotonic() < deadline:
            if Path(paths.warehouse).exists():
                try:
                    con = duckdb.connect(paths.warehouse, read_only=True)
                    try:
                        rows = con.execute("select count(*) from staging.stg_silver__events").fetchone()[0]
                    finally:
                        con.close()
                except duckdb.Error:
                    rows = 0  # not built yet
                if rows == len(lines):
                    seen["marts_after_s"] = time.monotonic() - started
                    return
            time.sleep(3)
        raise AssertionError(f"no marts {MARTS_TIMEOUT_S}s after the files landed: {log.read_text()[-3000:]}")

    entry = _loaded_location(_bare_env(tmp_path), tmp_path / "dev.log", then=drop_files_and_wait)
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    assert seen["marts_after_s"] < MARTS_TIMEOUT_S
