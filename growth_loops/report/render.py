"""Render the report's data as one self-contained HTML document.

The document needs nothing else: plots are PNGs embedded as ``data:`` URIs, the style sheet and
the one small script are inline, so it opens offline, can be mailed, and renders the same in a
headless browser. Every plot sits in ``<figure data-plot="<name>">`` with a caption; every value
taken from the data is HTML-escaped. Each section degrades on its own: no data gives a short "no
data yet" note saying what is missing, never an error.

(Named ``render`` rather than ``html``: this module uses the standard library's ``html``.)
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from growth_loops.report import formatting as fmt
from growth_loops.report import plots
from growth_loops.report.answers import BOARD_QUESTIONS, Verdict, answer_board_questions
from growth_loops.report.data import DataDocs, DataTrust, ReportData, ledger_per_day
from growth_loops.report.figures import FIGURES_ID, oec_figures
from lake.alerts import alert_summary, format_duration

__all__ = ["SECTIONS", "render_report"]

#: (anchor id, heading) of every section, in order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("questions", "Board questions"),
    ("oec", "OEC trends"),
    ("lifts", "Loop lifts"),
    ("guardrails", "Guardrail events and rollbacks"),
    ("trust", "Data trust dashboard"),
    ("quarantine", "Quarantine reasons"),
)

_VERDICT_LABEL: dict[Verdict, str] = {"yes": "Yes", "no": "No", "partly": "Partly", "unknown": "Not enough data",
                                      "estimate": "Estimate"}
_NO_DATA = "no data yet"


def render_report(d: ReportData, *, now: datetime.datetime) -> str:
    """The whole HTML document of ``d``, with ``now`` printed as the time it was generated."""
    builders: dict[str, Callable[[ReportData], str]] = {
        "questions": _section_questions, "oec": _section_oec, "lifts": _section_lifts,
        "guardrails": _section_guardrails, "trust": _section_trust, "quarantine": _section_quarantine}
    sections = [f'<section id="{anchor}"><h2>{_esc(title)}</h2>{builders[anchor](d)}</section>'
                for anchor, title in SECTIONS]
    body = "".join(sections)
    plot_count = body.count("<figure data-plot=")
    nav = "".join(f'<a href="#{anchor}">{_esc(title)}</a>' for anchor, title in SECTIONS)
    header = (f"<header><h1>growthlake report</h1><p>Lake {_esc(d.root)} \u00b7 generated {_esc(now)} \u00b7 "
              f"tracking plan {_esc(d.trust.plan_version or 'not loaded')} \u00b7 "
              f"{fmt.plural(plot_count, 'plot')}</p><nav>{nav}</nav></header>")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>growthlake report</title><style>{_STYLE}</style></head>"
            f'<body data-plots="{plot_count}" data-plots-loaded="0">{header}<main>{body}</main>'
            f'<script type="application/json" id="{FIGURES_ID}">{_figures_json(d)}</script>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def _figures_json(d: ReportData) -> str:
    # The headline figures, machine-readable, for the check that reconciles them with the marts.
    return json.dumps(oec_figures(d.oec), sort_keys=True).replace("</", "<\\/")


# == sections =====================================================================================

def _section_questions(d: ReportData) -> str:
    items = []
    for i, (question, answer) in enumerate(zip(BOARD_QUESTIONS, answer_board_questions(d), strict=True), start=1):
        extra = f'<p class="assumption">{_esc(answer.assumption)}</p>' if answer.assumption else ""
        items.append(f'<li data-question="{i}"><p class="question">{_esc(question)}</p>'
                     f'<p class="answer verdict-{answer.verdict}" data-verdict="{answer.verdict}">'
                     f"<strong>{_esc(_VERDICT_LABEL[answer.verdict])}.</strong> {_esc(answer.text)}</p>{extra}</li>")
    return f'<ol class="questions">{"".join(items)}</ol>'


def _section_oec(d: ReportData) -> str:
    if d.oec is None:
        return _no_data(d.oec_note)
    oec = d.oec
    parts = [
        _embed("oec", plots.plot_oec(oec), "The OEC, revenue per active user, per day (marts.fct_daily_oec).",
               "Line chart of revenue per active user per day"),
        _embed("oec_components", plots.plot_oec_components(oec),
               "What the OEC is made of: active users, revenue, D7 retention and trial-to-paid conversion per day.",
               "Four line charts: active users, revenue, D7 retention, trial to paid"),
    ]
    recent = oec.sort("date_day", descending=True).head(14)
    parts.append(_table(
        ["day", "active users", "revenue", "revenue per active user (OEC)", "D7 retention", "trial to paid"],
        ([r["date_day"], r["active_users"], fmt.money(r["revenue"]), fmt.money(r["revenue_per_active_user"]),
          fmt.pct(r["d7_retention"]), fmt.pct(r["trial_to_paid_rate"])] for r in recent.iter_rows(named=True)),
        caption=f"The last {recent.height} days, newest first"))
    return "".join(parts)


def _section_lifts(d: ReportData) -> str:
    if not d.results:
        return _no_data("no loop has measured an experiment yet (delta/experiments/results is empty).")
    parts = []
    plotted = d.relative_lifts
    if plotted:
        left_out = len(d.results) - len(plotted)
        caption = ("Each loop's measured lift on its latest day: relative lift of treatment over control with its "
                   "95% interval (green: above 0, red: below 0, grey: the interval includes 0).")
        if left_out:
            caption += (f" {fmt.plural(left_out, 'result')} without a relative lift (control mean of 0) only in the "
                        "table.")
        parts.append(_embed("loop_lifts", plots.plot_lifts(plotted), caption, "Forest plot of loop lifts"))
    else:
        parts.append(_note("No result has a relative lift yet (control means of 0): the absolute lifts are below."))
    known = any("true_abs" in r for r in d.results)
    parts.append(_table(
        ["loop", "experiment", "metric", "day", "n control / treatment", "absolute lift [95% CI]",
         *(["true absolute lift (simulator)"] if known else []), "relative lift [95% CI]", "chance to win", "SRM"],
        ([r["loop"], r["experiment"], r["metric"], r["day"],
          f"{fmt.text(r['n_control'])} / {fmt.text(r['n_treatment'])}",
          fmt.with_interval(r, "abs", lambda v: fmt.num(v, 3)),
          *([_truth_cell(r)] if known else []),
          fmt.with_interval(r, "rel", lambda v: fmt.pct(v, signed=True)),
          fmt.pct(r.get("chance_to_win"), 0),
          ("FLAGGED" if r.get("srm_flagged") else "ok") + (f" (p={fmt.num(r['srm_p_value'], 3)})"
                                                         if fmt.finite(r.get("srm_p_value")) else "")]
         for r in d.results),
        caption="Latest result per experiment and metric"
                + ("; the true lift is the simulator's known effect (reports/true_effects.json), and whether the "
                   "95% interval covers it" if known else "")))
    return "".join(parts)


def _truth_cell(r: dict[str, Any]) -> str:
    """The known true absolute lift, and whether the measured interval covers it."""
    if "true_abs" not in r:
        return "-"
    low, high = r.get("abs_ci_low"), r.get("abs_ci_high")
    if not (fmt.finite(low) and fmt.finite(high)):
        return fmt.num(r["true_abs"], 3)
    return f"{fmt.num(r['true_abs'], 3)} ({'inside' if low <= r['true_abs'] <= high else 'outside'} the interval)"


def _section_guardrails(d: ReportData) -> str:
    if d.runs.is_empty():
        return _no_data("no loop has run yet (delta/decisions/loop_runs is empty).")
    parts = [_embed("loop_status", plots.plot_loop_status(d.runs),
                    "Each loop's status per decision day: actuated, canary, awaiting approval, skipped by a failed "
                    "gate, rejected, or rolled back (\u00d7).", "Timeline of loop statuses per day")]
    numeric = [g for g in d.guardrails if fmt.finite(g.get("relative_impact"))]
    if numeric:
        parts.append(_embed("guardrail_impact", plots.plot_guardrails(numeric),
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
            ([g["loop"], g["day"], g.get("metric"), g.get("verdict"), fmt.pct(g.get("relative_impact"), signed=True),
              fmt.pct(g.get("upper_bound"), signed=True), fmt.pct(g.get("threshold"), signed=True),
              f"{fmt.text(g.get('n_control'))} / {fmt.text(g.get('n_treatment'))}", g.get("reason")] for g in shown),
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
                            ([r["loop"], r["version"], r["state"], r["actor"], r["at"], r["reason"] or fmt.DASH]
                             for r in d.approvals.iter_rows(named=True)),
                            caption="Approvals (human oversight): the state of every policy version"))
    return "".join(parts)


def _rollback_summary(evidence: str) -> str:
    try:
        doc = json.loads(evidence or "{}")
    except ValueError:
        return evidence
    reasons = [g.get("reason") for g in doc.get("guardrails", []) if g.get("verdict") == "rollback" and g.get("reason")]
    return "; ".join(str(r) for r in reasons) or str(doc.get("note") or fmt.DASH)


def _section_trust(d: ReportData) -> str:
    t = d.trust
    parts = [_trusted_days(t), "<h3>Alerts</h3>", _alerts(t.alerts)]
    if t.data_docs is not None:
        parts += ["<h3>Expectation suites</h3>", _data_docs(t.data_docs)]
    parts.append(f"<h3>Ingestion (tracking plan {_esc(t.plan_version or 'not loaded')})</h3>")
    if t.plan_note:
        parts.append(_note(t.plan_note))
    if t.ledger.is_empty():
        parts.append(_no_data("nothing has been ingested (the ingestion ledger is empty)."))
    else:
        daily = ledger_per_day(t.ledger)
        parts.append(_embed("ingestion_volume", plots.plot_ingestion_volume(daily),
                            "Where every landed line went, per landing day: bronze, quarantine, or dropped (no "
                            "analytics consent, duplicate event_id).", "Stacked bars of landed lines per day"))
        parts.append(_embed("ingestion_health", plots.plot_ingestion_health(daily),
                            "Per landing day: share of lines quarantined, share of hourly partitions whose counts "
                            "reconcile, and ingestion gates evaluated and failed.",
                            "Quarantine rate, reconciliation and gate failures per day"))
        parts.append(_table(
            ["day", "partitions", "lines landed", "bronze", "quarantined", "quarantine rate", "no consent",
             "duplicates", "reconciled", "failed gates"],
            ([r["day"], r["partitions"], r["lines_landed"], r["bronze_rows"], r["quarantined"],
              fmt.pct(r["quarantine_rate"], 2),
              r["consent_dropped"], r["duplicates_dropped"], fmt.pct(r["reconciled_share"]), r["failed_gates"]]
             for r in daily.sort("day", descending=True).iter_rows(named=True)),
            caption="The ingestion ledger per landing day, newest first"))
        failed = t.ledger.filter(pl.col("gate_status") != "passed").sort("landing_partition")
        if not failed.is_empty():
            parts.append(_table(["landing partition", "gate", "summary"],
                                ([r["landing_partition"], r["gate_status"], r["gate_summary"]]
                                 for r in failed.iter_rows(named=True)), caption="Failed ingestion gates"))
    parts.append("<h3>Feature materializations</h3>")
    log = t.materializations
    if log.is_empty():
        parts.append(_no_data("no feature view has been materialized."))
    else:
        parts.append(_embed("feature_materializations", plots.plot_materializations(log, t.drift_thresholds),
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
              fmt.num(r["max_psi"], 3), r["accepted"], r["last_day"]] for r in per_view.iter_rows(named=True)),
            caption="Feature views: gates per view"))
    if t.dbt_tests is not None:
        parts.append("<h3>Warehouse tests</h3>")
        parts.append(_note(f"The last warehouse build ran {fmt.plural(sum(t.dbt_tests.values()), 'dbt test')}: "
                           f"{t.dbt_tests['pass']:,} passed, {t.dbt_tests['warn']:,} warned, "
                           f"{t.dbt_tests['fail']:,} failed."))
    return "".join(parts)


def _alerts(alerts: pl.DataFrame) -> str:
    """How many alerts are open, how long resolving took (median), and the open ones, newest first."""
    s = alert_summary(alerts)
    if alerts.is_empty():
        return _note("No alert has been raised (failed gates, failed runs and freshness breaches raise one each).")
    kinds = ", ".join(f"{n} {k}" for k, n in s["open_by_kind"].items())
    parts = [_note(f"{fmt.plural(s['open'], 'open alert')}{f' ({kinds})' if kinds else ''}; "
                   f"{s['resolved']:,} resolved, median time to resolve "
                   f"{format_duration(s['median_time_to_resolve_s'])} (`growthlake alerts list`).")]
    unresolved = alerts.filter(pl.col("state") != "resolved").sort("raised_at", descending=True)
    if not unresolved.is_empty():
        parts.append(_table(
            ["raised", "kind", "state", "subject", "detail"],
            ([f"{r['raised_at']:%Y-%m-%d %H:%M}", r["kind"],
              r["state"] + (f" by {r['acked_by']}" if r["acked_by"] else ""), r["subject"], (r["detail"] or "")[:160]]
             for r in unresolved.head(30).iter_rows(named=True)),
            caption="Open alerts, newest first (acknowledge or resolve with `growthlake alerts ack|resolve ID`)"))
    return "".join(parts)


def _trusted_days(t: DataTrust) -> str:
    """Which days decisions may use, each gate's verdict per day, and each asset's runs (lake/trust)."""
    if not t.days:
        return "<h3>Trusted days</h3>" + _no_data("no silver data yet: no day to judge.")
    untrusted = [v for v in t.days if not v.trusted]
    parts = ["<h3>Trusted days</h3>",
             _note(f"{len(t.days) - len(untrusted)} of {fmt.plural(len(t.days), 'day')} trusted. A day is untrusted "
                   "while the latest evaluation of any gate on its data failed, or while silver has not caught up "
                   "with its end; the loops do not act on it and its OEC row says so "
                   "(marts.fct_daily_oec.is_trusted)."),
             _embed("trust", plots.plot_trust(t.days, t.gates),
                    "Per day: may decisions use it (top), and each gate's latest verdict on that day's data.",
                    "Trusted days and gate verdicts per day")]
    if untrusted:
        parts.append(_table(["day", "why not"], ([v.day, "; ".join(v.reasons)] for v in reversed(untrusted[-30:])),
                            caption="Untrusted days, newest first (resolve: re-run the partition once the data is "
                                    "fixed, or `growthlake trust accept`)"))
    runs = t.asset_runs
    if not runs.is_empty():
        per_asset = runs.sort("recorded_at").group_by("asset").agg(
            pl.len().alias("runs"), (pl.col("status") == "failed").sum().alias("failed_runs"),
            pl.col("recorded_at").last().alias("last_run"), pl.col("rows").last().alias("rows"),
            (pl.col("freshness_lag_s").median() / 3600).alias("lag_h"), pl.col("gates_passed").sum(),
            pl.col("gates_failed").sum(), pl.col("quarantine_rate").mean(),
            pl.col("reconciled").mean().alias("reconciled")).sort("asset")
        parts.append(_table(
            ["asset", "runs", "failed runs", "last run", "rows (last)", "median lag", "gates passed", "gates failed",
             "quarantine rate", "reconciled"],
            ([r["asset"], r["runs"], r["failed_runs"], f"{r['last_run']:%Y-%m-%d %H:%M}Z", fmt.num(r["rows"], 0),
              f"{fmt.num(r['lag_h'], 1)} h" if r["lag_h"] is not None else fmt.DASH, r["gates_passed"],
              r["gates_failed"], fmt.pct(r["quarantine_rate"], 2), fmt.pct(r["reconciled"])]
             for r in per_asset.iter_rows(named=True)),
            caption="Per asset: its runs (through the Dagster jobs), freshness lag behind the partition's end, "
                    "gates, quarantine and reconciliation"))
    failed = t.gates.filter(~pl.col("passed")) if not t.gates.is_empty() else t.gates
    if not failed.is_empty():
        parts.append(_table(["asset", "partition", "gate", "verdict"],
                            ([r["asset"], r["partition"] or fmt.DASH, r["gate"], r["description"] or ""]
                             for r in failed.iter_rows(named=True)),
                            caption="Gates whose latest evaluation failed"))
    return "".join(parts)


def _data_docs(docs: DataDocs) -> str:
    """The trust dashboard's link to the Data Docs, or why there is none."""
    if docs.error:
        return _note(f"The Great Expectations Data Docs could not be built: {docs.error}")
    return (f'<p><a href="{_esc(docs.href)}">Great Expectations Data Docs</a></p>'
            + _note(f"{fmt.plural(docs.suites, 'expectation suite')} documented."))


