"""The ``growthlake`` command as a newcomer meets it: settings are checked once, before any work, and a
problem is one line on stderr with exit code 2; the open hour is skipped and said so; the dbt
manifest is prepared under the storage root and kept fresh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake.dbt_manifest import BUILDS_KEPT, DBT_PROJECT_DIR, build_target_dir, manifest_dir, prepare_manifest
from lake.ingest import partition_key
from lake.ledger import read_ledger
from lake.paths import LakePaths
from orchestration.cli import closed_hours
from orchestration.cli_loops import experiment_lines
from tests.helpers import event, write_batch

GROWTHLAKE = str(Path(sys.executable).with_name("growthlake"))


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GROWTHLAKE, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GROWTHLAKE_ROOT": str(tmp_path / "lake"),
            "GROWTHLAKE_PII_KEY": os.urandom(16).hex()}


def _one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("growthlake: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _landed(paths: LakePaths, *keys: str) -> None:
    for key in keys:
        hour = datetime.strptime(key, "%Y-%m-%d-%H:00").replace(tzinfo=UTC)
        ts = (hour + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_batch(paths, key, [event(ts=ts, received=ts) for _ in range(3)])


@pytest.mark.parametrize(("variables", "args", "fragments"), [
    ({"GROWTHLAKE_PII_KEY": "too-short"}, ["run"], ["GROWTHLAKE_PII_KEY", "shorter than 16"]),
    ({"GROWTHLAKE_PII_KEY": ""}, ["run"], ["GROWTHLAKE_PII_KEY", "not set", "GROWTHLAKE_PROFILE=demo"]),
    ({"GROWTHLAKE_PII_KEY": ""}, ["replay-quarantine"], ["GROWTHLAKE_PII_KEY"]),
    ({"GROWTHLAKE_SILVER_STEP_ROWS": "many"}, ["status"], ["GROWTHLAKE_SILVER_STEP_ROWS", "not a whole number"]),
    ({"GROWTHLAKE_PROFILE": "production"}, ["status"], ["GROWTHLAKE_PROFILE"]),
    ({}, ["run", "--from", "2026-11-03", "--to", "2026-11-02"], ["after --to", "increasing range"]),
    ({}, ["run", "--from", "2026-11-31", "--to", "2026-12-01"], ["--from '2026-11-31'", "neither a date"]),
    ({}, ["run", "--from", "2026-11-02-5", "--to", "2026-11-02"], ["--from '2026-11-02-5'"]),
    ({}, ["run", "--from", "2026-11-02"], ["give both --from and --to"]),
    ({}, ["run", "--from", "2024-12-31", "--to", "2024-12-31"], ["before the first hourly partition"]),
    ({}, ["collect"], ["GROWTHLAKE_WRITE_KEYS", "not set"]),
])
def test_a_bad_setting_or_range_is_one_line_and_exit_2_before_any_work(env, tmp_path, variables, args, fragments):
    paths = LakePaths.from_root(tmp_path / "lake")
    _landed(paths, "2026-11-02-05:00")
    _one_line_error(_run(args, {**env, **variables}), *fragments)
    assert not (tmp_path / "lake" / "delta").exists(), "nothing may be written before the settings are checked"


def test_a_root_that_cannot_be_used_is_refused(env, tmp_path):
    (tmp_path / "afile").write_text("not a lake")
    _one_line_error(_run(["status", "--root", str(tmp_path / "afile")], env), "is a file, not a folder")
    _one_line_error(_run(["status", "--root", str(tmp_path / "nowhere")], env), "does not exist")
    _one_line_error(_run(["erase", "--user", "u1", "--yes", "--root", str(tmp_path / "nowhere")], env),
                    "does not exist")
    assert not (tmp_path / "nowhere").exists()


def test_closed_hours_splits_off_the_open_hour_and_later_ones():
    now = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
    keys = ["2026-11-02-03:00", "2026-11-02-04:00", "2026-11-02-05:00", "2026-11-02-07:00"]
    assert closed_hours(keys, ranged=False, now=now) == (keys[:2], keys[2:])
    with pytest.raises(Exception, match="still open"):
        closed_hours(keys[2:], ranged=True, now=now)
    with pytest.raises(Exception, match="only the open hour"):
        closed_hours(keys[2:3], ranged=False, now=now)


def test_run_skips_the_open_hour_says_so_and_ingests_the_closed_one(env, tmp_path):
    paths = LakePaths.from_root(tmp_path / "lake")
    # Two hours ahead: still open however long the test takes (the collector writes into the hour of receipt).
    future = partition_key(datetime.now(UTC) + timedelta(hours=2))
    _landed(paths, "2026-11-02-05:00", future)
    proc = _run(["run", "--no-warehouse", "--no-features"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"skipping {future}: the hour is still open" in proc.stdout
    assert "leaked semaphore" not in proc.stderr and "Traceback" not in proc.stderr
    ledger = read_ledger(paths).to_pylist()
    assert [(r["landing_partition"], r["bronze_rows"], r["reconciled"]) for r in ledger] == [
        ("2026-11-02-05:00", 3, True)]
    _one_line_error(_run(["run", "--from", future, "--to", future], env), f"{future} is still open")


def test_the_manifest_is_prepared_under_the_root_and_reparsed_when_the_project_changes(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    paths = LakePaths.from_root(tmp_path / "lake")
    manifest = prepare_manifest(paths, project_dir=project)
    assert manifest == manifest_dir(paths) / "manifest.json"
    assert "model.growthlake.fct_daily_oec" in json.loads(manifest.read_text())["nodes"]
    stamp = manifest.stat().st_mtime_ns
    assert prepare_manifest(paths, project_dir=project).stat().st_mtime_ns == stamp  # fresh: not parsed again
    (project / "models" / "marts" / "growth" / "fct_probe.sql").write_text("select 1 as one\n")
    assert "model.growthlake.fct_probe" in json.loads(prepare_manifest(paths, project_dir=project).read_text())["nodes"]
    assert not (project / "target").exists() and not (project / "logs").exists()  # nothing in the project
    assert sorted(p.name for p in manifest_dir(paths).parent.iterdir()) == ["manifest"]  # no parse folder left


def test_build_folders_are_kept_for_the_last_builds_only(tmp_path):
    paths = LakePaths.from_root(tmp_path / "lake")
    made = [build_target_dir(paths, f"build {i}") for i in range(BUILDS_KEPT + 3)]
    kept = sorted((Path(paths.dbt_dir) / "builds").iterdir())
    assert kept == sorted(made[-BUILDS_KEPT:]) and all(p.is_dir() for p in kept)
    assert "-build_7-" in made[-1].name


def test_experiment_lines_keep_long_names_apart():
    rows = [{"experiment": "onboarding-bandit:desktop", "metric": "onboarding_completed", "n_control": 10,
             "n_treatment": 12, "record": json.dumps({"abs_estimate": 0.1, "abs_ci_low": -0.1, "abs_ci_high": 0.3})},
            {"experiment": "paywall", "metric": "revenue", "n_control": 5, "n_treatment": 6,
             "record": json.dumps({"abs_estimate": -1.0, "abs_ci_low": -2.0, "abs_ci_high": 0.5})}]
    lines = experiment_lines(rows)
    assert lines[0].split()[:2] == ["onboarding-bandit:desktop", "onboarding_completed"]
    assert lines[1].split()[:2] == ["paywall", "revenue"]
    assert lines[0].index("onboarding_completed") == lines[1].index("revenue")  # aligned columns
