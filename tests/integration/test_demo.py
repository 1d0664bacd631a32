"""`make demo`'s path at a smaller size: the closed loop through the Dagster jobs, then the board report.

The report a newcomer opens must answer what the product is for: D7 retention, trial-to-paid, and a
loop's measured lift with its 95% interval beside the simulator's true effect.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestration.cli import main

pytestmark = pytest.mark.slow

START = dt.date(2026, 3, 2)  # pinned: `loops simulate` defaults to today minus --days


class _Tables(HTMLParser):
    """Every table of the page as (caption, headers, rows of cell text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "headers": [], "rows": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self.tables:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            (table["headers"] if tag == "th" else table["rows"][-1]).append(text)
            self._cell = None

    def handle_data(self, data):
        if self._in_caption and self.tables:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)


def _table(tables: list[dict], header: str) -> list[dict[str, str]]:
    for t in tables:
        if header in t["headers"]:
            return [dict(zip(t["headers"], row, strict=True)) for row in t["rows"] if row]
    raise AssertionError(f"no table with a {header!r} column")


def test_the_demo_report_shows_retention_conversion_and_a_lift_beside_the_truth(tmp_path, monkeypatch, capsys):
    root = tmp_path / "lake"
    for var in ("DAGSTER_HOME", "GROWTHLAKE_TRACKING_PLAN", "GROWTHLAKE_FAILPOINT", "GROWTHLAKE_ONLINE_STORE",
                "GROWTHLAKE_PII_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GROWTHLAKE_ROOT", str(root))
    monkeypatch.setenv("GROWTHLAKE_PROFILE", "demo")
    assert main(["loops", "simulate", "--days", "15", "--arrivals", "300", "--seed", "42", "--approve",
                 "--actor", "demo@growthlake", "--start", START.isoformat()]) == 0
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    where = re.search(r"report written to (\S+)", out)
    assert where, out[-2000:]
    page = _Tables()
    page.feed(Path(where.group(1)).read_text(encoding="utf-8"))

    oec = _table(page.tables, "D7 retention")
    assert any(r["D7 retention"].endswith("%") for r in oec), oec
    assert any(r["trial to paid"].endswith("%") for r in oec), oec
    lifts = _table(page.tables, "true absolute lift (simulator)")
    nudge = [r for r in lifts if r["loop"] == "trial_nudge" and r["metric"] == "converted"]
    assert nudge, lifts
    measured = re.fullmatch(r"([+-]?[\d.]+) \[([+-]?[\d.]+), ([+-]?[\d.]+)\]", nudge[0]["absolute lift [95% CI]"])
    truth = re.fullmatch(r"([+-]?[\d.]+) \((inside|outside) the interval\)", nudge[0]["true absolute lift (simulator)"])
    assert measured and truth, nudge
    low, high, true = float(measured.group(2)), float(measured.group(3)), float(truth.group(1))
    assert (truth.group(2) == "inside") == (low <= true <= high)
    assert true == pytest.approx(0.08, abs=0.01)  # the configured nudge lift, scaled by the paywall variants met
