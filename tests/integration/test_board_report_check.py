"""The board report's blocking check: the file is there, not empty, and states the marts' figures."""

from __future__ import annotations

import dagster as dg
import pytest

from growth_loops.report import default_report_path, read_report_figures
from growth_loops.report import render as render_module
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from tests.helpers import warehouse_from_one_batch


@pytest.fixture(scope="module")
def lake(tmp_path_factory, dbt_manifest_seed):
    _, paths = warehouse_from_one_batch(tmp_path_factory.mktemp("board"), users=60, days=4, seed=5)
    return paths


def _run_report(paths):
    defs = build_definitions(lake=LakeResource(root=paths.root))
    res = defs.resolve_job_def("nightly_report").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                    raise_on_error=False)
    [check] = res.get_asset_check_evaluations()
    assert check.check_name == "board_reconciles_with_marts"
    return res, check


def test_a_report_built_from_the_marts_reconciles(lake):
    res, check = _run_report(lake)
    assert res.success and check.passed, check.description
    figures = read_report_figures(default_report_path(lake).read_text(encoding="utf-8"))
    assert figures is not None and figures["oec_days"] >= 1 and figures["oec_revenue_total"] is not None
    assert check.metadata["oec_days"].value == figures["oec_days"]


def test_a_report_stating_other_figures_than_the_marts_fails(lake, monkeypatch):
    real = render_module.oec_figures

    def lying(oec):
        return {**real(oec), "oec_revenue_total": (real(oec)["oec_revenue_total"] or 0) + 100.0}

    monkeypatch.setattr(render_module, "oec_figures", lying)
    res, check = _run_report(lake)
    assert not res.success and not check.passed
    assert "oec_revenue_total" in (check.description or "") and check.metadata["mismatches"].value == 1


def test_an_empty_report_file_fails(lake, monkeypatch):
    def empty(paths, *args, **kwargs):
        out = default_report_path(paths)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("", encoding="utf-8")
        return out

    monkeypatch.setattr("orchestration.reports.assets.build_report", empty)
    res, check = _run_report(lake)
    assert not res.success and not check.passed and "missing or empty" in (check.description or "")
