"""The report's inputs: the lake and the warehouse read into plain frames, dicts and dataclasses.

Nothing here writes to the lake or renders anything. Every reader degrades on its own: a table that
does not exist yet reads as an empty frame, a warehouse not built yet gives ``None`` with a note
saying why, so each section of the report can say "no data yet" instead of failing.

- :func:`load_report_data` — everything the report shows, read once per report.
- :func:`load_data_trust` — what the data trust dashboard shows: the tracking plan, the ingestion
  ledger, the feature materializations and their drift thresholds, the warehouse's dbt tests.
- :func:`build_data_docs` — the Great Expectations Data Docs the dashboard links to (written next
  to the report; the only function here that writes a file).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from growth_loops.actuation.documents import features_document_path, load_features_document
from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.features import FeatureStore
from growth_loops.features.rollups import NON_ACTIVITY_EVENTS, REPORTING_CURRENCY
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import DECISIONS, EXPERIMENT_RESULTS, LOOP_RUNS, LoopSettings
from growth_loops.report import formatting as fmt
from lake import delta_io
from lake.alerts import read_alerts
from lake.contracts import load_plan
from lake.errors import GrowthlakeError
from lake.ledger import read_ledger
from lake.paths import LakePaths
from lake.schemas import BRONZE_QUARANTINE, SILVER_EVENTS
from lake.trust import DayTrust, daily_verdicts, latest_gate_evaluations, read_asset_runs

if TYPE_CHECKING:
    from growth_loops.experiments import Estimate

__all__ = [
    "DATA_DOCS_DIR",
    "MIN_HOLDOUT_GROUP",
    "DataDocs",
    "DataTrust",
    "Holdout",
    "ReportData",
    "build_data_docs",
    "ledger_per_day",
    "load_data_trust",
    "load_report_data",
    "read_oec",
]

#: Fewer people than this in the global holdout (or outside it) and the holdout comparison is
#: reported as not enough data instead of an interval.
MIN_HOLDOUT_GROUP = 30
#: Folder, next to the report file, of the Great Expectations Data Docs the report links to.
DATA_DOCS_DIR = "data_docs"


@dataclass
class Holdout:
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


@dataclass(frozen=True)
class DataDocs:
    """The Great Expectations Data Docs built next to the report, or why they could not be built."""

    suites: int = 0  # expectation suites documented
    error: str = ""  # "<exception type>: <message>" when the build failed
    href: str = f"{DATA_DOCS_DIR}/index.html"  # relative to the report file


@dataclass
class DataTrust:
    """What the data trust dashboard shows (and the "data contracts" board answer reads)."""

    plan_version: str | None
    plan_events: int
    plan_note: str  # why the tracking plan could not be loaded ("" when it was)
    ledger: pl.DataFrame  # the ingestion ledger, one row per landing partition
    materializations: pl.DataFrame  # the feature store's materialization log, newest first
    drift_thresholds: dict[str, float]  # feature view -> PSI threshold of its drift gate
    dbt_tests: dict[str, int] | None  # pass / fail / warn of the last warehouse build
    days: list[DayTrust] = field(default_factory=list)  # per day of silver: may decisions use it (lake/trust)
    gates: pl.DataFrame = field(default_factory=pl.DataFrame)  # latest evaluation per asset, partition and gate
    asset_runs: pl.DataFrame = field(default_factory=pl.DataFrame)  # per asset and run: rows, lag, gates
    data_docs: DataDocs | None = None  # set when the report builds the Data Docs
    alerts: pl.DataFrame = field(default_factory=pl.DataFrame)  # every alert with its ack/resolve (lake/alerts)


@dataclass
class ReportData:
    """Everything the report shows, read from one lake."""

    root: str
    oec: pl.DataFrame | None
    oec_note: str  # why there is no OEC frame ("" when there is)
    results: list[dict[str, Any]]  # latest result per (experiment, metric), record expanded; ``true_abs`` when known
    runs: pl.DataFrame  # LOOP_RUNS
    guardrails: list[dict[str, Any]]  # one row per evaluated guardrail per loop run
    audit_kinds: pl.DataFrame  # decision_id, loop, kind, actor
    rollbacks: pl.DataFrame  # audit records of kind rollback
    approvals: pl.DataFrame  # list_approvals
    decisions_total: int
    decisions_audited: int
    quarantine: pl.DataFrame  # violation_type, open, replayed, total
    outbox: dict[str, int]  # status -> messages
    holdout: Holdout | None
    trust: DataTrust

    @property
    def relative_lifts(self) -> list[dict[str, Any]]:
        """The latest results whose relative lift and its 95% interval were computed."""
        keys = ("rel_estimate", "rel_ci_low", "rel_ci_high")
        return [r for r in self.results if all(fmt.finite(r.get(k)) for k in keys)]


def load_report_data(paths: LakePaths) -> ReportData:
    """Read everything the report shows from the lake at ``paths`` (each table once)."""
    runs = _frame(paths.table("decisions", "loop_runs"), LOOP_RUNS).sort("day", "loop")
    log = audit.read_audit(paths)
    audit_kinds = log.select("decision_id", "loop", "kind", "actor")
    decisions_total, decisions_audited = _decision_coverage(paths, runs, audit_kinds)
    oec, oec_note = read_oec(paths)
    outbox = _frame(outbox_path(paths), MESSAGE_OUTBOX, ["status"])
    return ReportData(
        root=paths.root,
        oec=oec,
        oec_note=oec_note,
        results=_with_true_effects(_latest_results(paths), read_true_effects(paths)),
        runs=runs,
        guardrails=[{"loop": r["loop"], "day": r["day"], **g} for r in runs.iter_rows(named=True)
                    for g in json.loads(r["guardrails"] or "[]")],
        audit_kinds=audit_kinds,
        rollbacks=log.filter(pl.col("kind") == "rollback"),
        approvals=approvals.list_approvals(paths),
        decisions_total=decisions_total,
        decisions_audited=decisions_audited,
        quarantine=_quarantine(paths),
        outbox={s: n for s, n in outbox.group_by("status").len().iter_rows()},
        holdout=_holdout(paths, runs),
        trust=load_data_trust(paths),
    )


def load_data_trust(paths: LakePaths) -> DataTrust:
    """Read what the data trust dashboard shows: the days decisions may use, every gate's latest verdict
    and each asset's runs (lake/trust), the alerts and their time to resolve (lake/alerts), the contract,
    ingestion, feature gates, warehouse tests.

    The Data Docs are not read here (they are built next to the report, see :func:`build_data_docs`).
    """
    plan_version, plan_events, plan_note = _read_plan()
    store = FeatureStore(paths)
    return DataTrust(
        plan_version=plan_version,
        plan_events=plan_events,
        plan_note=plan_note,
        ledger=pl.from_arrow(read_ledger(paths)).drop("event_dates", "files"),  # type: ignore[union-attr]
        materializations=store.materializations(),
        drift_thresholds={v.name: float(v.drift_threshold) for v in store.views},
        dbt_tests=_dbt_tests(paths),
        days=daily_verdicts(paths),
        gates=latest_gate_evaluations(paths),
        asset_runs=read_asset_runs(paths),
        alerts=read_alerts(paths),
    )


def build_data_docs(site: Path) -> DataDocs:
    """Build the GX Data Docs of every suite into ``site`` (never raises: a failure is returned)."""
    from expectations.docs import build_data_docs as build_gx_data_docs
    from expectations.suites import suite_names

    try:
        build_gx_data_docs(site)
        suites = len(suite_names())
    except Exception as exc:  # noqa: BLE001 - the report must render whatever GX does
        return DataDocs(error=f"{type(exc).__name__}: {exc}")
    return DataDocs(suites=suites)


def ledger_per_day(ledger: pl.DataFrame) -> pl.DataFrame:
    """The ingestion ledger summed per landing day, with its quarantine rate and reconciled share."""
    return (ledger.group_by("landing_date").agg(
        pl.len().alias("partitions"), pl.col("lines_landed").sum(), pl.col("bronze_rows").sum(),
        pl.col("quarantined").sum(), pl.col("consent_dropped").sum(), pl.col("duplicates_dropped").sum(),
        pl.col("reconciled").sum().alias("reconciled"), (pl.col("gate_status") != "passed").sum().alias("failed_gates"))
        .rename({"landing_date": "day"}).sort("day")
        .with_columns((pl.col("quarantined") / pl.col("lines_landed")).alias("quarantine_rate"),
                      (pl.col("reconciled") / pl.col("partitions")).alias("reconciled_share")))


# -- readers -------------------------------------------------------------------------------------

def _frame(uri: str, schema: Any, columns: Sequence[str] | None = None) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(uri, schema, columns=columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def read_oec(paths: LakePaths) -> tuple[pl.DataFrame | None, str]:
    """marts.fct_daily_oec by day, or None and why there is none (no warehouse, no table, no rows)."""
    try:
        path = Path(paths.warehouse)
    except GrowthlakeError:  # an object-store root without GROWTHLAKE_LOCAL_DIR
        return None, "the warehouse is a local DuckDB file and GROWTHLAKE_LOCAL_DIR is unset for this object store."
    if not path.exists():
        return None, f"the warehouse ({path.name}) has not been built yet; growthlake run builds it."
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        return None, f"the warehouse could not be opened read-only ({str(exc).splitlines()[0]})."
    try:
        columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_daily_oec'").fetchall()}
        trust = "is_trusted" if "is_trusted" in columns else "null::boolean as is_trusted"  # older warehouses
        frame = con.sql("select date_day, active_users, revenue, revenue_per_active_user, d7_retention, "
                        f"trial_to_paid_rate, {trust} from marts.fct_daily_oec order by date_day").pl()
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


TRUE_EFFECTS_FILE = "true_effects.json"
"""Known true effects, beside the report: written by a simulator (``growthlake loops simulate``,
``make demo``) so the report can show each measured lift beside the truth. A real product has none."""


def true_effects_path(paths: LakePaths) -> Path:
    """``$GROWTHLAKE_ROOT/reports/true_effects.json`` (a local root only)."""
    return Path(paths.root) / "reports" / TRUE_EFFECTS_FILE


def read_true_effects(paths: LakePaths) -> dict[tuple[str, str], float]:
    """The known true absolute effects per (experiment, metric); empty when there is no such file.

    The file: ``{"source": "...", "effects": [{"experiment": ..., "metric": ..., "abs": <float>}, ...]}``.
    An unreadable file is reported as a GrowthlakeError saying which file and what to do.
    """
    if "://" in paths.root:
        return {}
    path = true_effects_path(paths)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {(e["experiment"], e["metric"]): float(e["abs"]) for e in doc["effects"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise GrowthlakeError(f"{path} is not a true-effects file ({exc!r}): it needs "
                              '{"effects": [{"experiment": ..., "metric": ..., "abs": <number>}]}; '
                              "fix or delete it.") from None


def _with_true_effects(rows: list[dict[str, Any]], truth: dict[tuple[str, str], float]) -> list[dict[str, Any]]:
    return [{**r, "true_abs": truth[(r["experiment"], r["metric"])]} if (r["experiment"], r["metric"]) in truth
            else r for r in rows]


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
    try:
        results = Path(paths.dbt_dir, "target", "run_results.json")
    except GrowthlakeError:  # an object-store root without GROWTHLAKE_LOCAL_DIR
        return None
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


def _holdout(paths: LakePaths, runs: pl.DataFrame) -> Holdout | None:
    """Compare people in the global holdout with the others: the loops' combined effect."""
    if runs.is_empty():
        return None
    from growth_loops.experiments import ExperimentError, in_holdout_many, welch

    defaults = LoopSettings()
    share, seed, from_doc = defaults.holdout_share, defaults.holdout_seed, False
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
    result = Holdout(share=share, seed=seed, from_document=from_doc, n_holdout=holdout_group.height,
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
