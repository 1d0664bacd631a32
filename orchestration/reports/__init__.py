"""The board report as a Dagster asset, rebuilt nightly after the loops decide, and its check."""

from orchestration.reports.assets import REPORT_KEY, board_report, nightly_report_job, nightly_report_schedule
from orchestration.reports.checks import board_reconciles_with_marts

__all__ = ["REPORT_KEY", "board_reconciles_with_marts", "board_report", "nightly_report_job",
           "nightly_report_schedule"]
