"""The storage root and where every table lives below it (DESIGN.md contracts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LakePaths", "resolve_root", "DEFAULT_ROOT"]

DEFAULT_ROOT = "./data"


def resolve_root(root: str | os.PathLike[str] | None = None) -> str:
    """Return the storage root: the argument, else ``$GROWTHLAKE_ROOT``, else ``./data``.

    Local roots are made absolute so that a Dagster step and the CLI agree on them.
    Object-store URIs (``s3://…``) are returned unchanged.
    """
    value = os.fspath(root) if root is not None else os.environ.get("GROWTHLAKE_ROOT", DEFAULT_ROOT)
    if "://" in value:
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


@dataclass(frozen=True)
class LakePaths:
    """Every location growthlake reads or writes, derived from one storage root."""

    root: str

    @classmethod
    def from_root(cls, root: str | os.PathLike[str] | None = None) -> "LakePaths":
        return cls(resolve_root(root))

    @property
    def is_local(self) -> bool:
        return "://" not in self.root

    def _join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def landing_events(self) -> str:
        return self._join("landing", "events")

    def table(self, layer: str, name: str) -> str:
        """``$ROOT/delta/<layer>/<table>``."""
        return self._join("delta", layer, name)

    @property
    def bronze_events(self) -> str:
        return self.table("bronze", "events")

    @property
    def bronze_quarantine(self) -> str:
        return self.table("bronze", "quarantine")

    @property
    def ingestion_ledger(self) -> str:
        return self.table("bronze", "ingestion_ledger")

    @property
    def audit_holds(self) -> str:
        """Batches a gate rejected, kept for inspection (never read by the pipeline)."""
        return self._join("audit", "held")

    @property
    def locks(self) -> str:
        return self._join("_locks")

    @property
    def warehouse(self) -> str:
        return self._join("warehouse.duckdb")

    @property
    def simulator_truth(self) -> str:
        return self._join("simulator", "truth")

    @property
    def demo_pii_key(self) -> str:
        return self._join("_demo", "pii_key")

    # -- silver layer (lake/silver) ---------------------------------------------------------------
    @property
    def silver_events(self) -> str:
        return self.table("silver", "events")

    @property
    def silver_identity_map(self) -> str:
        return self.table("silver", "identity_map")

    @property
    def silver_sessions(self) -> str:
        return self.table("silver", "sessions")

    @property
    def silver_build_state(self) -> str:
        """The silver builder's commit marker: the bronze version the silver tables reflect."""
        return self.table("silver", "_build_state")
