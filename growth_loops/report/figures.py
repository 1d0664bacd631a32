"""The report's headline figures, embedded in the HTML as JSON so a check can reconcile them.

:func:`oec_figures` summarizes the OEC frame the report was rendered from (days, last day, total
revenue, active users on the last day); the renderer embeds it as ``<script type="application/json"
id="report-figures">``; :func:`read_report_figures` reads it back from a written file and
:func:`reconcile_figures` compares it with the same summary of the warehouse's
``marts.fct_daily_oec`` — what the Dagster check ``board_reconciles_with_marts`` does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import polars as pl

__all__ = ["FIGURES_ID", "oec_figures", "read_report_figures", "reconcile_figures"]

FIGURES_ID = "report-figures"
_FIGURES = re.compile(rf'<script type="application/json" id="{FIGURES_ID}">(.*?)</script>', re.DOTALL)


def oec_figures(oec: pl.DataFrame | None) -> dict[str, Any]:
    """The OEC summary the report states: ``oec_days``, ``oec_last_day`` (ISO date or None),
    ``oec_revenue_total`` and ``oec_active_users_last_day`` (None without rows)."""
    if oec is None or oec.is_empty():
        return {"oec_days": 0, "oec_last_day": None, "oec_revenue_total": None, "oec_active_users_last_day": None}
    last = oec.sort("date_day").row(-1, named=True)
    revenue = oec["revenue"].cast(pl.Float64).fill_null(0.0).sum()
    return {"oec_days": oec.height, "oec_last_day": str(last["date_day"]),
            "oec_revenue_total": round(float(revenue), 6),
            "oec_active_users_last_day": None if last["active_users"] is None else int(last["active_users"])}


def read_report_figures(html: str) -> dict[str, Any] | None:
    """The figures embedded in a report's HTML, or None when it carries none."""
    match = _FIGURES.search(html)
    if match is None:
        return None
    try:
        figures = json.loads(match.group(1))
    except json.JSONDecodeError:
        return None
    return figures if isinstance(figures, dict) else None


def reconcile_figures(stated: dict[str, Any], marts: dict[str, Any]) -> list[str]:
    """Each figure the report states that differs from the marts', as ``"name: report X, marts Y"``."""
    problems = []
    for name, truth in marts.items():
        value = stated.get(name)
        same = (value == truth if not (isinstance(value, float | int) and isinstance(truth, float | int))
                else math.isclose(float(value), float(truth), rel_tol=1e-9, abs_tol=1e-6))
        if not same:
            problems.append(f"{name}: report {value!r}, marts {truth!r}")
    return problems
