"""Build the report: read the lake, build the Data Docs beside it, render it, write one HTML file.

The work is split by job: :mod:`~growth_loops.report.data` reads the lake into plain frames and
dataclasses, :mod:`~growth_loops.report.answers` answers the board's questions from them,
:mod:`~growth_loops.report.plots` draws them, and :mod:`~growth_loops.report.render` turns it all
into the self-contained HTML document this module writes.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from growth_loops.report.data import DATA_DOCS_DIR, build_data_docs, load_report_data
from growth_loops.report.render import render_report
from lake.errors import ConfigError
from lake.paths import LakePaths

__all__ = ["build_report", "default_report_path"]


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
    data = load_report_data(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    if data_docs:
        data.trust.data_docs = build_data_docs(target.parent / DATA_DOCS_DIR)
    document = render_report(data, now=now)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        staging.write_text(document, encoding="utf-8")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target
