"""The board's four questions, answered from the report's data (pure functions, no I/O).

Each answer is a verdict and the facts behind it, in plain text (the renderer escapes it). A
question the data cannot answer yet is answered "unknown" (shown as "Not enough data"), saying what
is missing. The assumptions the savings estimate rests on are named constants, printed next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from growth_loops.report import formatting as fmt
from growth_loops.report.data import ReportData

__all__ = [
    "ASSUMED_MINUTES_PER_DECISION",
    "ASSUMED_MINUTES_PER_ROLLBACK",
    "BOARD_QUESTIONS",
    "Answer",
    "Verdict",
    "answer_board_questions",
    "answer_contracts",
    "answer_oec",
    "answer_oversight",
    "answer_savings",
]

#: ASSUMPTION, not a measurement: analyst minutes one automated decision replaces — looking up a
#: person's features, choosing the variant or message, and logging why. Used only for the
#: "what did automation save" answer, where it is printed next to the figure it produced.
ASSUMED_MINUTES_PER_DECISION = 2.0
#: ASSUMPTION, not a measurement: analyst minutes one automatic rollback replaces — spotting the
#: guardrail breach in a dashboard, confirming it, and reverting the flag by hand.
ASSUMED_MINUTES_PER_ROLLBACK = 30.0

#: The playbook's four questions, answered from the data in the first section.
BOARD_QUESTIONS: tuple[str, ...] = (
    "Did a single OEC improve because of automated decisions?",
    "Are data contracts and observability in place?",
    "Are loops instrumented with rollback and human oversight?",
    "What did automation save versus manual intervention?",
)

Verdict = Literal["yes", "no", "partly", "unknown", "estimate"]


@dataclass(frozen=True)
class Answer:
    """A board question's verdict, the facts behind it, and the assumption it rests on (if any)."""

    verdict: Verdict
    text: str
    assumption: str = ""


def answer_board_questions(d: ReportData) -> tuple[Answer, ...]:
    """The answers to :data:`BOARD_QUESTIONS`, in order."""
    return answer_oec(d), answer_contracts(d), answer_oversight(d), answer_savings(d)


def answer_oec(d: ReportData) -> Answer:
    """Did a single OEC improve because of automated decisions? (the global holdout against the rest)"""
    facts: list[str] = []
    if d.oec is not None:
        oec = pl.col("revenue_per_active_user")
        valued = d.oec.filter(oec.is_not_null() & oec.is_not_nan())
        if valued.height >= 2:
            first, last = valued.row(0, named=True), valued.row(-1, named=True)
            facts.append(f"The OEC (revenue per active user) went from {fmt.money(first['revenue_per_active_user'])} "
                         f"on {fmt.text(first['date_day'])} to {fmt.money(last['revenue_per_active_user'])} on "
                         f"{fmt.text(last['date_day'])}; a trend alone does not say why.")
        else:
            facts.append(f"The warehouse holds {fmt.plural(valued.height, 'day')} with an OEC value: too few for a "
                         "trend.")
    lifts = d.relative_lifts
    if lifts:
        up = sum(1 for r in lifts if r["rel_ci_low"] > 0)
        down = sum(1 for r in lifts if r["rel_ci_high"] < 0)
        facts.append(f"Of the loops' {fmt.plural(len(lifts), 'latest experiment result')}, {up:,} show a lift whose "
                     f"95% interval is above 0 and {down:,} one below 0.")
    h = d.holdout
    if h is None or (h.revenue is None and d.oec is None and not lifts):
        missing = "no loop has run" if h is None else h.note
        facts.append(f"No change can be attributed to the loops yet: {missing}.")
        return Answer("unknown", " ".join(facts))
    where = "as published in the flags document" if h.from_document else "the default setting"
    if h.revenue is None:
        facts.append(f"The global holdout ({fmt.pct(h.share, 0)}, {where}) cannot be compared yet: {h.note}.")
        return Answer("unknown", " ".join(facts))
    if h.exposed == 0 and d.outbox.get("sent", 0) == 0:
        facts.append("The loops' decisions have not reached anyone yet: the product logged no exposure to a "
                     "loop's experiment and no message was sent, so a difference between the global holdout and "
                     "everyone else would be chance, not the loops' doing.")
        return Answer("unknown", " ".join(facts))
    r, a = h.revenue, h.active_days
    assert a is not None  # computed together with the revenue
    facts.append(f"Against the global holdout ({fmt.pct(h.share, 0)} of people, {where}; {h.n_holdout:,} held out vs "
                 f"{h.n_loops:,} reachable by the loops), revenue per person differs by {fmt.money(r.estimate)} "
                 f"(95% interval {fmt.interval(r.ci_low, r.ci_high, fmt.money)}) and active days per person by "
                 f"{fmt.num(a.estimate)} ({fmt.interval(a.ci_low, a.ci_high)}).")
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
    return Answer(verdict, " ".join(facts))


