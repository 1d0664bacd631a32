"""The SQLite event log of a local Dagster instance, without Dagster's per-event set-up cost.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every connection and
disposes of it after one statement batch. So every event it stores — a ranged hourly run writes
one materialization, one planned materialization and one evaluation per check *per hour* — pays
for a new engine, for compiling its INSERTs from scratch (SQLAlchemy's compiled-statement cache
lives on the engine and dies with it) and for an fsync per commit. Profiled on the demo's week
(BENCHMARKS.md), that was ~11 ms an event and 38 of 47 s of the hourly job.

:class:`PooledSqliteEventLogStorage` is the same storage — same files, same schema, same
alembic revisions, readable by a plain ``SqliteEventLogStorage`` and back — with three changes:

* one engine per shard, kept (so compiled statements are reused), each keeping one open
  connection between events (no connect, and no checkpoint on close, per event; an idle WAL
  connection holds no lock, so the webserver, the daemon and run workers still share the files);
  the engines of the 8 most recent run shards are kept;
* ``PRAGMA synchronous=NORMAL`` on every connection: the shards are in WAL mode (Dagster sets
  it), where NORMAL never corrupts the database; a power cut may lose the last events written;
* after a write to a run's shard, ``<run_id>.db``'s time stamp is touched: the webserver streams
  a running run's logs by watching that file, which Dagster's storage modifies by checkpointing
  the write-ahead log as it closes its connection after every write (a test keeps this).

:func:`ensure_instance_config` writes a ``dagster.yaml`` using it into a ``DAGSTER_HOME`` that
has none (``make dev``, ``make demo`` and the CLI's instance); a ``dagster.yaml`` already there
(e.g. PostgreSQL, DEPLOY.md) is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

__all__ = ["PooledSqliteEventLogStorage", "ensure_instance_config", "instance_config"]

INDEX_SHARD = "index"
_HEADER = "# Written by growthlake for this folder:"
_RUN_ENGINES = 8  # run shards whose engine is kept (a run writes to its own; a few run at once)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps its engines and one connection per shard.

    Configured in ``dagster.yaml`` exactly like the class it extends::

        event_log_storage:
          module: orchestration.event_log
          class: PooledSqliteEventLogStorage
          config:
            base_dir: /path/to/dagster_home/history/runs
    """

    def __init__(self, base_dir: str, inst_data: Any = None):
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str):
        import sqlalchemy as db
        from sqlalchemy.pool import QueuePool

        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = db.create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                      max_overflow=2, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _synchronous_normal)
            self._engines[shard] = engine
            runs = [s for s in self._engines if s != INDEX_SHARD]
            for old in runs[:-_RUN_ENGINES]:
                self._engines.pop(old).dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                before = raw.total_changes if raw is not None else None
                with conn.begin():
                    yield conn
                changed = raw is not None and raw.total_changes != before
            if changed and shard != INDEX_SHARD:
                # A run's logs stream to the webserver by a watch on <run_id>.db; with the connection kept
                # open the write-ahead log is not checkpointed into that file after each write, so say so.
                with contextlib.suppress(FileNotFoundError):
                    os.utime(self.path_for_shard(shard))

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # no open connection to a file it deletes
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def _synchronous_normal(dbapi_connection, _record) -> None:
    """NORMAL only in WAL mode (Dagster's): with a rollback journal it could corrupt on a power cut."""
    cursor = dbapi_connection.cursor()
    try:
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def instance_config(home: str | os.PathLike[str]) -> str:
    """The ``dagster.yaml`` of a local instance at ``home``: Dagster's default SQLite layout
    (``history/runs.db``, ``history/runs/*.db``, ``schedules/``), the event log pooled, and
    Dagster's telemetry off (growthlake runs offline; it also prints a banner into CLI output)."""
    base = Path(home).resolve()
    return (
        _HEADER + " Dagster's default SQLite layout, the event log keeping its\n"
        "# engines (orchestration/event_log.py). Replace this file to use PostgreSQL (DEPLOY.md):\n"
        "# growthlake leaves a dagster.yaml it did not write alone.\n"
        "run_storage:\n"
        "  module: dagster._core.storage.runs\n"
        "  class: SqliteRunStorage\n"
        "  config:\n"
        f"    base_dir: {base / 'history'}\n"
        "event_log_storage:\n"
        "  module: orchestration.event_log\n"
        "  class: PooledSqliteEventLogStorage\n"
        "  config:\n"
        f"    base_dir: {base / 'history' / 'runs'}\n"
        "schedule_storage:\n"
        "  module: dagster._core.storage.schedules\n"
        "  class: SqliteScheduleStorage\n"
        "  config:\n"
        f"    base_dir: {base / 'schedules'}\n"
        "# An offline package: no usage statistics (and no welcome banner in the CLI's output).\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


def ensure_instance_config(home: str | os.PathLike[str]) -> Path:
    """Create ``home`` and its ``dagster.yaml`` (:func:`instance_config`) unless one is there.

    A ``dagster.yaml`` growthlake wrote for another path (the folder was moved or copied) is
    rewritten for this one; any other ``dagster.yaml`` is left as it is.
    """
    path = Path(home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = instance_config(home)
    try:
        current: str | None = path.read_text()
    except FileNotFoundError:
        current = None
    if current == wanted or (current is not None and not current.startswith(_HEADER)):
        return path
    tmp = path.with_name(f".dagster.yaml.{os.getpid()}")
    tmp.write_text(wanted)
    if current is None:
        try:
            os.link(tmp, path)  # another process may have written it meanwhile: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    else:
        os.replace(tmp, path)
    return path


if __name__ == "__main__":  # python -m orchestration.event_log DAGSTER_HOME (the Makefile)
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m orchestration.event_log DAGSTER_HOME")
    print(ensure_instance_config(sys.argv[1]))
