"""Build the report: read the lake, plot it, answer the board's questions, write one HTML file.

The file is self-contained — plots are PNGs rendered by matplotlib's Agg backend and embedded as
``data:`` URIs, the style sheet and the one small script are inline — so it opens offline, can be
mailed, and renders the same in a headless browser. Every plot sits in
``<figure data-plot="<name>">`` with a caption; every value taken from the data is HTML-escaped.

Each section degrades on its own: a table that does not exist yet (an empty lake, a warehouse not
built) gives a short "no data yet" note, never an error, and a board question the data cannot
answer yet is answered "Not enough data", saying what is missing.

The reading is split from the rendering: ``_load`` gathers plain frames and dicts, the
``_section_*`` functions turn them into HTML, the ``_plot_*`` functions into PNGs, and
``_answer_*`` into the board's answers.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from growth_loops.actuation.flags import features_document_path, load_features_document
from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.features import FeatureStore
from growth_loops.features.rollups import NON_ACTIVITY_EVENTS, REPORTING_CURRENCY
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import DECISIONS, EXPERIMENT_RESULTS, LOOP_RUNS, LoopSettings
from lake import delta_io
from lake.contracts import load_plan
from lake.errors import ConfigError, GrowthlakeError
from lake.ledger import read_ledger
from lake.paths import LakePaths
from lake.schemas import BRONZE_QUARANTINE, SILVER_EVENTS

if TYPE_CHECKING:
    from growth_loops.experiments import Estimate

__all__ = [
    "ASSUMED_MINUTES_PER_DECISION",
    "ASSUMED_MINUTES_PER_ROLLBACK",
    "BOARD_QUESTIONS",
    "MIN_HOLDOUT_GROUP",
    "SECTIONS",
    "build_report",
    "default_report_path",
]

# -- assumptions and thresholds (named, documented, shown in the report) -------------------------

#: ASSUMPTION, not a measurement: analyst minutes one automated decision replaces — looking up a
#: person's features, choosing the variant or message, and logging why. Used only for the
#: "what did automation save" answer, where it is printed next to the figure it produced.
ASSUMED_MINUTES_PER_DECISION = 2.0
#: ASSUMPTION, not a measurement: analyst minutes one automatic rollback replaces — spotting the
#: guardrail breach in a dashboard, confirming it, and reverting the flag by hand.
ASSUMED_MINUTES_PER_ROLLBACK = 30.0
#: Fewer people than this in the global holdout (or outside it) and the holdout comparison is
#: reported as not enough data instead of an interval.
MIN_HOLDOUT_GROUP = 30
#: Folder, next to the report file, of the Great Expectations Data Docs the report links to.
DATA_DOCS_DIR = "data_docs"

#: (anchor id, heading) of every section, in order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("questions", "Board questions"),
    ("oec", "OEC trends"),
    ("lifts", "Loop lifts"),
    ("guardrails", "Guardrail events and rollbacks"),
    ("trust", "Data trust dashboard"),
    ("quarantine", "Quarantine reasons"),
)

#: The playbook's four questions, answered from the data in the first section.
BOARD_QUESTIONS: tuple[str, ...] = (
    "Did a single OEC improve because of automated decisions?",
    "Are data contracts and observability in place?",
    "Are loops instrumented with rollback and human oversight?",
    "What did automation save versus manual intervention?",
)

Verdict = Literal["yes", "no", "partly", "unknown", "estimate"]
_VERDICT_LABEL = {"yes": "Yes", "no": "No", "partly": "Partly", "unknown": "Not enough data", "estimate": "Estimate"}
_NO_DATA = "no data yet"
_DASH = "\u2014"
_STATUS_COLORS = {"actuated": "#2e7d32", "canary": "#81c784", "awaiting_approval": "#f9a825",
                  "skipped": "#9e9e9e", "rejected": "#6a1b9a", "rolled_back": "#c62828"}
_MATERIALIZATION_COLORS = {"published": "#2e7d32", "unchanged": "#90caf9", "held": "#c62828"}


def default_report_path(paths: LakePaths) -> Path:
    """``$GROWTHLAKE_ROOT/reports/report.html`` (local storage roots only)."""
    if not paths.is_local:
        raise ConfigError("report path", f"the storage root {paths.root} is an object store, and the report is "
                          "a local file", "Pass out= a local path, e.g. build_report(paths, out='report.html').")
    return Path(paths.root) / "reports" / "report.html"


def build_report(paths: LakePaths, out: str | os.PathLike[str] | None = None, *,
                 now: datetime.datetime | None = None, data_docs: bool = True) -> Path:
    """Write the report of the lake at ``paths`` to one self-contained HTML file.

    Args:
        paths: The lake to report on (nothing in it is written, except the report when ``out``
            is left to its default).
        out: Where to write the file (default :func:`default_report_path`:
            ``$GROWTHLAKE_ROOT/reports/report.html``). Parent folders are created.
        now: The time printed as "generated at" (default: now, UTC).
        data_docs: Also build the Great Expectations Data Docs of every suite into
            ``<report folder>/data_docs/`` and link them from the data trust dashboard. A failure
            there is reported in the dashboard, never raised.

    Returns:
        The path of the written file (replaced atomically, so a reader never sees half a report).

    Raises:
        ConfigError: ``out`` is None and the storage root is not a local folder.
    """
    target = Path(out) if out is not None else default_report_path(paths)
    now = now or datetime.datetime.now(datetime.UTC)
    data = _load(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    if data_docs:
        data.data_docs = _build_data_docs(target.parent / DATA_DOCS_DIR)
    document = _render(data, now=now)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        staging.write_text(document, encoding="utf-8")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


# == reading ======================================================================================

@dataclass
class _Holdout:
    """People in the global holdout against people the loops could act on (signed-up people)."""

    share: float
    seed: str
    from_document: bool  # the share and seed were read from the published flags document
    n_holdout: int
    n_loops: int
    revenue: Estimate | None = None  # loops − holdout, revenue per person
    active_days: Estimate | None = None  # loops − holdout, active days per person
    note: str = ""
    exposed: int = 0  # people the product logged an exposure for (experiment_viewed)


@dataclass
class _Data:
    root: str
    oec: pl.DataFrame | None
    oec_note: str
    results: list[dict[str, Any]]  # latest result per (experiment, metric), record expanded
    runs: pl.DataFrame  # LOOP_RUNS
    guardrails: list[dict[str, Any]]  # one row per evaluated guardrail per loop run
    audit_kinds: pl.DataFrame  # decision_id, loop, kind, actor
    rollbacks: pl.DataFrame  # audit records of kind rollback
    approvals: pl.DataFrame  # list_approvals
    decisions_total: int
    decisions_audited: int
    ledger: pl.DataFrame
    materializations: pl.DataFrame
    quarantine: pl.DataFrame  # violation_type, open, replayed
    outbox: dict[str, int]  # status -> messages
    plan_version: str | None
    plan_events: int
    plan_note: str
    dbt_tests: dict[str, int] | None  # pass / fail / warn of the last warehouse build
    holdout: _Holdout | None
    drift_thresholds: dict[str, float] = field(default_factory=dict)
    data_docs: str = ""  # HTML fragment for the trust dashboard: the Data Docs link, or why there is none


def _build_data_docs(site: Path) -> str:
    """Build the GX Data Docs into ``site``; the dashboard's fragment about them (never raises)."""
    from expectations.docs import build_data_docs
    from expectations.suites import suite_names

    try:
        build_data_docs(site)
        suites = len(suite_names())
    except Exception as exc:  # noqa: BLE001 - the report must render whatever GX does
        return _note(f"The Great Expectations Data Docs could not be built: {type(exc).__name__}: {exc}")
    return (f'<p><a href="{DATA_DOCS_DIR}/index.html">Great Expectations Data Docs</a></p>'
            + _note(f"{_plural(suites, 'expectation suite')} documented."))


