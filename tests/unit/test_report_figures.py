"""The report's embedded figures: summarized, read back from the HTML, reconciled with the marts'."""

from datetime import date

import polars as pl
import pytest

from growth_loops.report import oec_figures, read_report_figures, reconcile_figures
from growth_loops.report.figures import FIGURES_ID

OEC = pl.DataFrame({"date_day": [date(2026, 3, 2), date(2026, 3, 1)], "active_users": [7, 5],
                    "revenue": [10.5, None]})


def test_the_summary_is_the_frames_totals_and_last_day():
    assert oec_figures(OEC) == {"oec_days": 2, "oec_last_day": "2026-03-02", "oec_revenue_total": 10.5,
                                "oec_active_users_last_day": 7}
    assert oec_figures(None)["oec_days"] == 0 and oec_figures(OEC.head(0))["oec_last_day"] is None


@pytest.mark.parametrize(("html", "expected"), [
    (f'<script type="application/json" id="{FIGURES_ID}">{{"oec_days": 3}}</script>', {"oec_days": 3}),
    ("<html>no block</html>", None),
    (f'<script type="application/json" id="{FIGURES_ID}">{{cut short</script>', None),
])
def test_figures_are_read_back_from_the_html(html, expected):
    assert read_report_figures(html) == expected


@pytest.mark.parametrize(("stated", "problems"), [
    ({"oec_days": 2, "oec_revenue_total": 10.5 + 1e-9}, []),
    ({"oec_days": 2, "oec_revenue_total": 11.5}, ["oec_revenue_total: report 11.5, marts 10.5"]),
    ({"oec_days": 1, "oec_revenue_total": 10.5}, ["oec_days: report 1, marts 2"]),
    ({}, ["oec_days: report None, marts 2", "oec_revenue_total: report None, marts 10.5"]),
])
def test_reconcile_names_every_figure_that_differs(stated, problems):
    assert reconcile_figures(stated, {"oec_days": 2, "oec_revenue_total": 10.5}) == problems
