"""The report's plots: each function takes the data it shows and returns a PNG to embed in the page.

Drawn with matplotlib's Agg backend on a ``Figure`` of its own (no pyplot, no global state, no
display), imported only when a plot is drawn: only building a report needs matplotlib. The PNGs
carry no "Software" metadata, so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import polars as pl

from growth_loops.features.rollups import REPORTING_CURRENCY
from growth_loops.report import formatting as fmt

__all__ = [
    "plot_guardrails",
    "plot_ingestion_health",
    "plot_ingestion_volume",
    "plot_lifts",
    "plot_loop_status",
    "plot_materializations",
    "plot_oec",
    "plot_oec_components",
    "plot_quarantine",
    "plot_trust",
]

_WIDTH = 9.0  # inches: every plot spans the page
_STATUS_COLORS = {"actuated": "#2e7d32", "canary": "#81c784", "awaiting_approval": "#f9a825",
                  "skipped": "#9e9e9e", "rejected": "#6a1b9a", "rolled_back": "#c62828"}
_MATERIALIZATION_COLORS = {"published": "#2e7d32", "unchanged": "#90caf9", "held": "#c62828"}


# -- the plots -----------------------------------------------------------------------------------

def plot_oec(oec: pl.DataFrame) -> bytes:
    """The OEC, revenue per active user, per day (``marts.fct_daily_oec``)."""
    fig, ax = _figure(3.2)
    ax.plot(oec["date_day"].to_list(), _floats(oec["revenue_per_active_user"]), marker="o", color="#1565c0")
    untrusted = oec.filter(pl.col("is_trusted") == False) if "is_trusted" in oec.columns else oec.clear()  # noqa: E712
    if not untrusted.is_empty():
        ax.scatter(untrusted["date_day"].to_list(), _floats(untrusted["revenue_per_active_user"]), s=160,
                   facecolors="none", edgecolors="#c62828", linewidths=2, label="untrusted day (a gate failed)",
                   zorder=3)
    ax.set_title("OEC: revenue per active user")
    ax.set_ylabel(f"{REPORTING_CURRENCY} per active user")
    _style(ax, dates=True, legend=not untrusted.is_empty())
    return _png(fig)


_TRUST_COLORS = {"trusted": "#2e7d32", "passed": "#a5d6a7", "untrusted": "#c62828", "failed": "#c62828"}
_TRUSTED_ROW = "decisions may use the day"


def plot_trust(days: Sequence[Any], gates: pl.DataFrame) -> bytes:
    """Per day: is the day trusted (top row), and each gate's latest verdict on data of that day."""
    rows = [{"day": d.day, "row": _TRUSTED_ROW, "status": "trusted" if d.trusted else "untrusted"} for d in days]
    if not gates.is_empty():
        first, last = days[0].day, days[-1].day
        per_day = (gates.filter(pl.col("data_dates").list.len() > 0).explode("data_dates")
                   .filter(pl.col("data_dates").is_between(first, last))
                   .group_by("gate", "data_dates").agg(pl.col("passed").all()))
        rows += [{"day": r["data_dates"], "row": r["gate"], "status": "passed" if r["passed"] else "failed"}
                 for r in per_day.iter_rows(named=True)]
    frame = pl.DataFrame(rows, schema={"day": pl.Date, "row": pl.String, "status": pl.String})
    labels = [_TRUSTED_ROW, *sorted(set(frame["row"].to_list()) - {_TRUSTED_ROW})]
    fig, ax = _figure(1.4 + 0.32 * len(labels))
    _status_rows(ax, frame, labels, column="row", colors=_TRUST_COLORS, size=60,
                 markers={"untrusted": "X", "failed": "X"})
    ax.set_title("Data trust per day: the gates' latest verdicts on each day's data")
    _style(ax, grid="x", dates=True,
           legend={"ncol": 4, "loc": "upper center", "bbox_to_anchor": (0.5, -0.12), "frameon": False})
    return _png(fig)


def plot_oec_components(oec: pl.DataFrame) -> bytes:
    """Four panels: active users, revenue, D7 retention and trial-to-paid conversion per day."""
    fig, axes = _figure(5.2, 2, 2)
    days = oec["date_day"].to_list()
    panels = (("active_users", "Active users", 1.0, "people"), ("revenue", "Revenue", 1.0, REPORTING_CURRENCY),
              ("d7_retention", "D7 retention", 100.0, "%"), ("trial_to_paid_rate", "Trial to paid", 100.0, "%"))
    for ax, (column, title, scale, unit) in zip(axes.ravel(), panels, strict=True):
        values = [v * scale for v in _floats(oec[column])]
        ax.set_title(title)
        if all(math.isnan(v) for v in values):
            _empty_panel(ax, "no cohort old enough yet")
            continue
        ax.plot(days, values, marker="o", color="#37474f")
        ax.set_ylabel(unit)
        _style(ax, dates=True)
    return _png(fig)


