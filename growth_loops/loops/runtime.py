"""One decision run: every loop decides for a day, under its gates, lifecycle, guardrails and caps.

``run_decisions(paths, day)`` is the nightly (and hourly) body the Dagster assets wire. For each
loop it:

1. checks the loop's upstream gates — every feature view it reads must have been published (or
   found unchanged) for ``day``, and every day of its inputs (``day`` and the
   ``trust_lookback_days`` before) must be trusted (lake/trust: no failed gate on their data, silver
   caught up with the day's end); otherwise nothing new is actuated: the loop's flag keeps its
   previous decision, no message is queued, and a ``skipped`` audit record says why;
2. reads the loop's lifecycle (``loops.lifecycle``, stored by ``loops.approvals``): a **stopped**
   loop (``growthlake loops stop``) actuates control and sends nothing, whatever its version's
   state; a new version is registered (``pending`` for a human loop, ``canary`` for an auto one);
   a pending, rejected or rolled-back version actuates control;
3. lets the loop decide (policy → actions with propensities, analyses) on its canary share or
   on everyone;
4. evaluates the loop's guardrails — declared in its spec, measured through the metric layer on
   every unit its version exposed so far, always valid under nightly looks (``loops.guardrails``) —
   and rolls back on a breach (control for everyone from the next run, recorded as ``rolled_back``);
   an auto loop's canary approves itself after ``stable_days`` consecutive days of powered,
   passing verdicts;
5. applies the caps (``loops.caps``): messages per person a week, and the loop's daily budget of
   costly actions; every cap that binds is audited;
6. stages what it would write — the loops' decisions, audit records, messages, experiment
   results (with Holm-adjusted p-values across the loop's metrics), run records and the
   GrowthBook features document — and audits the staged decisions (:func:`audit_decisions`: the
   GX suite ``loop_decisions`` and every decision's audit record), write-audit-publish through
   ``lake.wap``;
7. only when every loop's audit passed, publishes, idempotently: the features document, the
   decisions (Delta, one partition per day), the message outbox, the audit log, the run records
   and the experiment results. A failed audit publishes none of them (the product keeps the
   previous flags, nothing is queued) and :func:`run_decisions` reports it in each run's
   ``audit`` (the ``audited_<loop>`` check).

Decisions taken for ``day`` act from the next day (the simulator reads the outbox at midnight).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from growth_loops.actuation import (
    FlagDecision,
    OutboxMessage,
    Rollback,
    build_features_document,
    enqueue,
    features_document_path,
    load_features_document,
    publish_features_document,
    recent_counts,
)
from growth_loops.experiments import adjust_p_values
from growth_loops.features import FeatureStore
from growth_loops.loops import approvals, audit
from growth_loops.loops.caps import apply_caps
from growth_loops.loops.data import read_events
from growth_loops.loops.errors import LoopError
from growth_loops.loops.guardrails import GuardrailVerdict, evaluate_all
from growth_loops.loops.lifecycle import stable_streak
from growth_loops.loops.spec import LoopSpec
from growth_loops.metrics import MetricLayer, load_metric_layer, mature_units, metric_stats, unit_values
from lake import delta_io, trust
from lake.ingest.audit import audit_hours, gx_auditor
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.wap import CheckOutcome, publish_if_audited

__all__ = [
    "DECISIONS",
    "EXPERIMENT_RESULTS",
    "LOOP_RUNS",
    "DayContext",
    "Loop",
    "LoopRun",
    "LoopSettings",
    "Outcome",
    "run_decisions",
]

_TS = pa.timestamp("us", tz="UTC")
Mode = Literal["full", "canary"]

DECISIONS = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),  # partition: the decision day (acts from day + 1)
        pa.field("loop", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("person_id", pa.string()),  # null: a loop-level decision (e.g. a bandit's arm weight)
        pa.field("action", pa.string(), nullable=False),
        pa.field("propensity", pa.float64()),
        pa.field("actuated", pa.bool_(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),  # full | canary
        pa.field("decided_at", _TS, nullable=False),
    ]
)

LOOP_RUNS = pa.schema(
    [
        pa.field("loop", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        # status: actuated | canary | skipped | stopped | awaiting_approval | rejected | rolled_back
        pa.field("status", pa.string(), nullable=False),
        pa.field("approval_state", pa.string(), nullable=False),
        pa.field("guardrails", pa.string(), nullable=False),  # JSON list of verdicts
        pa.field("decisions", pa.int64(), nullable=False),
        pa.field("messages", pa.int64(), nullable=False),
        pa.field("flag", pa.string()),  # JSON of the flag's document entry
        pa.field("note", pa.string(), nullable=False),
        pa.field("decided_at", _TS, nullable=False),
    ]
)

EXPERIMENT_RESULTS = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("loop", pa.string(), nullable=False),
        pa.field("experiment", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("n_control", pa.int64(), nullable=False),
        pa.field("n_treatment", pa.int64(), nullable=False),
        pa.field("srm_p_value", pa.float64()),
        pa.field("srm_flagged", pa.bool_()),
        pa.field("record", pa.string(), nullable=False),  # JSON: experiments.MetricResult.to_record()
    ]
)


@dataclass(frozen=True)
class LoopSettings:
    """Settings shared by every loop of a lake.

    Attributes:
        holdout_share: Share of people in the global holdout, whom no loop touches.
        holdout_seed: Seed of the holdout's hash (GrowthBook-compatible).
        canary_share: Share of eligible units an auto loop's canary version acts on before approval.
        trust_lookback_days: Days before the decision day whose data must be trusted (lake/trust) for
            a loop to act: the longest feature window (28 days) a decision reads.
        messages_per_person_per_week: The frequency cap: at most this many messages (all loops
            together) per person over the 7 days ending with the decision day; None: no cap.
        evidence_days: The guardrails read the units a version exposed over at most this many days.
    """

    holdout_share: float = 0.05
    holdout_seed: str = "global-holdout"
    canary_share: float = 0.1
    trust_lookback_days: int = 28
    messages_per_person_per_week: int | None = 2
    evidence_days: int = 60


@dataclass
class Outcome:
    """What a loop decided for a day (before the runtime applies rollback and writes it)."""

    flag: FlagDecision | None = None
    messages: list[OutboxMessage] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # person_id, action, propensity
    guardrails: list[GuardrailVerdict] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # EXPERIMENT_RESULTS rows without day/loop
    evidence: dict[str, Any] = field(default_factory=dict)
    policy_version: str | None = None  # when the loop runs a promoted policy under its version


class Loop:
    """A growth loop: a declaration (``spec``), a version, and how it decides for a day."""

    spec: LoopSpec
    version: str

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:  # pragma: no cover - interface
        raise NotImplementedError

    def units(self, ctx: DayContext) -> pl.DataFrame:
        """The units this version exposed so far — ``person_id``, ``arm`` (``control`` or
        ``treatment``), ``start_at`` — on which its guardrails are measured.

        By default its actuated person-level decisions, starting the morning after the decision
        (when the product acts on them); loops that the product exposes (flags) override it
        with their exposures.
        """
        decided = ctx.decisions(self.spec.name, since=ctx.day - datetime.timedelta(days=ctx.settings.evidence_days))
        mine = decided.filter(pl.col("person_id").is_not_null() & pl.col("actuated")
                              & pl.col("policy_version").str.starts_with(self.version))
        return mine.select(
            "person_id",
            pl.when(pl.col("action") == self.spec.control).then(pl.lit("control")).otherwise(pl.lit("treatment"))
            .alias("arm"),
            (pl.col("day").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1)).alias("start_at"))

    def control_flag(self, reason: str, *, decision_id: str | None = None) -> FlagDecision | None:
        """The flag decision that actuates control for everyone (None for message loops)."""
        if self.spec.actuation == "message":
            return None
        return Rollback(key=self.spec.target, default=self.spec.control, reason=reason,
                        decision_id=decision_id or f"{self.spec.name}-{self.version}")


@dataclass(frozen=True)
class LoopRun:
    """The result of one loop on one day."""

    loop: str
    day: datetime.date
    policy_version: str
    status: str
    approval_state: str
    outcome: Outcome
    note: str = ""
    audit: CheckOutcome | None = None  # the audit of its staged decisions (``audited_<loop>``)
    published: bool = False  # the day's writes were published (every loop's audit passed)

    @property
    def actuated(self) -> bool:
        return self.status in ("actuated", "canary")


class DayContext:
    """What loops read on a decision day, loaded lazily and cached for the run."""

    def __init__(self, paths: LakePaths, day: datetime.date, *, settings: LoopSettings, now: datetime.datetime):
        self.paths, self.day, self.settings, self.now = paths, day, settings, now
        self.store = FeatureStore(paths)
        self._features: dict[tuple[str, tuple[datetime.date, ...]], pl.DataFrame] = {}
        self._events: dict[tuple[datetime.date, datetime.date], pl.DataFrame] = {}
        self._gates: dict[str, tuple[bool, str]] | None = None
        self._untrusted: dict[str, list[str]] | None = None
        self._runs: pl.DataFrame | None = None
        self._metric_layer: MetricLayer | None = None

    def untrusted(self) -> dict[str, list[str]]:
        """Days of the decision's inputs that decisions must not use (lake/trust), with reasons."""
        if self._untrusted is None:
            days = [self.day - datetime.timedelta(days=d) for d in range(self.settings.trust_lookback_days + 1)]
            self._untrusted = {d.isoformat(): r for d, r in sorted(trust.untrusted_days(self.paths, days).items())}
        return self._untrusted

    def gate(self, view: str) -> tuple[bool, str]:
        """(passed, snapshot reference or reason) for a feature view's materialization of the day."""
        if self._gates is None:
            log = self.store.materializations()
            self._gates = {}
            for name in {v.name for v in self.store.views}:
                mine = log.filter((pl.col("view") == name) & (pl.col("day") == self.day))
                if mine.is_empty():
                    self._gates[name] = (False, f"{name} was not materialized for {self.day}")
                    continue
                latest = mine.row(0, named=True)  # newest first
                if latest["status"] == "held":
                    self._gates[name] = (False, f"{name} {self.day} is held by its gates "
                                                f"(gx {'ok' if latest['gx_passed'] else 'FAILED'}, "
                                                f"drift {latest['drift_passed']})")
                else:
                    self._gates[name] = (True, f"{name}@{self.day}#v{latest['delta_version']}")
        return self._gates.get(view, (False, f"unknown feature view {view}"))

    def features(self, view: str, days: Sequence[datetime.date] | None = None) -> pl.DataFrame:
        key = (view, tuple(days) if days is not None else (self.day,))
        if key not in self._features:
            self._features[key] = self.store.history(view, days=list(key[1]))
        return self._features[key]

    def events(self, start: datetime.date, end: datetime.date | None = None) -> pl.DataFrame:
        key = (start, end or self.day)
        if key not in self._events:
            self._events[key] = read_events(self.paths, key[0], key[1])
        return self._events[key]

    def decisions(self, loop: str, *, since: datetime.date | None = None) -> pl.DataFrame:
        """The loop's earlier decisions (days before this one)."""
        table = delta_io.read(self.paths.loop_decisions(loop), DECISIONS)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.filter(pl.col("day") < self.day)
        return frame if since is None else frame.filter(pl.col("day") >= since)

    def runs(self, loop: str) -> pl.DataFrame:
        """The loop's earlier runs (days before this one), oldest first; the table is read once."""
        if self._runs is None:
            frame = pl.from_arrow(delta_io.read(self.paths.table("decisions", "loop_runs"), LOOP_RUNS))
            assert isinstance(frame, pl.DataFrame)
            self._runs = frame.filter(pl.col("day") < self.day).sort("day")
        return self._runs.filter(pl.col("loop") == loop)

    @property
    def metric_layer(self) -> MetricLayer:
        """The metric layer (``growth_loops.metrics``): what loops and guardrails measure."""
        if self._metric_layer is None:
            self._metric_layer = load_metric_layer()
        return self._metric_layer

    def evidence_events(self) -> pl.DataFrame:
        """Silver events of the guardrails' evidence window (``LoopSettings.evidence_days``), read once."""
        return self.events(self.day - datetime.timedelta(days=self.settings.evidence_days))

    def rng_seed(self, loop: str) -> int:
        return int(hashlib.sha256(f"{loop}|{self.day.isoformat()}".encode()).hexdigest()[:12], 16)


