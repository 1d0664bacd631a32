"""The analyst warehouse: build it with dbt, then swap it in without disturbing readers.

Analysts open ``$GROWTHLAKE_ROOT/warehouse.duckdb`` and query ``marts.*`` with nothing else
running (for an object-store root, ``s3://…``, the silver tables dbt reads stay in the bucket and
the warehouse is the local file ``$GROWTHLAKE_LOCAL_DIR/warehouse.duckdb``: ``paths.warehouse``)::

    duckdb -readonly $GROWTHLAKE_ROOT/warehouse.duckdb
    >>> duckdb.connect(path, read_only=True)

DuckDB allows one read-write process *or* any number of read-only ones per file, and an open
session holds its lock for as long as it lives, so dbt cannot build in place while an analyst
is connected. :func:`build_warehouse` therefore builds a private copy and swaps it in:

1. copy the current ``warehouse.duckdb`` (or start empty) to ``warehouse.duckdb.building-<id>``
   in the same folder — incremental models continue from the last good build;
2. run ``dbt build`` against the copy (``GROWTHLAKE_WAREHOUSE_PATH`` points dbt at it);
3. if every model and test passed, checkpoint the copy and audit it — the Great Expectations
   suite ``fct_daily_oec`` on the copy (:func:`oec_audit`), before any reader can see it;
4. if the audit passed, ``os.replace`` the copy onto ``warehouse.duckdb`` (an atomic rename);
   otherwise delete the copy, leave the old file untouched and raise
   :class:`~lake.errors.WarehouseBuildFailed` naming the failing nodes or checks
   (:class:`~lake.errors.WarehouseAuditFailed` for a failed audit).

Steps 3–4 are write-audit-publish through :func:`lake.wap.publish_if_audited`; the verdict of
every audit, published or not, is recorded beside the warehouse (:func:`read_warehouse_verdict`),
where the Dagster check ``gx_fct_daily_oec`` reads it instead of validating again.

A session opened before a swap keeps reading the file it opened (the old inode, whose disk
space is freed when the last such session closes) until it reconnects; new connections see the
new build. Builds of one storage root are serialized by a writer lock.

Steps 1, 3 and 4 are :func:`staged_warehouse`, a context manager for runners that invoke dbt
themselves (dagster-dbt's ``DbtCliResource``, which cannot set a per-call environment, passes the
copy's path as ``--vars '{"warehouse_path": ...}'``; ``profiles.yml`` reads that var first).

dbt runs in a subprocess (``python -m dbt.cli.main``), not in-process through ``dbtRunner``:
the build needs its own ``GROWTHLAKE_WAREHOUSE_PATH`` (``dbtRunner`` reads the process-wide
environment, shared with whatever else runs in a Dagster process); dbt's global state is not
safe for concurrent invocations in one process; and the swap requires the DuckDB file to be
closed and checkpointed — dbt-duckdb keeps its connection open and DuckDB caches database
instances per process, so only a finished process guarantees the file is released. A
subprocess can also be timed out and killed. The price is ~2-3 s of interpreter and dbt import
per build; it is also how dagster-dbt's ``DbtCliResource`` runs dbt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from lake import delta_io, wap
from lake.dbt_manifest import DBT_PROJECT_DIR, LAKE_ROOT_VAR, WAREHOUSE_PATH_VAR, build_target_dir, dbt_env
from lake.durable import fsync_dir
from lake.errors import ConfigError, WarehouseAuditFailed, WarehouseBuildFailed, WarehouseBusy
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.trust import write_daily_trust

__all__ = ["DBT_PROJECT_DIR", "LAKE_ROOT_VAR", "OEC_CHECK", "SILVER_TABLES", "WAREHOUSE_PATH_VAR", "WarehouseAudit",
           "WarehouseBuild", "build_warehouse", "dbt_build_args", "dbt_env", "how_to_connect", "oec_audit",
           "read_warehouse_verdict", "staged_warehouse"]

OEC_CHECK = "gx_fct_daily_oec"
"""The check :func:`oec_audit` reports (the name of the Dagster asset check on ``marts.fct_daily_oec``)."""

WarehouseAudit = Callable[[Path], list[wap.CheckOutcome]]
"""Checks on a built, checkpointed (closed) private copy of the warehouse, before it is swapped in."""

SILVER_TABLES = ("events", "sessions", "identity_map")  # the dbt sources (models/staging/silver)

_FAILED = {"error", "fail", "runtime error"}
_TEST_PREFIXES = ("test.", "unit_test.")


@dataclass(frozen=True)
class WarehouseBuild:
    """What one successful :func:`build_warehouse` did."""

    path: str  # the warehouse file analysts open
    build_id: str
    nodes_built: tuple[str, ...]  # models (re)built, e.g. "marts.fct_daily_oec"
    tests_passed: int  # data tests and unit tests
    tests_warned: int
    tests_failed: int  # always 0 for a build that was swapped in
    elapsed_s: float  # copy + dbt + checkpoint + audit + swap
    dbt_elapsed_s: float
    full_refresh: bool
    select: str | None
    run_results: str  # dbt's run_results.json of this build
    checks: tuple[wap.CheckOutcome, ...] = ()  # the audit of the copy before it was swapped in


def dbt_build_args(*, select: str | None, full_refresh: bool, vars: Mapping[str, Any] | None) -> list[str]:
    """The ``dbt`` command-line arguments of a warehouse build (what follows ``dbt``).

    Project, profiles and target folders are not included: the caller (``build_warehouse`` or
    dagster-dbt's ``DbtCliResource``) adds them.

    Args:
        select: a dbt selection (``"marts.growth"``, ``"+fct_daily_oec"``), or None for every
            node. A bare model name rebuilds that model only, reading its parents as last built;
            prefix ``+`` to rebuild its parents too, down to the staging models, which copy the
            current silver tables into the warehouse.
        full_refresh: rebuild incremental models from scratch (after erasures, silver backfills
            older than ``incremental_lookback_days``, or a change of their SQL).
        vars: dbt vars overriding ``dbt_project.yml`` (e.g. ``{"reporting_currency": "EUR"}``).

    Returns:
        e.g. ``["build", "--select", "marts.growth", "--full-refresh", "--vars", '{"a": 1}']``.

    Raises:
        ConfigError: ``vars`` is not JSON-serializable.
    """
    args = ["build"]
    if select is not None and select.strip():
        args += ["--select", select.strip()]
    if full_refresh:
        args.append("--full-refresh")
    if vars:
        try:
            args += ["--vars", json.dumps(dict(vars), sort_keys=True)]
        except TypeError as exc:
            raise ConfigError("dbt vars", f"cannot be passed to dbt ({exc})",
                              "Use strings, numbers, booleans, lists and mappings only.") from None
    return args


def how_to_connect(paths: LakePaths | None = None) -> str:
    """How analysts open the warehouse (the text the CLI and Dagster show)."""
    path = (paths or LakePaths.from_root()).warehouse
    return (
        f"The analyst warehouse is {path} (DuckDB); query the marts schema (marts.fct_daily_oec, "
        "marts.dim_users, ...).\n"
        f"  CLI:    duckdb -readonly {path}\n"
        f"  Python: duckdb.connect({path!r}, read_only=True)\n"
        "Always connect read-only: a read-write session locks the file and blocks every rebuild. "
        "A rebuild swaps in a new file atomically; an open session keeps seeing the build it opened "
        "until it reconnects (in Python, close every connection to the file first: DuckDB reuses an "
        "open database per path within a process)."
    )


@contextmanager
def staged_warehouse(paths: LakePaths, *, audit: WarehouseAudit | None = None) -> Iterator[Path]:
    """Yield a private copy of the warehouse to build into; audit it and swap it in if the block succeeds.

    Holds the warehouse writer lock of ``paths`` throughout. On entry, removes copies left by a
    killed build, refuses a warehouse some process has open read-write, and copies
    ``warehouse.duckdb`` (when there is one) to ``warehouse.duckdb.building-<id>``. When the
    block exits normally the copy is checkpointed, audited (``audit``, default :func:`oec_audit`)
    and, when every check passed, atomically renamed onto ``warehouse.duckdb``; when the block
    raises or the audit fails, the copy is deleted and the old file is untouched. The audit's
    verdict is recorded either way (:func:`read_warehouse_verdict`).

    Example::

        with staged_warehouse(paths) as building:
            dbt.cli(dbt_build_args(select=None, full_refresh=False,
                                   vars={WAREHOUSE_PATH_VAR: str(building)}), context=context)

    Raises:
        WarehouseBusy: another process holds the warehouse open read-write.
        WarehouseAuditFailed: the copy failed a check of the audit (nothing was swapped in).
        WarehouseBuildFailed: the block succeeded but left no checkpointable database file.
        ConfigError: the storage root is an object store and ``GROWTHLAKE_LOCAL_DIR`` is unset.
    """
    warehouse = Path(paths.warehouse)  # ConfigError for an object-store root without GROWTHLAKE_LOCAL_DIR
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    audit = audit if audit is not None else oec_audit()
    with table_lock(paths, "warehouse"):
        _remove_stale_builds(warehouse)
        _ensure_no_writer(warehouse)
        build_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        building = warehouse.with_name(f"{warehouse.name}.building-{build_id}")
        # The OEC's trust verdict per date (a dbt source): written now, by the rule the loops apply.
        write_daily_trust(paths)
        try:
            if warehouse.exists():
                shutil.copyfile(warehouse, building)
            else:
                _create_readable_by_cli(building)
            yield building
            problem = _checkpoint(building)
            if problem:
                raise WarehouseBuildFailed([], problem, str(warehouse))
            verdict = wap.publish_if_audited(stage=lambda: building, audit=audit,
                                             publish=lambda staged: _swap(staged, warehouse))
            _record_verdict(warehouse, build_id, verdict)
            if not verdict.passed:
                raise WarehouseAuditFailed([c.name for c in verdict.failed if c.blocking], verdict.summary(),
                                           str(warehouse))
        finally:
            _remove(building)


def _swap(building: Path, warehouse: Path) -> None:
    os.replace(building, warehouse)
    fsync_dir(warehouse.parent)


def _verdict_path(warehouse: Path) -> Path:
    return warehouse.with_name(f"{warehouse.name}.audit.json")


def _record_verdict(warehouse: Path, build_id: str, verdict: wap.Verdict) -> None:
    record = {"build_id": build_id, "published": verdict.published, "passed": verdict.passed,
              "audited_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "checks": [{"name": c.name, "passed": c.passed, "summary": c.summary, "metadata": c.metadata,
                          "blocking": c.blocking} for c in verdict.checks]}
    target = _verdict_path(warehouse)
    tmp = target.with_name(f"{target.name}.{build_id}.tmp")
    tmp.write_text(json.dumps(record, default=str, indent=1))
    os.replace(tmp, target)


def read_warehouse_verdict(paths: LakePaths) -> dict[str, Any] | None:
    """The verdict of the last audit of a warehouse build: ``{build_id, published, passed, audited_at,
    checks: [{name, passed, summary, metadata, blocking}]}`` (None before the first audited build)."""
    target = _verdict_path(Path(paths.warehouse))
    if not target.exists():
        return None
    return dict(json.loads(target.read_text()))


def oec_audit(*, as_of: date | None = None, k: float = 4.0, band: tuple[float, float] | None = None) -> WarehouseAudit:
    """The audit of a warehouse copy: the GX suite ``fct_daily_oec`` on its newest complete day.

    Args:
        as_of: the day the build is judged on (default: today, UTC); the newest day before it is validated.
        k: width of the learned daily-active-users band, in robust standard deviations.
        band: a fixed (low, high) band for daily active users instead of the learned one.

    Returns:
        A :data:`WarehouseAudit` reporting the check :data:`OEC_CHECK` (passed, with a note, when
        the copy holds no ``marts.fct_daily_oec`` or no complete day yet).
    """
    def audit(building: Path) -> list[wap.CheckOutcome]:
        from expectations import validate_daily_oec

        if not _has_relation(building, "marts", "fct_daily_oec"):
            return [wap.CheckOutcome(OEC_CHECK, True, "no marts.fct_daily_oec in this build")]
        day = as_of or datetime.now(UTC).date()
        outcome, figures = validate_daily_oec(str(building), as_of=day, k=k, band=band)
        if outcome is None:
            return [wap.CheckOutcome(OEC_CHECK, True, figures.get("note"), figures)]
        # data_dates scopes the verdict to the day judged (orchestration/trust.py): a failure makes that
        # day untrusted, not every day.
        meta = {**{key: v for key, v in figures.items() if v is not None}, "data_dates": [figures["date"]]}
        return [wap.outcome_of(OEC_CHECK, outcome, metadata=meta)]

    return audit


def _has_relation(database: Path, schema: str, name: str) -> bool:
    con = duckdb.connect(str(database), read_only=True)
    try:
        found = con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                            [schema, name]).fetchone()
    finally:
        con.close()
    return bool(found and found[0])


# The warehouse is written in a storage format the DuckDB command-line tool on PyPI (duckdb-cli,
# which trails the Python package by a major version) can open, so analysts can use either.
STORAGE_COMPATIBILITY = "v1.4.0"


def _create_readable_by_cli(database: Path) -> None:
    import duckdb

    duckdb.connect(str(database), config={"storage_compatibility_version": STORAGE_COMPATIBILITY}).close()


def build_warehouse(paths: LakePaths, *, select: str | None = None, full_refresh: bool = False,
                    vars: Mapping[str, Any] | None = None, project_dir: str | os.PathLike[str] | None = None,
                    timeout_s: float | None = None, audit: WarehouseAudit | None = None) -> WarehouseBuild:
    """Run ``dbt build`` on a copy of the warehouse, audit the copy and swap it in when everything passed.

    Args:
        paths: the lake (silver tables are read from it; the warehouse lives at ``paths.warehouse``).
        select: a dbt selection, or None for the whole project (see :func:`dbt_build_args`).
        full_refresh: rebuild incremental models from scratch.
        vars: dbt vars overriding ``dbt_project.yml``.
        project_dir: the dbt project (default: ``dbt_project/`` of this repository).
        timeout_s: kill dbt and fail after this many seconds (default: no limit).
        audit: the checks on the built copy before the swap (default: :func:`oec_audit`).

    Returns:
        What was built and tested, and how long it took.

    Raises:
        WarehouseBuildFailed: a model, test or unit test failed (or dbt could not run); the
            previous warehouse file is untouched.
        WarehouseAuditFailed: the built copy failed its audit; the previous warehouse file is untouched.
        WarehouseBusy: another process holds the warehouse open read-write.
        ConfigError: the storage root is an object store and ``GROWTHLAKE_LOCAL_DIR`` is unset, or
            a silver table does not exist.
    """
    started = time.monotonic()
    _ = paths.dbt_dir  # local; ConfigError for an object-store root without GROWTHLAKE_LOCAL_DIR
    missing = [t for t in SILVER_TABLES if delta_io.open_table(paths.table("silver", t)) is None]
    if missing:
        raise ConfigError("silver tables", f"{', '.join(missing)} not found under {paths.table('silver', '')}",
                          "Materialize the silver layer before building the warehouse.")
    project = Path(project_dir) if project_dir is not None else DBT_PROJECT_DIR

    with staged_warehouse(paths, audit=audit) as building:
        target = build_target_dir(paths, "build_warehouse")  # target and logs of this build only
        run_results, log_path = target / "run_results.json", str(target / "dbt.log")
        args = [*dbt_build_args(select=select, full_refresh=full_refresh,
                                vars={LAKE_ROOT_VAR: paths.root, WAREHOUSE_PATH_VAR: str(building), **(vars or {})}),
                "--project-dir", str(project), "--profiles-dir", str(project),
                "--target-path", str(target), "--log-path", str(target)]
        dbt_started = time.monotonic()
        proc = _run_dbt(args, env=dbt_env(paths, building), cwd=project, timeout_s=timeout_s,
                        warehouse=paths.warehouse, log_path=log_path)
        dbt_elapsed = time.monotonic() - dbt_started
        summary = _summarize(_read_run_results(run_results))
        if proc.returncode != 0 or summary["failed"]:
            detail = "; ".join(summary["failed_detail"]) or _tail(proc.stdout + proc.stderr)
            raise WarehouseBuildFailed(summary["failed"], detail, paths.warehouse, log_path)
        build_id = building.name.rsplit(".building-", 1)[-1]

    return WarehouseBuild(
        path=paths.warehouse, build_id=build_id, nodes_built=tuple(summary["built"]),
        tests_passed=summary["tests_passed"], tests_warned=summary["tests_warned"], tests_failed=0,
        elapsed_s=time.monotonic() - started, dbt_elapsed_s=dbt_elapsed, full_refresh=full_refresh,
        select=select, run_results=str(run_results),
        checks=tuple(wap.CheckOutcome(**c) for c in (read_warehouse_verdict(paths) or {}).get("checks", [])),
    )


# -- helpers -----------------------------------------------------------------------------------

def _remove_stale_builds(warehouse: Path) -> None:
    """Copies left by a build that was killed (the writer lock guarantees none is running)."""
    for stale in warehouse.parent.glob(f"{warehouse.name}.building-*"):
        _remove(stale)


def _remove(path: Path) -> None:
    """A database file and what DuckDB keeps beside it (write-ahead log, spill folder)."""
    for p in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _ensure_no_writer(warehouse: Path) -> None:
    """Refuse to copy or replace a file some process writes in place (analysts must read only)."""
    if not warehouse.exists():
        return
    wal = warehouse.with_name(warehouse.name + ".wal")
    if wal.exists():
        raise WarehouseBusy(str(warehouse), f"its write-ahead log {wal.name} exists")
    try:
        duckdb.connect(str(warehouse), read_only=True).close()
    except duckdb.Error as exc:  # a read-write session holds the lock (the message names its PID)
        raise WarehouseBusy(str(warehouse), str(exc).splitlines()[0]) from None


def _run_dbt(args: list[str], *, env: dict[str, str], cwd: Path, timeout_s: float | None, warehouse: str,
             log_path: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "dbt.cli.main", *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise WarehouseBuildFailed([], f"dbt did not finish within {timeout_s:.0f}s and was killed",
                                   warehouse, log_path) from None


def _read_run_results(path: Path) -> list[dict[str, Any]]:
    """The node results of this dbt invocation ([] when dbt stopped before running nodes)."""
    try:
        return json.loads(path.read_text())["results"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return []


def _summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    built, failed, failed_detail = [], [], []
    passed = warned = 0
    for r in results:
        uid, status = r["unique_id"], str(r["status"]).lower()
        name = _node_name(uid)
        if uid.startswith(_TEST_PREFIXES):
            passed += status == "pass"
            warned += status == "warn"
        elif uid.startswith("model.") and status == "success":
            relation = r.get("relation_name") or name
            built.append(relation.replace('"', "").split(".", 1)[-1] if "." in relation else relation)
        if status in _FAILED:
            failed.append(name)
            message = " ".join(str(r.get("message") or status).split())
            failed_detail.append(f"{name} ({status}: {message[:300]})")
    return {"built": built, "failed": failed, "failed_detail": failed_detail, "tests_passed": passed,
            "tests_warned": warned}


def _node_name(unique_id: str) -> str:
    """The name dbt prints: ``test.pkg.<name>.<hash>`` -> name, ``unit_test.pkg.<model>.<name>`` -> model::name."""
    parts = unique_id.split(".")
    if parts[0] == "unit_test" and len(parts) >= 4:
        return f"{parts[2]}::{parts[3]}"
    return parts[2] if len(parts) >= 3 else unique_id


def _checkpoint(database: Path) -> str | None:
    """Fold any write-ahead log into the file (the swap moves the file alone); a problem, or None."""
    if not database.exists():
        return "dbt reported success but wrote no database file (did the selection match no model?)"
    con = duckdb.connect(str(database))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if database.with_name(database.name + ".wal").exists():
        return f"{database.name} still has a write-ahead log after CHECKPOINT"
    return None


def _tail(text: str, lines: int = 15) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "no output"
