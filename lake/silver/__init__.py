"""The silver layer: bronze events cleaned, typed, stitched to people and cut into sessions.

Three Delta tables below ``$GROWTHLAKE_ROOT/delta/silver/``:

* ``identity_map`` — one row per linked device (anonymous_id -> user_id, earliest link wins);
* ``events`` — every bronze event once, with ``person_id`` and typed columns (by event_date);
* ``sessions`` — 30-minute-inactivity sessions per person (by session_date).

``build_silver`` keeps them up to date incrementally and exactly once; ``rebuild_silver``
derives them from all of bronze. The frame functions are public for tests and notebooks.
"""

from lake.silver.audit import SILVER_CHECKS, SilverGate
from lake.silver.build import SILVER_LOCK, SilverResult, build_silver, rebuild_silver
from lake.silver.changes import BronzeChanges, bronze_changes
from lake.silver.sessions import SESSION_GAP, session_id, sessionize
from lake.silver.state import BuildState, read_state, unaudited_tables
from lake.silver.transform import (
                                   ANON_PREFIX,
                                   IdentityUpdate,
                                   link_candidates,
                                   resolve_person,
                                   silver_events,
                                   update_identities,
)

__all__ = [
    "ANON_PREFIX",
    "BronzeChanges",
    "BuildState",
    "IdentityUpdate",
    "SESSION_GAP",
    "SILVER_CHECKS",
    "SILVER_LOCK",
    "SilverGate",
    "SilverResult",
    "bronze_changes",
    "build_silver",
    "link_candidates",
    "read_state",
    "rebuild_silver",
    "resolve_person",
    "session_id",
    "sessionize",
    "silver_events",
    "unaudited_tables",
    "update_identities",
]