def run_decisions(paths: LakePaths, day: datetime.date, *, loops: Sequence[Loop] | None = None,
                  settings: LoopSettings | None = None, now: datetime.datetime | None = None) -> list[LoopRun]:
    """Run every loop for ``day`` and write its decisions, audit records and outbox (idempotent)."""
    from growth_loops.loops.catalog import default_loops

    settings = settings or LoopSettings()
    now = now or datetime.datetime.now(datetime.UTC)
    loops = list(loops) if loops is not None else default_loops(settings)
    names = [loop.spec.name for loop in loops]
    if len(set(names)) != len(names):
        raise LoopError("loops", f"names repeat: {names}", "Give every loop a unique name.")
    ctx = DayContext(paths, day, settings=settings, now=now)
    flag_path = features_document_path(paths)
    try:
        previous_doc = load_features_document(flag_path)
    except Exception:  # noqa: BLE001 - no document yet (or unreadable): nothing to keep
        previous_doc = {"features": {}}
    with table_lock(paths, "loops"):
        runs = [_run_one(ctx, loop) for loop in loops]
        _cap(ctx, runs, loops)
        flags: list[FlagDecision] = [r.outcome.flag for r in runs if r.outcome.flag is not None]
        doc = build_features_document(flags)
        # A loop skipped by a failed gate keeps the decision already in the product.
        for run, loop in zip(runs, loops, strict=True):
            if run.status == "skipped" and loop.spec.actuation != "message":
                kept = previous_doc.get("features", {}).get(loop.spec.target)
                if kept is not None:
                    doc["features"][loop.spec.target] = kept
        doc["features"] = dict(sorted(doc["features"].items()))
        verdict = publish_if_audited(stage=lambda: _stage(ctx, runs, doc), audit=audit_decisions,
                                     publish=lambda staged: _publish(ctx, staged))
    return [replace(run, audit=verdict.check(f"audited_{run.loop}"), published=verdict.published) for run in runs]