def plot_lifts(rows: list[dict[str, Any]]) -> bytes:
    """Forest plot: each result's relative lift with its 95% interval (rows with a finite relative lift)."""
    fig, ax = _figure(1.2 + 0.45 * len(rows))
    for i, r in enumerate(rows):
        est, low, high = (r["rel_estimate"] * 100, r["rel_ci_low"] * 100, r["rel_ci_high"] * 100)
        color = "#2e7d32" if low > 0 else "#c62828" if high < 0 else "#546e7a"
        ax.errorbar([est], [i], xerr=[[est - low], [high - est]], fmt="o", color=color, capsize=4)
    ax.axvline(0, color="#212121", linewidth=1)
    ax.set_yticks(range(len(rows)), [f"{r['experiment']} \u00b7 {r['metric']}" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("relative lift of treatment over control, % (95% interval)")
    _style(ax, grid="x")
    return _png(fig)


def plot_loop_status(runs: pl.DataFrame) -> bytes:
    """Timeline: each loop's status per decision day (rolled back marked ×)."""
    loops = list(dict.fromkeys(runs.sort("loop")["loop"].to_list()))
    fig, ax = _figure(1.4 + 0.5 * len(loops))
    _status_rows(ax, runs, loops, column="loop", colors=_STATUS_COLORS, size=90, markers={"rolled_back": "X"})
    _style(ax, grid="x", dates=True,
           legend={"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": 6, "frameon": False})
    return _png(fig)


def plot_guardrails(rows: list[dict[str, Any]]) -> bytes:
    """Each guardrail's relative impact over time, with its upper bound, threshold and breaches."""
    keys = list(dict.fromkeys((r["loop"], r["metric"]) for r in rows))
    fig, ax = _figure(3.4)
    for loop, metric in keys:
        mine = sorted((r for r in rows if (r["loop"], r["metric"]) == (loop, metric)), key=lambda r: r["day"])
        days = [r["day"] for r in mine]
        impact = [r["relative_impact"] * 100 for r in mine]
        upper = [r["upper_bound"] * 100 if fmt.finite(r.get("upper_bound")) else v
                 for r, v in zip(mine, impact, strict=True)]
        line = ax.errorbar(days, impact, yerr=[[0] * len(impact), [u - v for u, v in zip(upper, impact, strict=True)]],
                           marker="o", capsize=3, label=f"{loop} \u00b7 {metric}")
        threshold = mine[-1].get("threshold")
        if fmt.finite(threshold):
            ax.axhline(threshold * 100, linestyle="--", color=line[0].get_color(), linewidth=1)
        for r, v in zip(mine, impact, strict=True):
            if r.get("verdict") == "rollback":
                ax.scatter([r["day"]], [v], marker="X", s=140, color="#c62828", zorder=5)
    ax.axhline(0, color="#212121", linewidth=0.8)
    ax.set_title("Guardrails: relative impact, bar up to the one-sided upper bound")
    ax.set_ylabel("relative impact, %")
    _style(ax, dates=True, legend=True)
    return _png(fig)


def plot_ingestion_volume(daily: pl.DataFrame) -> bytes:
    """Stacked bars per landing day: lines to bronze, quarantined, dropped (no consent, duplicate)."""
    fig, ax = _figure(3.4)
    days = daily["day"].to_list()
    bottom = [0.0] * len(days)
    for column, label, color in (("bronze_rows", "bronze", "#2e7d32"), ("quarantined", "quarantined", "#c62828"),
                                 ("consent_dropped", "dropped: no consent", "#9e9e9e"),
                                 ("duplicates_dropped", "dropped: duplicate", "#f9a825")):
        values = [float(v) for v in daily[column]]
        ax.bar(days, values, bottom=bottom, label=label, color=color, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("landed lines")
    _integer_axis(ax.yaxis)
    _style(ax, grid="y", dates=True,
           legend={"ncol": 4, "loc": "upper center", "bbox_to_anchor": (0.5, -0.15), "frameon": False})
    return _png(fig)


def plot_ingestion_health(daily: pl.DataFrame) -> bytes:
    """Per landing day: quarantine rate and reconciled share (left), gates evaluated and failed (right)."""
    fig, (left, right) = _figure(3.2, 1, 2)
    days = daily["day"].to_list()
    left.plot(days, [v * 100 for v in _floats(daily["quarantine_rate"])], marker="o", color="#c62828",
              label="quarantine rate")
    left.plot(days, [v * 100 for v in _floats(daily["reconciled_share"])], marker="s", color="#2e7d32",
              label="partitions reconciled")
    left.set_ylim(-5, 105)
    left.set_ylabel("%")
    left.set_title("Quarantine rate and reconciliation")
    _style(left, dates=True, legend=True)
    right.bar(days, [float(v) for v in daily["partitions"]], color="#90caf9", label="gates evaluated")
    right.bar(days, [float(v) for v in daily["failed_gates"]], color="#c62828", label="gates failed")
    right.set_title("Ingestion gates per day")
    _integer_axis(right.yaxis)
    _style(right, grid="y", dates=True, legend=True)
    return _png(fig)


def plot_materializations(log: pl.DataFrame, thresholds: Mapping[str, float]) -> bytes:
    """Each feature view's latest materialization status per day (top) and its largest drift (bottom)."""
    views = sorted(set(log["view"].to_list()))
    fig, (top, bottom) = _figure(1.6 + 0.45 * len(views) + 1.6, 2, 1, height_ratios=[1 + 0.3 * len(views), 2])
    latest = log.sort("materialized_at").group_by("view", "day", maintain_order=True).last()
    _status_rows(top, latest, views, column="view", colors=_MATERIALIZATION_COLORS, size=80)
    top.set_title("Feature materializations (latest attempt per day)")
    _style(top, grid="x", dates=True, legend={"ncol": 3, "loc": "lower right"})
    compared = latest.filter(pl.col("drift_max_psi").is_not_null() & pl.col("drift_max_psi").is_not_nan())
    bottom.set_title("Drift: largest population stability index per view")
    if compared.is_empty():
        _empty_panel(bottom, "not compared yet (drift is compared once the 28-day windows are full)")
    else:
        for view in views:
            mine = compared.filter(pl.col("view") == view).sort("day")
            if not mine.is_empty():
                bottom.plot(mine["day"].to_list(), _floats(mine["drift_max_psi"]), marker="o", label=view)
        for value in sorted(set(thresholds.values())):
            bottom.axhline(value, linestyle="--", color="#c62828", linewidth=1)
        bottom.set_ylabel("PSI (dashed: threshold)")
        _style(bottom, dates=True, legend=True)
    return _png(fig)


def plot_quarantine(reasons: pl.DataFrame) -> bytes:
    """Horizontal bars: quarantined lines per violation type, open and replayed."""
    fig, ax = _figure(1.2 + 0.4 * reasons.height)
    labels = reasons["violation_type"].to_list()
    opened, replayed = [float(v) for v in reasons["open"]], [float(v) for v in reasons["replayed"]]
    ax.barh(labels, opened, color="#c62828", label="open")
    ax.barh(labels, replayed, left=opened, color="#90caf9", label="replayed")
    ax.invert_yaxis()
    ax.set_xlabel("quarantined lines")
    _integer_axis(ax.xaxis)
    _style(ax, grid="x", legend=True)
    return _png(fig)


# -- the boilerplate every plot shares -----------------------------------------------------------

def _figure(height: float, nrows: int = 1, ncols: int = 1, **subplots: Any) -> tuple[Any, Any]:
    """A page-wide figure on the Agg canvas and its axes (``Figure.subplots(nrows, ncols, **subplots)``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _style(ax: Any, *, grid: Literal["both", "x", "y"] = "both", dates: bool = False,
           legend: bool | Mapping[str, Any] = False) -> None:
    """The finish every panel gets: a light grid, a legend (small; ``legend`` may place it), a date axis."""
    if legend is not False:
        ax.legend(fontsize=8, **(legend if isinstance(legend, Mapping) else {}))
    ax.grid(axis=grid, alpha=0.3)
    if dates:
        _date_axis(ax)


def _status_rows(ax: Any, frame: pl.DataFrame, labels: Sequence[str], *, column: str, colors: Mapping[str, str],
                 size: float, markers: Mapping[str, str] | None = None) -> None:
    """One row per label (a loop, a view) and a marker per day, coloured by its ``status``, top to bottom."""
    for status, color in colors.items():
        mine = frame.filter(pl.col("status") == status)
        if mine.is_empty():
            continue
        ax.scatter(mine["day"].to_list(), [labels.index(x) for x in mine[column]], s=size, color=color, label=status,
                   marker=(markers or {}).get(status, "s"))
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)


def _date_axis(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(minticks=2, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _floats(values: Iterable[Any]) -> list[float]:
    return [float(v) if fmt.finite(v) else math.nan for v in values]


def _empty_panel(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#757575", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