def _section_quarantine(d: ReportData) -> str:
    if d.quarantine.is_empty():
        return _no_data("no line has been quarantined (the bronze quarantine is empty).")
    total = int(d.quarantine["total"].sum())
    return "".join([
        _embed("quarantine_reasons", plots.plot_quarantine(d.quarantine),
               "Quarantined lines by contract violation (open: waiting for a fix and a replay).",
               "Bar chart of quarantined lines by violation type"),
        _table(["violation", "open", "replayed", "total", "share"],
               ([r["violation_type"], r["open"], r["replayed"], r["total"], fmt.pct(r["total"] / total)]
                for r in d.quarantine.iter_rows(named=True)),
               caption=f"{fmt.plural(total, 'quarantined line')} by reason"),
    ])


# == HTML building blocks =========================================================================

def _esc(value: Any) -> str:
    return html.escape(fmt.text(value), quote=True)


@dataclass(frozen=True)
class _Raw:
    """A table cell that is already HTML (built here from escaped parts)."""

    html: str


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> str:
    """An HTML table; every cell is escaped (cells given as ``_Raw`` are already HTML)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c.html if isinstance(c, _Raw) else _esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f'<div class="table"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _embed(name: str, png: bytes, caption: str, alt: str) -> str:
    """A plot as a ``<figure data-plot=name>``: the PNG inline as a ``data:`` URI, and its caption."""
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<figure data-plot="{_esc(name)}"><img src="data:image/png;base64,{encoded}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _no_data(what: str) -> str:
    return _note(f"{_NO_DATA[0].upper()}{_NO_DATA[1:]}: {what}")


# == style and script =============================================================================

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