def _run_one(ctx: DayContext, loop: Loop) -> LoopRun:
    spec, day = loop.spec, ctx.day
    gates = {view: ctx.gate(view) for view in spec.views}
    failed = {v: why for v, (ok, why) in gates.items() if not ok}
    snapshot = ",".join(why for ok, why in gates.values() if ok)
    untrusted = ctx.untrusted()
    if failed or untrusted:
        notes = [*failed.values()] + [f"{d} untrusted ({'; '.join(r)})" for d, r in untrusted.items()]
        return LoopRun(spec.name, day, loop.version, "skipped", "n/a",
                       Outcome(evidence={"gates": failed, "untrusted_days": untrusted}),
                       note="upstream gate failed: " + "; ".join(notes)
                            + (" (re-run the partition once fixed, or `growthlake trust accept`)" if untrusted else ""))
    approvals.request(ctx.paths, spec.name, loop.version, now=ctx.now, mode=spec.approval.mode,
                      evidence={"day": day.isoformat(), "snapshot": snapshot, "spec": spec.description,
                                "guardrails": [g.metric for g in spec.guardrails]})
    life = approvals.lifecycle(ctx.paths, spec.name, loop.version)
    state = life.state or "n/a"
    if life.stopped:
        return LoopRun(spec.name, day, loop.version, "stopped", state,
                       Outcome(flag=loop.control_flag("stopped", decision_id=f"{spec.name}-stopped"),
                               evidence={"snapshot": snapshot}),
                       note=f"{spec.name} is stopped: control for everyone, nothing sent "
                            f"(`growthlake loops resume {spec.name}`)")
    if life.state in ("rejected", "rolled_back", "pending"):
        status = {"rejected": "rejected", "rolled_back": "rolled_back", "pending": "awaiting_approval"}[life.state]
        return LoopRun(spec.name, day, loop.version, status, state,
                       Outcome(flag=loop.control_flag(status), evidence={"snapshot": snapshot}),
                       note=f"version {loop.version} is {life.state.replace('_', ' ')}: control is actuated"
                            + (" (`growthlake approvals approve`)" if life.state == "pending" else ""))
    mode: Mode = "canary" if life.mode == "canary" else "full"
    outcome = loop.decide(ctx, mode)
    outcome.evidence.setdefault("snapshot", snapshot)
    outcome.guardrails = guardrail_verdicts(ctx, loop)
    breached = [g for g in outcome.guardrails if g.rollback]
    if breached:
        outcome.flag, outcome.messages = loop.control_flag("guardrail breach"), []
        reason = "; ".join(g.reason for g in breached)
        evidence = {"day": day.isoformat(), "guardrails": [json.loads(g.evidence()) for g in breached]}
        approvals.roll_back(ctx.paths, spec.name, loop.version, reason=reason, now=ctx.now, evidence=evidence)
        return LoopRun(spec.name, day, loop.version, "rolled_back", "rolled_back", outcome,
                       note="guardrail breach: " + reason)
    if mode == "canary":  # autonomy follows evidence: powered, passing guardrails on stable_days canary days
        earlier = ctx.runs(spec.name).filter(pl.col("policy_version").str.starts_with(loop.version))
        days: list[str | list[dict[str, Any]]] = []
        for row in earlier.iter_rows(named=True):
            days = days + [row["guardrails"]] if row["status"] == "canary" else []
        days.append([json.loads(g.evidence()) for g in outcome.guardrails])
        streak, required = stable_streak(days), spec.approval.stable_days
        outcome.evidence["autonomy"] = {"stable_days": streak, "required_days": required,
                                        "guardrails": len(spec.guardrails)}
        if spec.guardrails and streak >= required:
            approvals.auto_approve(ctx.paths, spec.name, loop.version, stable_days=streak, required_days=required,
                                   evidence={"day": day.isoformat()}, now=ctx.now)
            state = "approved"
    return LoopRun(spec.name, day, outcome.policy_version or loop.version, "canary" if mode == "canary" else "actuated",
                   state, outcome)