def _frame(uri: str, schema: Any, columns: Sequence[str] | None = None) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(uri, schema, columns=columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _load(paths: LakePaths) -> _Data:
    oec, oec_note = _read_oec(paths)
    runs = _frame(paths.table("decisions", "loop_runs"), LOOP_RUNS).sort("day", "loop")
    audit_kinds = _frame(paths.audit_log, audit.AUDIT_LOG, ["decision_id", "loop", "kind", "actor"])
    decisions_total, decisions_audited = _decision_coverage(paths, runs, audit_kinds)
    store = FeatureStore(paths)
    plan_version, plan_events, plan_note = _read_plan()
    outbox = _frame(outbox_path(paths), MESSAGE_OUTBOX, ["status"])
    return _Data(
        root=paths.root,
        oec=oec,
        oec_note=oec_note,
        results=_latest_results(paths),
        runs=runs,
        guardrails=[{"loop": r["loop"], "day": r["day"], **g} for r in runs.iter_rows(named=True)
                    for g in json.loads(r["guardrails"] or "[]")],
        audit_kinds=audit_kinds,
        rollbacks=audit.read_audit(paths, kind="rollback"),
        approvals=approvals.list_approvals(paths),
        decisions_total=decisions_total,
        decisions_audited=decisions_audited,
        ledger=pl.from_arrow(read_ledger(paths)).drop("event_dates", "files"),  # type: ignore[union-attr]
        materializations=store.materializations(),
        quarantine=_quarantine(paths),
        outbox={s: n for s, n in outbox.group_by("status").len().iter_rows()},
        plan_version=plan_version,
        plan_events=plan_events,
        plan_note=plan_note,
        dbt_tests=_dbt_tests(paths),
        holdout=_holdout(paths, runs),
        drift_thresholds={v.name: float(v.drift_threshold) for v in store.views},
    )


def _read_oec(paths: LakePaths) -> tuple[pl.DataFrame | None, str]:
    if not paths.is_local:
        return None, "the warehouse is a local DuckDB file and this storage root is an object store."
    path = Path(paths.warehouse)
    if not path.exists():
        return None, f"the warehouse ({path.name}) has not been built yet; growthlake run builds it."
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        return None, f"the warehouse could not be opened read-only ({str(exc).splitlines()[0]})."
    try:
        frame = con.sql("select date_day, active_users, revenue, revenue_per_active_user, d7_retention, "
                        "trial_to_paid_rate from marts.fct_daily_oec order by date_day").pl()
    except duckdb.CatalogException:
        return None, "the warehouse has no marts.fct_daily_oec yet (the marts were not built)."
    finally:
        con.close()
    if frame.is_empty():
        return None, "marts.fct_daily_oec has no rows yet."
    return frame, ""


def _latest_results(paths: LakePaths) -> list[dict[str, Any]]:
    frame = _frame(paths.table("experiments", "results"), EXPERIMENT_RESULTS)
    if frame.is_empty():
        return []
    latest = frame.sort("day").group_by("experiment", "metric", maintain_order=True).last()
    rows = []
    for row in latest.sort("loop", "experiment", "metric").iter_rows(named=True):
        record = json.loads(row.pop("record") or "{}")
        rows.append({**record, **row})
    return rows


def _decision_coverage(paths: LakePaths, runs: pl.DataFrame, audit_kinds: pl.DataFrame) -> tuple[int, int]:
    """(decisions in the loops' decision tables, how many of them have an audit record)."""
    audited_ids = audit_kinds.filter(pl.col("kind") == "action")["decision_id"]
    total = audited = 0
    for loop in sorted(set(runs["loop"].to_list())):
        ids = _frame(paths.loop_decisions(loop), DECISIONS, ["decision_id"])["decision_id"]
        total += ids.len()
        audited += int(ids.is_in(audited_ids).sum())
    return total, audited


def _quarantine(paths: LakePaths) -> pl.DataFrame:
    frame = _frame(paths.bronze_quarantine, BRONZE_QUARANTINE, ["violation_type", "resolution"])
    return (frame.group_by("violation_type")
            .agg(pl.col("resolution").is_null().sum().alias("open"),
                 pl.col("resolution").is_not_null().sum().alias("replayed"))
            .with_columns((pl.col("open") + pl.col("replayed")).alias("total"))
            .sort("total", "violation_type", descending=[True, False]))


def _read_plan() -> tuple[str | None, int, str]:
    try:
        plan = load_plan()
    except GrowthlakeError as exc:
        return None, 0, f"The tracking plan could not be loaded: {exc}"
    return plan.version, len(plan.events), ""


def _dbt_tests(paths: LakePaths) -> dict[str, int] | None:
    """Test outcomes of the last warehouse build (``build_warehouse`` keeps dbt's run_results.json)."""
    if not paths.is_local:
        return None
    results = Path(paths.root, "_dbt", "target", "run_results.json")
    try:
        doc = json.loads(results.read_text())
    except (OSError, ValueError):
        return None
    counts = {"pass": 0, "fail": 0, "warn": 0}
    for r in doc.get("results", []):
        if str(r.get("unique_id", "")).startswith(("test.", "unit_test.")):
            status = str(r.get("status"))
            key = "pass" if status == "pass" else "warn" if status == "warn" else "fail"
            counts[key] += 1
    return counts


def _holdout(paths: LakePaths, runs: pl.DataFrame) -> _Holdout | None:
    """Compare people in the global holdout with the others: the loops' combined effect."""
    if runs.is_empty():
        return None
    from growth_loops.experiments import ExperimentError, in_holdout_many, welch

    share, seed, from_doc = LoopSettings().holdout_share, LoopSettings().holdout_seed, False
    try:
        doc = load_features_document(features_document_path(paths))
    except Exception:  # noqa: BLE001 - no document: the defaults the loops run with
        doc = {"features": {}}
    for feature in doc.get("features", {}).values():
        for rule in feature.get("rules", []):
            if str(rule.get("id", "")).endswith(":global-holdout") and "range" in rule:
                share, seed, from_doc = float(rule["range"][1]), str(rule.get("seed", seed)), True
                break
        if from_doc:
            break
    events = _frame(paths.silver_events, SILVER_EVENTS, ["person_id", "event_name", "event_date", "revenue",
                                                         "currency"]).filter(pl.col("person_id").is_not_null())
    people = events.filter(pl.col("event_name") == "user_signed_up").select("person_id").unique()
    per = people.join(
        events.group_by("person_id").agg(
            pl.col("event_date").filter(~pl.col("event_name").is_in(list(NON_ACTIVITY_EVENTS))).n_unique()
            .alias("active_days"),
            pl.col("revenue").filter((pl.col("event_name") == "payment_succeeded")
                                     & (pl.col("currency") == REPORTING_CURRENCY)).sum().alias("revenue")),
        on="person_id", how="left").fill_null(0)
    exposed = events.filter(pl.col("event_name") == "experiment_viewed")["person_id"].n_unique()
    held = pl.Series(in_holdout_many(per["person_id"], seed=seed, share=share)) if share > 0 else \
        pl.Series([False] * per.height)
    holdout_group, loops_group = per.filter(held), per.filter(~held)
    result = _Holdout(share=share, seed=seed, from_document=from_doc, n_holdout=holdout_group.height,
                      n_loops=loops_group.height, exposed=exposed)
    if min(result.n_holdout, result.n_loops) < MIN_HOLDOUT_GROUP:
        result.note = (f"the global holdout holds {result.n_holdout} signed-up people and the loops' population "
                       f"{result.n_loops}; at least {MIN_HOLDOUT_GROUP} in each are needed for an interval")
        return result
    try:
        result.revenue = welch(holdout_group["revenue"].cast(pl.Float64).to_numpy(),
                               loops_group["revenue"].cast(pl.Float64).to_numpy())
        result.active_days = welch(holdout_group["active_days"].cast(pl.Float64).to_numpy(),
                                   loops_group["active_days"].cast(pl.Float64).to_numpy())
    except ExperimentError as exc:
        result.note = f"the holdout comparison could not be computed ({exc})"
    return result


# == formatting ===================================================================================

def _esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str:
    """A value as a person reads it: no ``None``, ``nan`` or ``inf`` ever reaches the page."""
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if math.isfinite(value) else _DASH
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if _finite(value) else _DASH


def _pct(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    if not _finite(value):
        return _DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def _money(value: Any) -> str:
    return f"{value:,.2f} {REPORTING_CURRENCY}" if _finite(value) else _DASH


def _interval(low: Any, high: Any, fmt: Any = _num) -> str:
    return f"[{fmt(low)}, {fmt(high)}]" if _finite(low) and _finite(high) else _DASH


def _with_interval(record: dict[str, Any], prefix: str, fmt: Any) -> str:
    """``estimate [low, high]`` of a results record (``abs`` or ``rel``), or a dash when not computed."""
    estimate = record.get(f"{prefix}_estimate")
    if not _finite(estimate):
        return _DASH
    return f"{fmt(estimate)} {_interval(record.get(f'{prefix}_ci_low'), record.get(f'{prefix}_ci_high'), fmt)}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> str:
    """An HTML table; every cell is escaped (cells given as ``_Raw`` are already HTML)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c.html if isinstance(c, _Raw) else _esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f'<div class="table"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


@dataclass(frozen=True)
class _Raw:
    html: str


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _no_data(what: str) -> str:
    return _note(f"{_NO_DATA[0].upper()}{_NO_DATA[1:]}: {what}")


# == plotting =====================================================================================

def _figure(width: float, height: float) -> Any:
    """A matplotlib figure on the Agg canvas (imported here: only building a report needs it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _date_axis(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(minticks=2, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _floats(values: Iterable[Any]) -> list[float]:
    return [float(v) if _finite(v) else math.nan for v in values]


def _embed(name: str, png: bytes, caption: str, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<figure data-plot="{_esc(name)}"><img src="data:image/png;base64,{encoded}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _empty_panel(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#757575", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_oec(oec: pl.DataFrame) -> bytes:
    fig = _figure(9, 3.2)
    ax = fig.subplots()
    ax.plot(oec["date_day"].to_list(), _floats(oec["revenue_per_active_user"]), marker="o", color="#1565c0")
    ax.set_title("OEC: revenue per active user")
    ax.set_ylabel(f"{REPORTING_CURRENCY} per active user")
    ax.grid(alpha=0.3)
    _date_axis(ax)
    return _png(fig)


def _plot_oec_components(oec: pl.DataFrame) -> bytes:
    fig = _figure(9, 5.2)
    axes = fig.subplots(2, 2).ravel()
    days = oec["date_day"].to_list()
    panels = (("active_users", "Active users", 1.0, "people"), ("revenue", "Revenue", 1.0, REPORTING_CURRENCY),
              ("d7_retention", "D7 retention", 100.0, "%"), ("trial_to_paid_rate", "Trial to paid", 100.0, "%"))
    for ax, (column, title, scale, unit) in zip(axes, panels):
        values = [v * scale for v in _floats(oec[column])]
        ax.set_title(title)
        if all(math.isnan(v) for v in values):
            _empty_panel(ax, "no cohort old enough yet")
            continue
        ax.plot(days, values, marker="o", color="#37474f")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        _date_axis(ax)
    return _png(fig)


def _plot_lifts(rows: list[dict[str, Any]]) -> bytes:
    fig = _figure(9, 1.2 + 0.45 * len(rows))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        est, low, high = (r["rel_estimate"] * 100, r["rel_ci_low"] * 100, r["rel_ci_high"] * 100)
        color = "#2e7d32" if low > 0 else "#c62828" if high < 0 else "#546e7a"
        ax.errorbar([est], [i], xerr=[[est - low], [high - est]], fmt="o", color=color, capsize=4)
    ax.axvline(0, color="#212121", linewidth=1)
    ax.set_yticks(range(len(rows)), [f"{r['experiment']} \u00b7 {r['metric']}" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("relative lift of treatment over control, % (95% interval)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _plot_loop_status(runs: pl.DataFrame) -> bytes:
    loops = list(dict.fromkeys(runs.sort("loop")["loop"].to_list()))
    fig = _figure(9, 1.4 + 0.5 * len(loops))
    ax = fig.subplots()
    for status, color in _STATUS_COLORS.items():
        mine = runs.filter(pl.col("status") == status)
        if mine.is_empty():
            continue
        ax.scatter(mine["day"].to_list(), [loops.index(x) for x in mine["loop"]], s=90, color=color, label=status,
                   marker="X" if status == "rolled_back" else "s")
    ax.set_yticks(range(len(loops)), loops)
    ax.set_ylim(len(loops) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=6, fontsize=8, frameon=False)
    _date_axis(ax)
    return _png(fig)


def _plot_guardrails(rows: list[dict[str, Any]]) -> bytes:
    keys = list(dict.fromkeys((r["loop"], r["metric"]) for r in rows))
    fig = _figure(9, 3.4)
    ax = fig.subplots()
    for loop, metric in keys:
        mine = sorted((r for r in rows if (r["loop"], r["metric"]) == (loop, metric)), key=lambda r: r["day"])
        days = [r["day"] for r in mine]
        impact = [r["relative_impact"] * 100 for r in mine]
        upper = [r["upper_bound"] * 100 if _finite(r.get("upper_bound")) else v for r, v in zip(mine, impact)]
        line = ax.errorbar(days, impact, yerr=[[0] * len(impact), [u - v for u, v in zip(upper, impact)]],
                           marker="o", capsize=3, label=f"{loop} \u00b7 {metric}")
        threshold = mine[-1].get("threshold")
        if _finite(threshold):
            ax.axhline(threshold * 100, linestyle="--", color=line[0].get_color(), linewidth=1)
        for r, v in zip(mine, impact):
            if r.get("verdict") == "rollback":
                ax.scatter([r["day"]], [v], marker="X", s=140, color="#c62828", zorder=5)
    ax.axhline(0, color="#212121", linewidth=0.8)
    ax.set_title("Guardrails: relative impact, bar up to the one-sided upper bound")
    ax.set_ylabel("relative impact, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _date_axis(ax)
    return _png(fig)


def _plot_ingestion_volume(daily: pl.DataFrame) -> bytes:
    fig = _figure(9, 3.4)
    ax = fig.subplots()
    days = daily["day"].to_list()
    bottom = [0.0] * len(days)
    for column, label, color in (("bronze_rows", "bronze", "#2e7d32"), ("quarantined", "quarantined", "#c62828"),
                                 ("consent_dropped", "dropped: no consent", "#9e9e9e"),
                                 ("duplicates_dropped", "dropped: duplicate", "#f9a825")):
        values = [float(v) for v in daily[column]]
        ax.bar(days, values, bottom=bottom, label=label, color=color, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("landed lines")
    _integer_axis(ax.yaxis)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    _date_axis(ax)
    return _png(fig)


def _plot_ingestion_health(daily: pl.DataFrame) -> bytes:
    fig = _figure(9, 3.2)
    left, right = fig.subplots(1, 2)
    days = daily["day"].to_list()
    left.plot(days, [v * 100 for v in _floats(daily["quarantine_rate"])], marker="o", color="#c62828",
              label="quarantine rate")
    left.plot(days, [v * 100 for v in _floats(daily["reconciled_share"])], marker="s", color="#2e7d32",
              label="partitions reconciled")
    left.set_ylim(-5, 105)
    left.set_ylabel("%")
    left.set_title("Quarantine rate and reconciliation")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    _date_axis(left)
    right.bar(days, [float(v) for v in daily["partitions"]], color="#90caf9", label="gates evaluated")
    right.bar(days, [float(v) for v in daily["failed_gates"]], color="#c62828", label="gates failed")
    right.set_title("Ingestion gates per day")
    _integer_axis(right.yaxis)
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)
    _date_axis(right)
    return _png(fig)


def _plot_materializations(log: pl.DataFrame, thresholds: dict[str, float]) -> bytes:
    views = sorted(set(log["view"].to_list()))
    fig = _figure(9, 1.6 + 0.45 * len(views) + 1.6)
    top, bottom = fig.subplots(2, 1, height_ratios=[1 + 0.3 * len(views), 2])
    latest = log.sort("materialized_at").group_by("view", "day", maintain_order=True).last()
    for status, color in _MATERIALIZATION_COLORS.items():
        mine = latest.filter(pl.col("status") == status)
        if not mine.is_empty():
            top.scatter(mine["day"].to_list(), [views.index(v) for v in mine["view"]], s=80, marker="s", color=color,
                        label=status)
    top.set_yticks(range(len(views)), views)
    top.set_ylim(len(views) - 0.5, -0.5)
    top.set_title("Feature materializations (latest attempt per day)")
    top.legend(fontsize=8, ncol=3, loc="lower right")
    top.grid(axis="x", alpha=0.3)
    _date_axis(top)
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
        bottom.legend(fontsize=8)
        bottom.grid(alpha=0.3)
        _date_axis(bottom)
    return _png(fig)


def _plot_quarantine(reasons: pl.DataFrame) -> bytes:
    fig = _figure(9, 1.2 + 0.4 * reasons.height)
    ax = fig.subplots()
    labels = reasons["violation_type"].to_list()
    opened, replayed = [float(v) for v in reasons["open"]], [float(v) for v in reasons["replayed"]]
    ax.barh(labels, opened, color="#c62828", label="open")
    ax.barh(labels, replayed, left=opened, color="#90caf9", label="replayed")
    ax.invert_yaxis()
    ax.set_xlabel("quarantined lines")
    _integer_axis(ax.xaxis)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


# == sections =====================================================================================

def _section_oec(d: _Data) -> str:
    if d.oec is None:
        return _no_data(d.oec_note)
    oec = d.oec
    parts = [
        _embed("oec", _plot_oec(oec), "The OEC, revenue per active user, per day (marts.fct_daily_oec).",
               "Line chart of revenue per active user per day"),
        _embed("oec_components", _plot_oec_components(oec),
               "What the OEC is made of: active users, revenue, D7 retention and trial-to-paid conversion per day.",
               "Four line charts: active users, revenue, D7 retention, trial to paid"),
    ]
    recent = oec.sort("date_day", descending=True).head(14)
    parts.append(_table(
        ["day", "active users", "revenue", "revenue per active user (OEC)", "D7 retention", "trial to paid"],
        ([r["date_day"], r["active_users"], _money(r["revenue"]), _money(r["revenue_per_active_user"]),
          _pct(r["d7_retention"]), _pct(r["trial_to_paid_rate"])] for r in recent.iter_rows(named=True)),
        caption=f"The last {recent.height} days, newest first"))
    return "".join(parts)


def _plottable_lifts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if all(_finite(r.get(k)) for k in ("rel_estimate", "rel_ci_low", "rel_ci_high"))]


def _section_lifts(d: _Data) -> str:
    if not d.results:
        return _no_data("no loop has measured an experiment yet (delta/experiments/results is empty).")
    parts = []
    plotted = _plottable_lifts(d.results)
    if plotted:
        left_out = len(d.results) - len(plotted)
        caption = ("Each loop's measured lift on its latest day: relative lift of treatment over control with its "
                   "95% interval (green: above 0, red: below 0, grey: the interval includes 0).")
        if left_out:
            caption += f" {_plural(left_out, 'result')} without a relative lift (control mean of 0) only in the table."
        parts.append(_embed("loop_lifts", _plot_lifts(plotted), caption, "Forest plot of loop lifts"))
    else:
        parts.append(_note("No result has a relative lift yet (control means of 0): the absolute lifts are below."))
    parts.append(_table(
        ["loop", "experiment", "metric", "day", "n control / treatment", "absolute lift [95% CI]",
         "relative lift [95% CI]", "chance to win", "SRM"],
        ([r["loop"], r["experiment"], r["metric"], r["day"], f"{_text(r['n_control'])} / {_text(r['n_treatment'])}",
          _with_interval(r, "abs", lambda v: _num(v, 3)),
          _with_interval(r, "rel", lambda v: _pct(v, signed=True)),
          _pct(r.get("chance_to_win"), 0),
          ("FLAGGED" if r.get("srm_flagged") else "ok") + (f" (p={_num(r['srm_p_value'], 3)})"
                                                         if _finite(r.get("srm_p_value")) else "")]
         for r in d.results),
        caption="Latest result per experiment and metric"))
    return "".join(parts)


def _rollback_summary(evidence: str) -> str:
    try:
        doc = json.loads(evidence or "{}")
    except ValueError:
        return evidence
    reasons = [g.get("reason") for g in doc.get("guardrails", []) if g.get("verdict") == "rollback" and g.get("reason")]
    return "; ".join(str(r) for r in reasons) or str(doc.get("note") or _DASH)


def _section_guardrails(d: _Data) -> str:
    if d.runs.is_empty():
        return _no_data("no loop has run yet (delta/decisions/loop_runs is empty).")
    parts = [_embed("loop_status", _plot_loop_status(d.runs),
                    "Each loop's status per decision day: actuated, canary, awaiting approval, skipped by a failed "
                    "gate, rejected, or rolled back (\u00d7).", "Timeline of loop statuses per day")]
    numeric = [g for g in d.guardrails if _finite(g.get("relative_impact"))]
    if numeric:
        parts.append(_embed("guardrail_impact", _plot_guardrails(numeric),
                            "Guardrail metrics: relative impact of treatment with its one-sided upper bound; dashed: "
                            "the tolerated drop; \u00d7: a breach that rolled the loop back.",
                            "Guardrail relative impact over time"))
    if d.guardrails:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for g in sorted(d.guardrails, key=lambda g: g["day"]):
            latest[(g["loop"], str(g.get("metric")))] = g
        shown = sorted({**latest, **{(g["loop"], f"{g.get('metric')}@{g['day']}"): g for g in d.guardrails
                                     if g.get("verdict") == "rollback"}}.values(), key=lambda g: (g["loop"], g["day"]))
        parts.append(_table(
            ["loop", "day", "metric", "verdict", "relative impact", "upper bound", "tolerated", "units (c / t)", "why"],
            ([g["loop"], g["day"], g.get("metric"), g.get("verdict"), _pct(g.get("relative_impact"), signed=True),
              _pct(g.get("upper_bound"), signed=True), _pct(g.get("threshold"), signed=True),
              f"{_text(g.get('n_control'))} / {_text(g.get('n_treatment'))}", g.get("reason")] for g in shown),
            caption="Guardrail evaluations: the latest per loop and metric, and every breach"))
    else:
        parts.append(_note("No loop has evaluated a guardrail yet."))
    if d.rollbacks.is_empty():
        parts.append(_note("No rollback has been performed."))
    else:
        parts.append(_table(
            ["day", "loop", "version", "actor", "guardrail verdict", "evidence", "details"],
            ([r["decision_day"], r["loop"], r["policy_version"], r["actor"], r["guardrail_verdict"],
              _rollback_summary(r["evidence"]),
              _Raw(f"<details><summary>evidence</summary><pre>{_esc(r['evidence'])}</pre></details>")]
             for r in d.rollbacks.iter_rows(named=True)),
            caption="Rollbacks (from the audit log), with their evidence"))
    summary = (d.runs.group_by("loop").agg(pl.len().alias("days"), pl.col("decisions").sum(),
                                           pl.col("messages").sum(), pl.col("day").max().alias("last_day"),
                                           pl.col("status").last(), pl.col("policy_version").last(),
                                           pl.col("approval_state").last()).sort("loop"))
    parts.append(_table(["loop", "days run", "last day", "last status", "version", "approval", "decisions", "messages"],
                        ([r["loop"], r["days"], r["last_day"], r["status"], r["policy_version"], r["approval_state"],
                          r["decisions"], r["messages"]] for r in summary.iter_rows(named=True)),
                        caption="Loops at a glance"))
    if not d.approvals.is_empty():
        parts.append(_table(["loop", "version", "state", "by", "when", "reason"],
                            ([r["loop"], r["version"], r["state"], r["actor"], r["at"], r["reason"] or _DASH]
                             for r in d.approvals.iter_rows(named=True)),
                            caption="Approvals (human oversight): the state of every policy version"))
    return "".join(parts)


def _ledger_daily(ledger: pl.DataFrame) -> pl.DataFrame:
    return (ledger.group_by("landing_date").agg(
        pl.len().alias("partitions"), pl.col("lines_landed").sum(), pl.col("bronze_rows").sum(),
        pl.col("quarantined").sum(), pl.col("consent_dropped").sum(), pl.col("duplicates_dropped").sum(),
        pl.col("reconciled").sum().alias("reconciled"), (pl.col("gate_status") != "passed").sum().alias("failed_gates"))
        .rename({"landing_date": "day"}).sort("day")
        .with_columns((pl.col("quarantined") / pl.col("lines_landed")).alias("quarantine_rate"),
                      (pl.col("reconciled") / pl.col("partitions")).alias("reconciled_share")))


def _section_trust(d: _Data) -> str:
    parts = []
    if d.data_docs:
        parts += ["<h3>Expectation suites</h3>", d.data_docs]
    parts.append(f"<h3>Ingestion (tracking plan {_esc(d.plan_version or 'not loaded')})</h3>")
    if d.plan_note:
        parts.append(_note(d.plan_note))
    if d.ledger.is_empty():
        parts.append(_no_data("nothing has been ingested (the ingestion ledger is empty)."))
    else:
        daily = _ledger_daily(d.ledger)
        parts.append(_embed("ingestion_volume", _plot_ingestion_volume(daily),
                            "Where every landed line went, per landing day: bronze, quarantine, or dropped (no "
                            "analytics consent, duplicate event_id).", "Stacked bars of landed lines per day"))
        parts.append(_embed("ingestion_health", _plot_ingestion_health(daily),
                            "Per landing day: share of lines quarantined, share of hourly partitions whose counts "
                            "reconcile, and ingestion gates evaluated and failed.",
                            "Quarantine rate, reconciliation and gate failures per day"))
        parts.append(_table(
            ["day", "partitions", "lines landed", "bronze", "quarantined", "quarantine rate", "no consent",
             "duplicates", "reconciled", "failed gates"],
            ([r["day"], r["partitions"], r["lines_landed"], r["bronze_rows"], r["quarantined"],
              _pct(r["quarantine_rate"], 2),
              r["consent_dropped"], r["duplicates_dropped"], _pct(r["reconciled_share"]), r["failed_gates"]]
             for r in daily.sort("day", descending=True).iter_rows(named=True)),
            caption="The ingestion ledger per landing day, newest first"))
        failed = d.ledger.filter(pl.col("gate_status") != "passed").sort("landing_partition")
        if not failed.is_empty():
            parts.append(_table(["landing partition", "gate", "summary"],
                                ([r["landing_partition"], r["gate_status"], r["gate_summary"]]
                                 for r in failed.iter_rows(named=True)), caption="Failed ingestion gates"))
    parts.append("<h3>Feature materializations</h3>")
    log = d.materializations
    if log.is_empty():
        parts.append(_no_data("no feature view has been materialized."))
    else:
        parts.append(_embed("feature_materializations", _plot_materializations(log, d.drift_thresholds),
                            "Each feature view's materialization per day (published, unchanged, or held by its Great "
                            "Expectations suite or drift gate) and the largest drift (PSI) against the previous day.",
                            "Feature materialization statuses and drift"))
        per_view = (log.group_by("view").agg(
            pl.len().alias("attempts"), (pl.col("status") == "published").sum().alias("published"),
            (pl.col("status") == "unchanged").sum().alias("unchanged"),
            (pl.col("status") == "held").sum().alias("held"),
            (~pl.col("gx_passed")).sum().alias("gx_failed"), pl.col("drift_max_psi").max().alias("max_psi"),
            pl.col("drift_accepted").sum().alias("accepted"), pl.col("day").max().alias("last_day")).sort("view"))
        parts.append(_table(
            ["view", "attempts", "published", "unchanged", "held", "GX failures", "max PSI", "drift accepted",
             "last day"],
            ([r["view"], r["attempts"], r["published"], r["unchanged"], r["held"], r["gx_failed"],
              _num(r["max_psi"], 3), r["accepted"], r["last_day"]] for r in per_view.iter_rows(named=True)),
            caption="Feature views: gates per view"))
    if d.dbt_tests is not None:
        parts.append("<h3>Warehouse tests</h3>")
        parts.append(_note(f"The last warehouse build ran {_plural(sum(d.dbt_tests.values()), 'dbt test')}: "
                           f"{d.dbt_tests['pass']:,} passed, {d.dbt_tests['warn']:,} warned, "
                           f"{d.dbt_tests['fail']:,} failed."))
    return "".join(parts)


def _section_quarantine(d: _Data) -> str:
    if d.quarantine.is_empty():
        return _no_data("no line has been quarantined (the bronze quarantine is empty).")
    total = int(d.quarantine["total"].sum())
    return "".join([
        _embed("quarantine_reasons", _plot_quarantine(d.quarantine),
               "Quarantined lines by contract violation (open: waiting for a fix and a replay).",
               "Bar chart of quarantined lines by violation type"),
        _table(["violation", "open", "replayed", "total", "share"],
               ([r["violation_type"], r["open"], r["replayed"], r["total"], _pct(r["total"] / total)]
                for r in d.quarantine.iter_rows(named=True)),
               caption=f"{_plural(total, 'quarantined line')} by reason"),
    ])


# == the board's questions ========================================================================

@dataclass(frozen=True)
class _Answer:
    verdict: Verdict
    text: str
    assumption: str = ""


def _answer_oec(d: _Data) -> _Answer:
    facts: list[str] = []
    if d.oec is not None:
        oec = pl.col("revenue_per_active_user")
        valued = d.oec.filter(oec.is_not_null() & oec.is_not_nan())
        if valued.height >= 2:
            first, last = valued.row(0, named=True), valued.row(-1, named=True)
            facts.append(f"The OEC (revenue per active user) went from {_money(first['revenue_per_active_user'])} on "
                         f"{_text(first['date_day'])} to {_money(last['revenue_per_active_user'])} on "
                         f"{_text(last['date_day'])}; a trend alone does not say why.")
        else:
            facts.append(f"The warehouse holds {_plural(valued.height, 'day')} with an OEC value: too few for a trend.")
    lifts = _plottable_lifts(d.results)
    if lifts:
        up = sum(1 for r in lifts if r["rel_ci_low"] > 0)
        down = sum(1 for r in lifts if r["rel_ci_high"] < 0)
        facts.append(f"Of the loops' {_plural(len(lifts), 'latest experiment result')}, {up:,} show a lift whose 95% "
                     f"interval is above 0 and {down:,} one below 0.")
    h = d.holdout
    if h is None or (h.revenue is None and d.oec is None and not lifts):
        missing = "no loop has run" if h is None else h.note
        facts.append(f"No change can be attributed to the loops yet: {missing}.")
        return _Answer("unknown", " ".join(facts))
    where = "as published in the flags document" if h.from_document else "the default setting"
    if h.revenue is None:
        facts.append(f"The global holdout ({_pct(h.share, 0)}, {where}) cannot be compared yet: {h.note}.")
        return _Answer("unknown", " ".join(facts))
    if h.exposed == 0 and d.outbox.get("sent", 0) == 0:
        facts.append("The loops' decisions have not reached anyone yet: the product logged no exposure to a "
                     "loop's experiment and no message was sent, so a difference between the global holdout and "
                     "everyone else would be chance, not the loops' doing.")
        return _Answer("unknown", " ".join(facts))
    r, a = h.revenue, h.active_days
    assert a is not None  # computed together with the revenue
    facts.append(f"Against the global holdout ({_pct(h.share, 0)} of people, {where}; {h.n_holdout:,} held out vs "
                 f"{h.n_loops:,} reachable by the loops), revenue per person differs by {_money(r.estimate)} "
                 f"(95% interval {_interval(r.ci_low, r.ci_high, _money)}) and active days per person by "
                 f"{_num(a.estimate)} ({_interval(a.ci_low, a.ci_high)}).")
    verdict: Verdict
    if r.ci_low > 0:
        verdict = "yes"
        facts.append("The revenue difference is above 0 with 95% confidence: the automated decisions raised it.")
    elif r.ci_high < 0:
        verdict = "no"
        facts.append("The revenue difference is below 0 with 95% confidence: the loops are costing revenue.")
    else:
        verdict = "unknown"
        facts.append("The interval includes 0: not enough data yet to say the automated decisions improved the OEC.")
    return _Answer(verdict, " ".join(facts))


def _answer_contracts(d: _Data) -> _Answer:
    plan = (f"The tracking plan {d.plan_version} defines {_plural(d.plan_events, 'event')} and is enforced at "
            "ingestion" if d.plan_version else d.plan_note)
    if d.ledger.is_empty():
        return _Answer("unknown", f"{plan}, but nothing has been ingested yet to show it working.")
    partitions = d.ledger.height
    failed = int((d.ledger["gate_status"] != "passed").sum())
    unreconciled = int((~d.ledger["reconciled"]).sum())
    landed = int(d.ledger["lines_landed"].sum())
    quarantined = int(d.ledger["quarantined"].sum())
    facts = [(f"{plan}: {_plural(landed, 'landed line')} in {_plural(partitions, 'hourly partition')}, "
              f"{quarantined:,} quarantined with their reason; {_plural(partitions, 'ingestion gate')} evaluated, "
              f"{failed:,} failed; {partitions - unreconciled:,} of {partitions:,} partitions reconcile "
              "(every landed line in bronze, quarantine or a counted drop).")]
    log = d.materializations
    if not log.is_empty():
        facts.append(f"Feature views: {_plural(log.height, 'materialization')} gated by Great Expectations and drift, "
                     f"{int((log['status'] == 'held').sum()):,} held.")
    if d.dbt_tests is not None:
        facts.append(f"Warehouse: {d.dbt_tests['pass']:,} dbt tests passed, {d.dbt_tests['fail']:,} failed.")
    if unreconciled:
        facts.append("Not every partition reconciles: see the data trust dashboard.")
    return _Answer("partly" if unreconciled or d.plan_version is None else "yes", " ".join(facts))


def _answer_oversight(d: _Data) -> _Answer:
    if d.runs.is_empty():
        return _Answer("unknown", "No loop has run yet: there is nothing to audit or roll back.")
    loops = sorted(set(d.runs["loop"].to_list()))
    from growth_loops.loops.catalog import default_loops

    declared = {loop.spec.name for loop in default_loops() if loop.spec.guardrails}
    evaluated = {g["loop"] for g in d.guardrails}
    guarded = sorted(declared | evaluated)  # declared in the catalog, or seen evaluating one
    rollbacks = d.rollbacks.height
    states = {s: n for s, n in d.approvals.group_by("state").len().iter_rows()} if not d.approvals.is_empty() else {}
    approved = d.approvals.filter(pl.col("state") == "approved")
    by_people = int((~approved["actor"].str.starts_with("auto:")).sum()) if not approved.is_empty() else 0
    reviewed_loops = set(d.approvals["loop"].to_list())
    share = d.decisions_audited / d.decisions_total if d.decisions_total else None
    unguarded = [loop for loop in loops if loop not in guarded]
    evaluates = "declares a guardrail that rolls it back" if len(guarded) == 1 else \
        "declare a guardrail that rolls them back"
    lacking = f"; {', '.join(unguarded)} {'has' if len(unguarded) == 1 else 'have'} none" if unguarded else ""
    facts = [
        (f"{_plural(len(loops), 'loop')} ran, each falling back to its control when rolled back; {len(guarded)} of "
         f"them ({', '.join(guarded) or 'none'}) {evaluates} automatically{lacking}; "
         f"{len(evaluated & set(guarded))} of those evaluated it so far; {_plural(rollbacks, 'rollback')} performed."),
        (f"Approvals: {states.get('approved', 0):,} versions approved ({by_people:,} by a person, the others "
         f"automatically after stable canary days), {states.get('pending', 0):,} pending, "
         f"{states.get('rejected', 0):,} rejected."),
        (f"{_pct(share)} of {_plural(d.decisions_total, 'decision')} are in the audit log with their inputs, "
         "policy version and propensity." if share is not None else "No person-level decision taken yet."),
    ]
    complete = (share is None or share == 1.0) and set(loops) <= reviewed_loops and not unguarded
    return _Answer("yes" if complete else "partly", " ".join(facts))


def _answer_savings(d: _Data) -> _Answer:
    kinds = d.audit_kinds
    automated = int(((kinds["kind"] == "action") & kinds["actor"].str.starts_with("loop:")).sum()) \
        if not kinds.is_empty() else 0
    rollbacks = d.rollbacks.height
    assumption = (f"Assumption, not a measurement: one automated decision replaces {ASSUMED_MINUTES_PER_DECISION:g} "
                  f"analyst minutes and one automatic rollback {ASSUMED_MINUTES_PER_ROLLBACK:g} "
                  "(ASSUMED_MINUTES_PER_DECISION, ASSUMED_MINUTES_PER_ROLLBACK in growth_loops/report/build.py).")
    if automated == 0 and rollbacks == 0:
        return _Answer("unknown", "The loops have taken no automated decision yet.", assumption)
    decided = d.approvals.filter(pl.col("state") != "pending") if not d.approvals.is_empty() else d.approvals
    settled_by_loops = int(decided["actor"].str.starts_with("auto:").sum()) if not decided.is_empty() else 0
    manual = decided.height - settled_by_loops
    sent, pending = d.outbox.get("sent", 0), d.outbox.get("pending", 0)
    minutes = automated * ASSUMED_MINUTES_PER_DECISION + rollbacks * ASSUMED_MINUTES_PER_ROLLBACK
    text = (f"The loops took {_plural(automated, 'decision')} automatically, rolled back "
            f"{_plural(rollbacks, 'time')} without a person and settled "
            f"{_plural(settled_by_loops, 'approval request')} themselves (stable canary days or a guardrail breach); people intervened {_plural(manual, 'time')} "
            "(approving or rejecting a version). "
            f"Messages: {sent:,} sent, {pending:,} queued. At the assumed rates that is about "
            f"{minutes / 60:,.1f} analyst hours saved ({minutes:,.0f} minutes).")
    return _Answer("estimate", text, assumption)


def _section_questions(d: _Data) -> str:
    answers = (_answer_oec(d), _answer_contracts(d), _answer_oversight(d), _answer_savings(d))
    items = []
    for i, (question, answer) in enumerate(zip(BOARD_QUESTIONS, answers), start=1):
        extra = f'<p class="assumption">{_esc(answer.assumption)}</p>' if answer.assumption else ""
        items.append(f'<li data-question="{i}"><p class="question">{_esc(question)}</p>'
                     f'<p class="answer verdict-{answer.verdict}" data-verdict="{answer.verdict}">'
                     f"<strong>{_esc(_VERDICT_LABEL[answer.verdict])}.</strong> {_esc(answer.text)}</p>{extra}</li>")
    return f'<ol class="questions">{"".join(items)}</ol>'


# == the document =================================================================================

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:1rem 2rem;
color:#212121;line-height:1.45}
header{border-bottom:2px solid #1565c0;margin-bottom:1rem}
nav a{margin-right:1rem}
h2{border-bottom:1px solid #e0e0e0;padding-bottom:.2rem;margin-top:2.2rem}
figure{margin:1rem 0;padding:.5rem;border:1px solid #eeeeee}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.9rem;color:#424242;margin-top:.3rem}
.table{overflow-x:auto}
table{border-collapse:collapse;font-size:.85rem;margin:.8rem 0;width:100%}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #e0e0e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}
.note{color:#616161;font-style:italic}
.questions li{margin-bottom:1rem}
.question{font-weight:600;margin:.2rem 0}
.answer{margin:.2rem 0;padding:.4rem .6rem;border-left:4px solid #9e9e9e;background:#fafafa}
.verdict-yes{border-color:#2e7d32}.verdict-no{border-color:#c62828}.verdict-partly{border-color:#f9a825}
.verdict-estimate{border-color:#1565c0}
.assumption{font-size:.85rem;color:#6d4c41;margin:.2rem 0 0 .6rem}
pre{white-space:pre-wrap;word-break:break-all;font-size:.75rem}
"""

# Counts the plots the browser actually decoded (a headless-browser test reads the attribute).
_SCRIPT = """
window.addEventListener("load", function () {
  var n = 0;
  document.querySelectorAll("figure[data-plot] img").forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { n += 1; }
  });
  n += document.querySelectorAll("figure[data-plot] svg").length;
  document.body.dataset.plotsLoaded = String(n);
});
"""


def _render(d: _Data, *, now: datetime.datetime) -> str:
    builders = {"questions": _section_questions, "oec": _section_oec, "lifts": _section_lifts,
                "guardrails": _section_guardrails, "trust": _section_trust, "quarantine": _section_quarantine}
    sections = [f'<section id="{anchor}"><h2>{_esc(title)}</h2>{builders[anchor](d)}</section>'
                for anchor, title in SECTIONS]
    body = "".join(sections)
    plots = body.count("<figure data-plot=")
    nav = "".join(f'<a href="#{anchor}">{_esc(title)}</a>' for anchor, title in SECTIONS)
    header = (f"<header><h1>growthlake report</h1><p>Lake {_esc(d.root)} \u00b7 generated {_esc(now)} \u00b7 "
              f"tracking plan {_esc(d.plan_version or 'not loaded')} \u00b7 {_plural(plots, 'plot')}</p>"
              f"<nav>{nav}</nav></header>")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>growthlake report</title><style>{_STYLE}</style></head>"
            f'<body data-plots="{plots}" data-plots-loaded="0">{header}<main>{body}</main>'
            f"<script>{_SCRIPT}</script></body></html>\n")
