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
    """``$GROWTHLAKE_ROOT/reports/report.html`` — for an object-store root, the same path below
    ``$GROWTHLAKE_LOCAL_DIR`` (and :func:`build_report` uploads a copy to ``$GROWTHLAKE_ROOT/reports/``)."""
    try:
        return Path(paths.local_dir) / "reports" / "report.html"
    except ConfigError:
        raise ConfigError("report path", f"the storage root {paths.root} is an object store and "
                          "GROWTHLAKE_LOCAL_DIR is unset", "Set GROWTHLAKE_LOCAL_DIR, or pass out= a local path, "
                          "e.g. build_report(paths, out='report.html').") from None


def build_report(paths: LakePaths, out: str | os.PathLike[str] | None = None, *,
                 now: datetime.datetime | None = None, data_docs: bool = True) -> Path:
    """Write the report of the lake at ``paths`` to one self-contained HTML file.

    Args:
        paths: The lake to report on (nothing in it is written, except the report when ``out``
            is left to its default).
        out: Where to write the file (default :func:`default_report_path`:
            ``$GROWTHLAKE_ROOT/reports/report.html``). Parent folders are created. For an
            object-store root the default is a local file, uploaded with its Data Docs to
            ``$GROWTHLAKE_ROOT/reports/`` once written.
        now: The time printed as "generated at" (default: now, UTC).
        data_docs: Also build the Great Expectations Data Docs of every suite into
            ``<report folder>/data_docs/`` and link them from the data trust dashboard. A failure
            there is reported in the dashboard, never raised.

    Returns:
        The path of the written file (replaced atomically, so a reader never sees half a report).

    Raises:
        ConfigError: ``out`` is None, the storage root is an object store and
            ``GROWTHLAKE_LOCAL_DIR`` is unset.
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
    if out is None and not paths.is_local:
        _upload(target, f"{paths.root}/reports", data_docs=data_docs)
    return target


def _upload(report: Path, uri: str, *, data_docs: bool) -> None:
    """Copy the report (and its Data Docs) to the object store; each object is replaced whole."""
    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(uri)
    fs.create_dir(base, recursive=True)
    with report.open("rb") as src, fs.open_output_stream(f"{base}/{report.name}") as dst:
        dst.write(src.read())
    docs = report.parent / DATA_DOCS_DIR
    if data_docs and docs.is_dir():
        pafs.copy_files(str(docs), f"{base}/{DATA_DOCS_DIR}", destination_filesystem=fs)
