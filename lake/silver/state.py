"""The silver build state: which bronze version the silver tables reflect — the commit marker.

A build commits to identity_map, events and sessions in turn (Delta commits are atomic per
table, never across tables), then overwrites the one-row ``silver/_build_state`` table with the
bronze version it consumed and the version each silver table reached. That last commit is the
build's commit point:

* a crash before it leaves the state pointing at the previous build; the next build first rolls
  every silver table back to the version the state records (Delta ``RESTORE``), then redoes the
  work from the same bronze version — so nothing is applied twice or lost;
* a crash after it leaves a finished build.

The silver tables are written only by this builder (under the ``silver`` writer lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

from lake.delta_io import version
from lake.paths import LakePaths
from lake.schemas import SILVER_BUILD_STATE
from lake.silver.tables import Tables

__all__ = ["BuildState", "silver_table_uris", "recorded_versions", "record_own_commits", "read_state", "write_state",
           "table_versions", "roll_back_unfinished"]

BuildMode = Literal["incremental", "rebuild"]


@dataclass(frozen=True)
class BuildState:
    """The last finished silver build."""

    bronze_version: int
    identity_version: int | None
    events_version: int | None
    sessions_version: int | None
    mode: str
    built_at: datetime


def _silver_tables(paths: LakePaths) -> dict[str, str]:
    return {"identity_version": paths.silver_identity_map, "events_version": paths.silver_events,
            "sessions_version": paths.silver_sessions}


def silver_table_uris(paths: LakePaths) -> list[str]:
    """The tables whose versions the build state records (identity_map, events, sessions)."""
    return list(_silver_tables(paths).values())


def read_state(paths: LakePaths, tables: Tables | None = None) -> BuildState | None:
    """The state the last finished build recorded, or None before the first one."""
    rows = (tables or Tables()).read(paths.silver_build_state, SILVER_BUILD_STATE).to_dicts()
    if not rows:
        return None
    return BuildState(**rows[0])


def table_versions(paths: LakePaths, tables: Tables) -> dict[str, int | None]:
    """Current Delta version of each silver table (None: not created yet)."""
    return {name: tables.version(uri) for name, uri in _silver_tables(paths).items()}


def recorded_versions(state: BuildState) -> dict[str, int | None]:
    """The silver table versions ``state`` recorded, keyed like :func:`table_versions`."""
    return {"identity_version": state.identity_version, "events_version": state.events_version,
            "sessions_version": state.sessions_version}


def write_state(paths: LakePaths, tables: Tables, *, bronze_version: int, mode: BuildMode) -> BuildState:
    """Record a finished build: ``bronze_version`` and the silver tables' current versions."""
    state = BuildState(bronze_version=bronze_version, **table_versions(paths, tables), mode=mode,
                       built_at=datetime.now(UTC))
    row = pa.Table.from_pylist([state.__dict__], schema=SILVER_BUILD_STATE)
    tables.overwrite(paths.silver_build_state, row, partition_by=None, operation="silver_state",
                     metadata={"bronze_version": bronze_version, "mode": mode})
    return state


def record_own_commits(paths: LakePaths, state: BuildState, *, bronze_before: int | None) -> None:
    """After a writer other than the build committed to silver or bronze without changing what silver
    means (erasure, table maintenance — under the silver and bronze locks): record the silver tables'
    current versions, so the next build neither rolls those commits back nor re-audits them, and
    bronze's current version when silver had consumed all of bronze before them (``bronze_before``),
    since their files add no row. Writes nothing when nothing moved."""
    tables = Tables()
    bronze_now = version(paths.bronze_events)
    consumed = bronze_now if state.bronze_version == bronze_before and bronze_now is not None else state.bronze_version
    if consumed == state.bronze_version and table_versions(paths, tables) == recorded_versions(state):
        return
    write_state(paths, tables, bronze_version=consumed, mode=state.mode)  # type: ignore[arg-type]


def roll_back_unfinished(paths: LakePaths, tables: Tables, state: BuildState | None) -> list[str]:
    """Undo the commits of a build that did not finish (crash between commits).

    Returns:
        The silver tables that had to be rolled back (empty after a clean build).
    """
    recorded = state.__dict__ if state is not None else {}
    return [uri for name, uri in _silver_tables(paths).items() if tables.roll_back(uri, recorded.get(name))]


def unaudited_tables(paths: LakePaths, tables: Tables | None = None) -> list[str]:
    """Silver tables changed since the last finished build recorded them (a foreign write, a
    crashed build): their content has not passed the silver gates. Empty before any build."""
    tables = tables or Tables()
    state = read_state(paths, tables)
    if state is None:
        return []
    current = table_versions(paths, tables)
    return sorted(_silver_tables(paths)[name] for name, version in current.items() if version != getattr(state, name))
