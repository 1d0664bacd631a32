"""The board report as a Dagster asset, rebuilt nightly after the loops decide."""

from orchestration.reports.assets import REPORT_KEY, board_report, nightly_report_job, nightly_report_schedule

__all__ = ["REPORT_KEY", "board_report", "nightly_report_job", "nightly_report_schedule"]
