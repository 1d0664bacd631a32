"""Issue 19, point 3: the quarantine-rate gate on bronze/events, per landing hour.

Clean simulated weeks (fixed seeds and start dates) go through the hourly job's bronze step as ranged
runs: the gate judges every hour and fails none. A broken client release — the numeric properties of
an hour's lines sent as strings, about half its lines quarantined as datatype_mismatch — fails the
gate for that hour only, and the verdict names the violation.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from lake.landing import list_landing_files, list_landing_partitions
from lake.ledger import read_ledger
from lake.paths import LakePaths
from orchestration.bronze.checks import QUARANTINE_RATE
from orchestration.definitions import build_definitions
from orchestration.hours import HOUR_RANGE_TAGS, split_runs
from orchestration.resources import LakeResource
from simulation import simulate
from tests.helpers import rewrite_landing_hour

pytestmark = pytest.mark.slow

USERS, DAYS = 600, 9  # about 40k lines: eight days of history before the last day


def _run_bronze(paths: LakePaths) -> dict[str, dg.AssetCheckEvaluation]:
    """Ingest every landed hour through the hourly job's bronze assets (ranged runs of up to a week);
    return the quarantine-rate verdict per hour."""
    defs = build_definitions(lake=LakeResource(root=paths.root))
    job = defs.resolve_job_def("hourly_ingestion")
    bronze = [dg.AssetKey(["bronze", name]) for name in ("events", "quarantine", "ingestion_ledger")]
    verdicts: dict[str, dg.AssetCheckEvaluation] = {}
    for keys in split_runs(list_landing_partitions(paths)):
        res = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                                     asset_selection=bronze, tags={HOUR_RANGE_TAGS[0]: keys[0],
                                                                   HOUR_RANGE_TAGS[1]: keys[-1]})
        verdicts |= {e.partition: e for e in res.get_asset_check_evaluations() if e.check_name == QUARANTINE_RATE}
    return verdicts


def _retype(paths: LakePaths, key: str) -> None:
    """A broken client release: every numeric property of the hour's lines arrives as a string."""

    def change(e: dict) -> None:
        props = e.get("properties")
        if isinstance(props, dict):
            for k, v in props.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    props[k] = str(v)

    rewrite_landing_hour(paths, key, change)


def _failures(verdicts: dict[str, dg.AssetCheckEvaluation]) -> dict[str, str]:
    return {k: v.description or "" for k, v in verdicts.items() if not v.passed}


def test_a_retyped_release_fails_its_hour_and_no_other(paths):
    simulate(paths.root, users=USERS, days=DAYS, seed=21, start=dt.date(2026, 3, 2))
    last_day = [k for k in list_landing_partitions(paths) if k.startswith("2026-03-10")]
    busiest = max(last_day, key=lambda k: sum(f.size for f in list_landing_files(paths, k)))
    _retype(paths, busiest)

    verdicts = _run_bronze(paths)

    row = read_ledger(paths, [busiest]).to_pylist()[0]
    share = row["quarantined"] / row["lines_landed"]
    assert 0.4 < share < 0.65, f"the fault should quarantine about half the hour, got {share:.0%}"
    assert _failures(verdicts).keys() == {busiest}
    failed = verdicts[busiest]
    assert "datatype_mismatch" in (failed.description or "")
    meta = {k: v.value for k, v in failed.metadata.items()}
    assert meta["share"] == pytest.approx(share, abs=1e-3)
    assert meta["history_hours"] >= 6 and meta["band_upper"] < 0.2
    assert any(t.startswith("datatype_mismatch") for t in meta["top_violations"])


@pytest.mark.parametrize("seed", [5, 33])
def test_clean_simulated_weeks_never_fail_the_gate(paths, seed):
    simulate(paths.root, users=USERS, days=DAYS, seed=seed, start=dt.date(2026, 5, 4))
    verdicts = _run_bronze(paths)
    hours = list_landing_partitions(paths)
    assert verdicts.keys() == set(hours)
    judged = [k for k, v in verdicts.items() if "band_upper" in v.metadata]
    assert len(judged) > len(hours) / 2
    assert _failures(verdicts) == {}
    print(f"seed {seed}: {len(hours)} hours evaluated, {len(judged)} against a band, 0 failed")