def answer_contracts(d: ReportData) -> Answer:
    """Are data contracts and observability in place? (the plan, the ledger, feature gates, dbt tests)"""
    t = d.trust
    plan = (f"The tracking plan {t.plan_version} defines {fmt.plural(t.plan_events, 'event')} and is enforced at "
            "ingestion" if t.plan_version else t.plan_note)
    if t.ledger.is_empty():
        return Answer("unknown", f"{plan}, but nothing has been ingested yet to show it working.")
    partitions = t.ledger.height
    failed = int((t.ledger["gate_status"] != "passed").sum())
    unreconciled = int((~t.ledger["reconciled"]).sum())
    landed = int(t.ledger["lines_landed"].sum())
    quarantined = int(t.ledger["quarantined"].sum())
    facts = [(f"{plan}: {fmt.plural(landed, 'landed line')} in {fmt.plural(partitions, 'hourly partition')}, "
              f"{quarantined:,} quarantined with their reason; {fmt.plural(partitions, 'ingestion gate')} evaluated, "
              f"{failed:,} failed; {partitions - unreconciled:,} of {partitions:,} partitions reconcile "
              "(every landed line in bronze, quarantine or a counted drop).")]
    log = t.materializations
    if not log.is_empty():
        facts.append(f"Feature views: {fmt.plural(log.height, 'materialization')} gated by Great Expectations and "
                     f"drift, {int((log['status'] == 'held').sum()):,} held.")
    if t.dbt_tests is not None:
        facts.append(f"Warehouse: {t.dbt_tests['pass']:,} dbt tests passed, {t.dbt_tests['fail']:,} failed.")
    if t.days:
        untrusted = [v.day for v in t.days if not v.trusted]
        failing = int((~t.gates["passed"]).sum()) if not t.gates.is_empty() else 0
        facts.append(f"Data trust: {len(t.days) - len(untrusted)} of {fmt.plural(len(t.days), 'day')} trusted "
                     f"({fmt.plural(t.gates.height, 'gate verdict')} recorded, {failing:,} failing on their latest "
                     "evaluation); the loops do not act on untrusted days"
                     + (f" (untrusted: {', '.join(d.isoformat() for d in untrusted[-5:])})." if untrusted else "."))
    if unreconciled:
        facts.append("Not every partition reconciles: see the data trust dashboard.")
    return Answer("partly" if unreconciled or t.plan_version is None else "yes", " ".join(facts))


def answer_oversight(d: ReportData) -> Answer:
    """Are loops instrumented with rollback and human oversight? (guardrails, approvals, audit coverage)"""
    if d.runs.is_empty():
        return Answer("unknown", "No loop has run yet: there is nothing to audit or roll back.")
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
        (f"{fmt.plural(len(loops), 'loop')} ran, each falling back to its control when rolled back; {len(guarded)} "
         f"of them ({', '.join(guarded) or 'none'}) {evaluates} automatically{lacking}; "
         f"{len(evaluated & set(guarded))} of those evaluated it so far; {fmt.plural(rollbacks, 'rollback')} "
         "performed."),
        (f"Approvals: {states.get('approved', 0):,} versions approved ({by_people:,} by a person, the others "
         f"automatically after stable canary days of powered, passing guardrails), "
         f"{states.get('canary', 0):,} still canaries, {states.get('pending', 0):,} pending, "
         f"{states.get('rejected', 0):,} rejected, {states.get('rolled_back', 0):,} rolled back."),
        (f"{fmt.pct(share)} of {fmt.plural(d.decisions_total, 'decision')} are in the audit log with their inputs, "
         "policy version and propensity." if share is not None else "No person-level decision taken yet."),
    ]
    complete = (share is None or share == 1.0) and set(loops) <= reviewed_loops and not unguarded
    return Answer("yes" if complete else "partly", " ".join(facts))


def answer_savings(d: ReportData) -> Answer:
    """What did automation save versus manual intervention? (an estimate at the assumed rates)"""
    kinds = d.audit_kinds
    automated = int(((kinds["kind"] == "action") & kinds["actor"].str.starts_with("loop:")).sum()) \
        if not kinds.is_empty() else 0
    rollbacks = d.rollbacks.height
    assumption = (f"Assumption, not a measurement: one automated decision replaces {ASSUMED_MINUTES_PER_DECISION:g} "
                  f"analyst minutes and one automatic rollback {ASSUMED_MINUTES_PER_ROLLBACK:g} "
                  "(ASSUMED_MINUTES_PER_DECISION, ASSUMED_MINUTES_PER_ROLLBACK in growth_loops/report/answers.py).")
    if automated == 0 and rollbacks == 0:
        return Answer("unknown", "The loops have taken no automated decision yet.", assumption)
    # Pending and canary versions are not settled yet (a canary's last event is the loop's own start).
    decided = d.approvals.filter(~pl.col("state").is_in(["pending", "canary"])) if not d.approvals.is_empty() \
        else d.approvals
    settled_by_loops = int(decided["actor"].str.starts_with("auto:").sum()) if not decided.is_empty() else 0
    manual = decided.height - settled_by_loops
    sent, pending = d.outbox.get("sent", 0), d.outbox.get("pending", 0)
    minutes = automated * ASSUMED_MINUTES_PER_DECISION + rollbacks * ASSUMED_MINUTES_PER_ROLLBACK
    text = (f"The loops took {fmt.plural(automated, 'decision')} automatically, rolled back "
            f"{fmt.plural(rollbacks, 'time')} without a person and settled "
            f"{fmt.plural(settled_by_loops, 'approval request')} themselves (stable canary days or a guardrail "
            f"breach); people intervened {fmt.plural(manual, 'time')} (approving or rejecting a version). "
            f"Messages: {sent:,} sent, {pending:,} queued. At the assumed rates that is about "
            f"{minutes / 60:,.1f} analyst hours saved ({minutes:,.0f} minutes).")
    return Answer("estimate", text, assumption)
