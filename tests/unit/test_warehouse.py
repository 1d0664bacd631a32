"""The dbt argument builder and the reading of dbt's run results (pure functions)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lake.errors import ConfigError
from lake.paths import LakePaths
from lake.warehouse import _summarize, build_warehouse, dbt_build_args, dbt_env, how_to_connect


@pytest.mark.parametrize(
    ("select", "full_refresh", "vars", "expected"),
    [
        (None, False, None, ["build"]),
        ("", False, {}, ["build"]),
        ("  ", False, None, ["build"]),
        ("marts.growth", False, None, ["build", "--select", "marts.growth"]),
        (" +fct_daily_oec ", False, None, ["build", "--select", "+fct_daily_oec"]),
        (None, True, None, ["build", "--full-refresh"]),
        ("fct_daily_oec dim_users", True, {"reporting_currency": "EUR", "incremental_lookback_days": 3},
         ["build", "--select", "fct_daily_oec dim_users", "--full-refresh",
          "--vars", '{"incremental_lookback_days": 3, "reporting_currency": "EUR"}']),
    ],
)
def test_dbt_build_args(select, full_refresh, vars, expected):
    assert dbt_build_args(select=select, full_refresh=full_refresh, vars=vars) == expected


def test_dbt_build_args_vars_are_json_that_dbt_reads_back():
    args = dbt_build_args(select=None, full_refresh=False, vars={"non_activity_events": ["email_opened"], "x": None})
    assert json.loads(args[args.index("--vars") + 1]) == {"non_activity_events": ["email_opened"], "x": None}


def test_dbt_build_args_refuses_values_dbt_cannot_read():
    with pytest.raises(ConfigError, match="dbt vars"):
        dbt_build_args(select=None, full_refresh=False, vars={"since": dt.date(2026, 11, 1)})


def test_dbt_build_args_are_keyword_only():
    with pytest.raises(TypeError):
        dbt_build_args("marts", False, None)  # type: ignore[misc]


def test_dbt_env_points_dbt_at_the_lake_and_the_copy(tmp_path):
    paths = LakePaths.from_root(tmp_path)
    env = dbt_env(paths, tmp_path / "warehouse.duckdb.building-x", base={"PATH": "/bin"})
    assert env["GROWTHLAKE_ROOT"] == str(tmp_path)
    assert env["GROWTHLAKE_WAREHOUSE_PATH"] == str(tmp_path / "warehouse.duckdb.building-x")
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false" and env["PATH"] == "/bin"


def test_how_to_connect_names_the_file_and_read_only(tmp_path):
    text = how_to_connect(LakePaths.from_root(tmp_path))
    assert f"duckdb -readonly {tmp_path}/warehouse.duckdb" in text
    assert "read_only=True" in text and "reconnects" in text


def _result(uid: str, status: str, message: str = "", relation: str | None = None) -> dict:
    return {"unique_id": uid, "status": status, "message": message, "relation_name": relation}


def test_summarize_counts_models_tests_and_names_the_failures():
    summary = _summarize([
        _result("model.growthlake.stg_silver__sessions", "success",
                relation='"warehouse"."staging"."stg_silver__sessions"'),
        _result("test.growthlake.unique_stg_silver__sessions_session_id.abc", "fail",
                "Got 1 result, configured to fail if != 0"),
        _result("test.growthlake.not_null_stg_silver__sessions_session_id.def", "pass"),
        _result("test.growthlake.accepted_values_stg_silver__events_currency.ghi", "warn"),
        _result("unit_test.growthlake.fct_daily_oec.oec_arithmetic", "pass"),
        _result("unit_test.growthlake.fct_trial_conversion.window_rate", "fail", "actual differs from expected"),
        _result("test.growthlake.assert_oec_revenue_reconciles_with_payments", "error", "Database Error"),
        _result("model.growthlake.fct_sessions", "skipped"),
        _result("model.growthlake.dim_users", "error", "Runtime Error\n  Binder Error: no column x"),
    ])
    assert summary["built"] == ["staging.stg_silver__sessions"]
    assert summary["failed"] == ["unique_stg_silver__sessions_session_id", "fct_trial_conversion::window_rate",
                                 "assert_oec_revenue_reconciles_with_payments", "dim_users"]
    assert summary["tests_passed"] == 2 and summary["tests_warned"] == 1
    assert "dim_users (error: Runtime Error Binder Error: no column x)" in summary["failed_detail"]


def test_summarize_nothing_ran():
    assert _summarize([]) == {"built": [], "failed": [], "failed_detail": [], "tests_passed": 0, "tests_warned": 0}


def test_the_warehouse_needs_a_local_root():
    with pytest.raises(ConfigError, match="not a local folder"):
        build_warehouse(LakePaths.from_root("s3://bucket/lake"))
