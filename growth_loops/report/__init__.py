"""The report: one self-contained HTML file a board member opens without anything else running.

``build_report(paths)`` reads the lake (warehouse marts, experiment results, loop runs, the audit
log, approvals, the ingestion ledger, feature materializations, the quarantine, the message
outbox) and writes ``$GROWTHLAKE_ROOT/reports/report.html``: OEC trends, each loop's lift with
its interval, guardrail events and rollbacks, the data trust dashboard, quarantine reasons, and the
four board questions answered from the data. Plots are matplotlib PNGs embedded in the file.
"""

from growth_loops.report.build import (
    ASSUMED_MINUTES_PER_DECISION,
    ASSUMED_MINUTES_PER_ROLLBACK,
    BOARD_QUESTIONS,
    MIN_HOLDOUT_GROUP,
    SECTIONS,
    build_report,
    default_report_path,
)

__all__ = [
    "ASSUMED_MINUTES_PER_DECISION",
    "ASSUMED_MINUTES_PER_ROLLBACK",
    "BOARD_QUESTIONS",
    "MIN_HOLDOUT_GROUP",
    "SECTIONS",
    "build_report",
    "default_report_path",
]