def guardrail_verdicts(ctx: DayContext, loop: Loop) -> list[GuardrailVerdict]:
    """The loop's guardrails on every unit its version exposed whose window has closed by the end of the day."""
    guardrails = loop.spec.guardrails
    if not guardrails:
        return []
    units = loop.units(ctx)
    layer, as_of = ctx.metric_layer, datetime.datetime.combine(ctx.day + datetime.timedelta(days=1), datetime.time(),
                                                               tzinfo=datetime.UTC)
    arms = {}
    for guardrail in guardrails:
        metric = layer.metric(guardrail.metric).with_window(guardrail.window_days)
        ready = mature_units(units, metric, as_of)
        values = unit_values(ready, ctx.evidence_events(), metric, layer) if ready.height else None
        arms[guardrail.metric] = tuple(
            metric_stats(values.filter(pl.col("arm") == arm), metric) if values is not None else np.zeros(0)
            for arm in ("control", "treatment"))
    return evaluate_all(guardrails, arms)  # type: ignore[arg-type]


def _cap(ctx: DayContext, runs: list[LoopRun], loops: Sequence[Loop]) -> None:
    """Apply the frequency and budget caps to the actuated runs, in loop order (pure ``loops.caps``)."""
    if not any(r.actuated and (r.outcome.messages or loop.spec.budget) for r, loop in zip(runs, loops, strict=True)):
        return
    counts = recent_counts(ctx.paths, since=ctx.day - datetime.timedelta(days=6), until=ctx.day - datetime.timedelta(
        days=1))
    for run, loop in zip(runs, loops, strict=True):
        if not run.actuated:
            continue
        capped = apply_caps(run.outcome.decisions, run.outcome.messages, loop=loop.spec.name, messages_last_week=counts,
                            per_person_per_week=ctx.settings.messages_per_person_per_week, budget=loop.spec.budget)
        run.outcome.decisions, run.outcome.messages, counts = capped.decisions, capped.messages, capped.counts
        if capped.bindings:
            run.outcome.evidence["caps"] = capped.bindings


