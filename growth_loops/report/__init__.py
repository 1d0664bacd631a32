"""The report: one self-contained HTML file a board member opens without anything else running.

``build_report(paths)`` reads the lake (warehouse marts, experiment results, loop runs, the audit
log, approvals, the ingestion ledger, feature materializations, the quarantine, the message
outbox) and writes ``$GROWTHLAKE_ROOT/reports/report.html``: OEC trends, each loop's lift with
its interval, guardrail events and rollbacks, the data trust dashboard, quarantine reasons, and the
four board questions answered from the data. Plots are matplotlib PNGs embedded in the file.

Modules, one job each: ``data`` (read the lake), ``answers`` (the board's questions), ``plots``
(matplotlib figures), ``formatting`` (values as text), ``render`` (the HTML), ``figures`` (the
headline figures, embedded for reconciliation), ``build`` (orchestration: read, render, write).
"""

from growth_loops.report.answers import ASSUMED_MINUTES_PER_DECISION, ASSUMED_MINUTES_PER_ROLLBACK, BOARD_QUESTIONS
from growth_loops.report.build import build_report, default_report_path
from growth_loops.report.data import MIN_HOLDOUT_GROUP
from growth_loops.report.figures import oec_figures, read_report_figures, reconcile_figures
from growth_loops.report.render import SECTIONS

__all__ = [
    "ASSUMED_MINUTES_PER_DECISION",
    "ASSUMED_MINUTES_PER_ROLLBACK",
    "BOARD_QUESTIONS",
    "MIN_HOLDOUT_GROUP",
    "SECTIONS",
    "build_report",
    "default_report_path",
    "oec_figures",
    "read_report_figures",
    "reconcile_figures",
]