def _holm(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each experiment's metrics with ``rel_p_value_adjusted`` (Holm) in their record."""
    out = [dict(r) for r in results]
    for experiment in {r["experiment"] for r in out}:
        mine = [r for r in out if r["experiment"] == experiment]
        records = [json.loads(r["record"]) for r in mine]
        raw = [rec["rel_p_value"] if rec.get("rel_p_value") is not None else rec.get("abs_p_value") for rec in records]
        known = [i for i, p in enumerate(raw) if p is not None]
        adjusted = adjust_p_values(np.asarray([raw[i] for i in known], dtype=float), method="holm")
        for i, p in zip(known, adjusted, strict=True):
            records[i]["rel_p_value_adjusted"] = float(p)
            records[i]["p_value_adjustment"] = f"holm over {len(known)} metric(s)"
        for row, rec in zip(mine, records, strict=True):
            row["record"] = json.dumps(rec, default=float)
    return out


@dataclass
class StagedDay:
    """What one decision run would publish (nothing written yet)."""

    doc: dict
    decisions: dict[str, pa.Table]  # loop -> its DECISIONS rows of the day
    records: list[audit.AuditRecord]
    messages: list[OutboxMessage]  # of the actuated loops
    consented: set
    run_rows: list[dict[str, Any]]
    result_rows: list[dict[str, Any]]


def audit_decisions(staged: StagedDay) -> list[CheckOutcome]:
    """Per loop, the check ``audited_<loop>``: its staged decisions pass the GX suite ``loop_decisions``
    (ids present and unique, an action, a propensity in [0, 1]) and each has its audit record.

    Every loop's decisions are validated in one batch; only when it fails is each loop named by a
    failing row validated alone (``lake.ingest.audit.audit_hours``, keyed by loop)."""
    logged = {r.decision_id for r in staged.records if r.kind == "action"}
    tables = [t for t in staged.decisions.values() if t.num_rows]
    batch = audit_hours(gx_auditor, "loop_decisions", pa.concat_tables(tables), column="loop",
                        parameters_for=lambda _loops: {}) if tables else None
    checks = []
    for loop, table in staged.decisions.items():
        missing = sorted(set(table["decision_id"].to_pylist()) - logged)
        failed = batch.failing.get(loop) if batch is not None else None
        why = f"{table.num_rows} decisions, {len(missing)} without an audit record"
        checks.append(CheckOutcome(f"audited_{loop}", failed is None and not missing,
                                   why if failed is None else f"{why}; {failed.summary()}",
                                   {"decisions": table.num_rows, "unaudited": len(missing)}))
    return checks


def _stage(ctx: DayContext, runs: list[LoopRun], doc: dict) -> StagedDay:
    day, now = ctx.day, ctx.now
    records: list[audit.AuditRecord] = []
    run_rows, result_rows = [], []
    decisions: dict[str, pa.Table] = {}
    messages: list[OutboxMessage] = []
    consented = set(ctx.features("user_marketing").filter(pl.col("emails_opened_28d").is_not_null())["person_id"]) \
        if ctx.gate("user_marketing")[0] else set()
    for run in runs:
        out, loop = run.outcome, run.loop
        verdict = ("rollback" if any(g.rollback for g in out.guardrails) else
                   "pass" if out.guardrails and all(g.verdict == "pass" for g in out.guardrails) else
                   "insufficient_evidence" if out.guardrails else "n/a")
        snapshot = out.evidence.get("snapshot", "n/a") or "n/a"
        actuated = run.actuated
        rows = [{
            "decision_id": audit.decision_id(loop, day, "action", d.get("person_id") or d["action"]),
            "day": day, "loop": loop, "policy_version": run.policy_version, "person_id": d.get("person_id"),
            "action": d["action"], "propensity": d.get("propensity"), "actuated": actuated and d.get("actuated", True),
            "mode": "canary" if run.status == "canary" else "full", "decided_at": now,
        } for d in out.decisions]
        decisions[loop] = pa.Table.from_pylist(rows, schema=DECISIONS)
        caps = {d.get("person_id") or d["action"]: d["cap"] for d in out.decisions if d.get("cap")}
        for r in rows:
            extra = {"cap": caps[r["person_id"] or r["action"]]} if (r["person_id"] or r["action"]) in caps else {}
            records.append(audit.AuditRecord(
                decision_id=r["decision_id"], decision_day=day, loop=loop, kind="action",
                policy_version=run.policy_version, person_id=r["person_id"], action=r["action"],
                propensity=r["propensity"], feature_snapshot=snapshot, guardrail_verdict=verdict,
                approval_state=run.approval_state, actor=f"loop:{loop}", decided_at=now,
                evidence=json.dumps({"actuated": r["actuated"], "mode": r["mode"], **extra})))
        for binding in out.evidence.get("caps", []):
            records.append(audit.AuditRecord(
                decision_id=audit.decision_id(loop, day, "cap", binding["cap"]), decision_day=day, loop=loop,
                kind="cap", policy_version=run.policy_version, feature_snapshot=snapshot, guardrail_verdict=verdict,
                approval_state=run.approval_state, actor=f"loop:{loop}", decided_at=now,
                evidence=json.dumps(binding, default=str)))
        if run.status in ("skipped", "stopped", "rolled_back", "awaiting_approval", "rejected"):
            kind = "rollback" if run.status == "rolled_back" and out.guardrails else "skipped"
            records.append(audit.AuditRecord(
                decision_id=audit.decision_id(loop, day, kind, run.policy_version), decision_day=day, loop=loop,
                kind=kind, policy_version=run.policy_version, feature_snapshot=snapshot, guardrail_verdict=verdict,
                approval_state=run.approval_state, actor=f"loop:{loop}", decided_at=now,
                evidence=json.dumps({"status": run.status, "note": run.note,
                                     "guardrails": [json.loads(g.evidence()) for g in out.guardrails],
                                     **{k: v for k, v in out.evidence.items() if k != "snapshot"}}, default=str)))
        if "promotion" in out.evidence:
            records.append(audit.AuditRecord(
                decision_id=audit.decision_id(loop, day, "promotion", run.policy_version), decision_day=day,
                loop=loop, kind="promotion", policy_version=run.policy_version, feature_snapshot=snapshot,
                guardrail_verdict=verdict, approval_state=run.approval_state, actor=f"loop:{loop}", decided_at=now,
                evidence=json.dumps({"promotion": out.evidence["promotion"], "ope": out.evidence.get("ope")},
                                    default=str)))
        if actuated and out.messages:
            messages.extend(out.messages)
        result_rows += [{"day": day, "loop": loop, **r} for r in _holm(out.results)]
        flag_entry = doc["features"].get(out.flag.key) if out.flag is not None else None
        run_rows.append({
            "loop": loop, "day": day, "policy_version": run.policy_version, "status": run.status,
            "approval_state": run.approval_state,
            "guardrails": json.dumps([json.loads(g.evidence()) for g in out.guardrails]),
            "decisions": len(rows), "messages": len(out.messages) if actuated else 0,
            "flag": json.dumps(flag_entry, sort_keys=True) if flag_entry is not None else None,
            "note": run.note, "decided_at": now,
        })
    return StagedDay(doc, decisions, records, messages, consented, run_rows, result_rows)


def _publish(ctx: DayContext, staged: StagedDay) -> None:
    """Publish an audited day: the features document, then decisions, outbox, audit log, runs, results."""
    paths, day, now = ctx.paths, ctx.day, ctx.now
    publish_features_document(staged.doc, features_document_path(paths))
    publish_features_document(staged.doc, features_document_path(paths, f"features-{day.isoformat()}"))  # history
    for loop, table in staged.decisions.items():
        delta_io.replace_where(paths.loop_decisions(loop), table, f"day = '{day.isoformat()}'", partition_by=["day"],
                               operation="loop-decisions",
                               metadata={"loop": loop, "day": day.isoformat(), "rows": table.num_rows})
    if staged.messages:
        enqueue(paths, staged.messages, consented=staged.consented, now=now)
    audit.record(paths, staged.records)
    run_rows, result_rows = staged.run_rows, staged.result_rows
    runs_uri = paths.table("decisions", "loop_runs")
    delta_io.replace_where(runs_uri, pa.Table.from_pylist(run_rows, schema=LOOP_RUNS), f"day = '{day.isoformat()}'",
                           partition_by=["day"], operation="loop-runs", metadata={"day": day.isoformat()})
    delta_io.replace_where(paths.table("experiments", "results"),
                           pa.Table.from_pylist(result_rows, schema=EXPERIMENT_RESULTS), f"day = '{day.isoformat()}'",
                           partition_by=["day"], operation="experiment-results", metadata={"day": day.isoformat()})

