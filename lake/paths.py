"""The storage root and where every table lives below it (DESIGN.md contracts).

A storage root is a local folder or an object-store URI (``s3://bucket/prefix``). A few things
cannot live in an object store — the analysts' DuckDB warehouse file, dbt's target folder, the
writer locks (``flock``), the online feature store (SQLite) — so an object-store root pairs with
a local folder, ``GROWTHLAKE_LOCAL_DIR``; for a local root that folder is the root itself, and
nothing moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lake.errors import ConfigError
from lake.settings import DEFAULT_ROOT, Settings
from lake.settings import resolve_root as _resolve

__all__ = ["DEFAULT_ROOT", "LakePaths", "resolve_root"]


def resolve_root(root: str | os.PathLike[str] | None = None) -> str:
    """Return the storage root: the argument, else ``$GROWTHLAKE_ROOT``, else ``./data``.

    Local roots are made absolute so that a Dagster step and the CLI agree on them.
    Object-store URIs (``s3://…``) are returned unchanged.
    """
    return _resolve(root) if root is not None else Settings.from_env().root


@dataclass(frozen=True)
class LakePaths:
    """Every location growthlake reads or writes, derived from one storage root.

    Where a location depends on a setting (``GROWTHLAKE_LOCAL_DIR``, ``GROWTHLAKE_LOCK_DIR``,
    ``GROWTHLAKE_ONLINE_STORE``) it comes from :attr:`settings`: the settings the paths were made with
    (``from_root(settings=...)``, as the CLI does after checking them), else the environment's as
    they are when asked. Two paths are equal when their roots are.
    """

    root: str
    explicit_settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_root(cls, root: str | os.PathLike[str] | None = None, *, settings: Settings | None = None) -> LakePaths:
        """The paths of ``root`` (default: the settings' root, i.e. ``$GROWTHLAKE_ROOT`` or ``./data``)."""
        if settings is None:
            return cls(resolve_root(root))
        settings = settings.with_root(root)
        return cls(settings.root, settings)

    @property
    def settings(self) -> Settings:
        """The settings of this lake (see the class docstring), with ``root`` set to this root."""
        if self.explicit_settings is not None:
            return self.explicit_settings
        return Settings.from_env(root=self.root)

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
    def local_dir(self) -> str:
        """The local folder for what cannot live in an object store (warehouse, dbt files, locks).

        The root itself when it is local; for an object-store root, ``$GROWTHLAKE_LOCAL_DIR``
        (one such folder per root: it holds that root's warehouse).

        Raises:
            ConfigError: the root is an object store and ``GROWTHLAKE_LOCAL_DIR`` is unset.
        """
        if self.is_local:
            return self.root
        override = self.settings.local_dir
        if not override:
            raise ConfigError(
                "GROWTHLAKE_LOCAL_DIR",
                f"it is unset and GROWTHLAKE_ROOT ({self.root}) is not a local folder: the DuckDB warehouse, "
                "dbt's files and the writer locks need one",
                "Set GROWTHLAKE_LOCAL_DIR to a local folder of this machine, e.g. /var/lib/growthlake",
            )
        return override

    @property
    def locks(self) -> str:
        """Writer-lock files: ``$GROWTHLAKE_LOCK_DIR``, else ``_locks/`` in :attr:`local_dir`.

        Locks serialize writers that share this folder's filesystem: every process of one machine
        (see lake/locks.py for what that means on an object-store root).
        """
        return self.settings.lock_dir or f"{self.local_dir}/_locks"

    @property
    def warehouse(self) -> str:
        """The analysts' DuckDB file: ``warehouse.duckdb`` in :attr:`local_dir` (``$ROOT`` when local)."""
        return f"{self.local_dir}/warehouse.duckdb"

    @property
    def dbt_dir(self) -> str:
        """dbt's target (``run_results.json``, manifest) and log folders of warehouse builds."""
        return f"{self.local_dir}/_dbt"

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

    # -- feature store (growth_loops/features) ---------------------------------------------------
    def feature_view(self, view: str) -> str:
        """A feature view's offline history (Delta, partitioned by materialized day)."""
        return self.table("features", view)

    def feature_rollup(self, source: str) -> str:
        """Daily per-person rollup of one feature source (Delta, partitioned by day)."""
        return self.table("features", f"_rollup_{source}")

    @property
    def feature_rollup_state(self) -> str:
        """Which silver files each rollup day was built from."""
        return self.table("features", "_rollup_state")

    @property
    def feature_materializations(self) -> str:
        """Append-only log of every materialization attempt: status, gates, drift."""
        return self.table("features", "_materializations")

    @property
    def feature_holds(self) -> str:
        """Feature values a gate kept from publishing, for inspection."""
        return self._join("audit", "held", "features")

    @property
    def online_store(self) -> str:
        """The online store's SQLite file: ``$GROWTHLAKE_ONLINE_STORE``, else
        ``features/online.sqlite`` below the root — or below ``$GROWTHLAKE_LOCAL_DIR`` for an
        object-store root, where a SQLite file cannot live."""
        if self.settings.online_store:
            return self.settings.online_store
        if not self.is_local and not self.settings.local_dir:
            raise ConfigError(
                "GROWTHLAKE_ONLINE_STORE",
                f"it is unset and GROWTHLAKE_ROOT ({self.root}) is an object store, where the online "
                "feature store's SQLite file cannot live",
                "Set GROWTHLAKE_ONLINE_STORE to a local file path, e.g. /var/lib/growthlake/online.sqlite "
                "(or GROWTHLAKE_LOCAL_DIR, and it goes to features/online.sqlite there)",
            )
        return f"{self.local_dir}/features/online.sqlite"

    # -- growth loops (growth_loops/loops, growth_loops/actuation) -------------------------------
    def loop_decisions(self, loop: str) -> str:
        """A loop's decisions (Delta, partitioned by decision day): asset ``["loops", loop, "decisions"]``."""
        return self._join("delta", "loops", loop, "decisions")

    @property
    def audit_log(self) -> str:
        """Append-only audit log of every decision, rollback and approval."""
        return self.table("decisions", "audit_log")

    @property
    def approvals(self) -> str:
        """Append-only approval events of policy versions."""
        return self.table("decisions", "approvals")

    # -- observability (lake/alerts) ---------------------------------------------------------------
    @property
    def alerts(self) -> str:
        """Append-only alerts (failed gates, failed runs, freshness breaches), one row per alert_id."""
        return self.table("observability", "alerts")

    @property
    def alert_actions(self) -> str:
        """Append-only: who acknowledged or resolved which alert, when (lake/alerts)."""
        return self.table("observability", "alert_actions")

    @property
    def gate_evaluations(self) -> str:
        """Append-only: every evaluation of every gate, per asset partition (lake/trust)."""
        return self.table("observability", "gate_evaluations")

    @property
    def asset_runs(self) -> str:
        """Append-only: per asset and run step, rows, freshness lag, gates, quarantine rate (lake/trust)."""
        return self.table("observability", "asset_runs")

    @property
    def data_trust_daily(self) -> str:
        """One row per day: may decisions use it (lake/trust.write_daily_trust; the OEC joins it)."""
        return self.table("observability", "data_trust_daily")

    @property
    def landing_profiles(self) -> str:
        """Per landing hour: lines per event, properties present, key-column counts (lake/profiles)."""
        return self.table("observability", "landing_profiles")

    # -- governance (lake/erasure) -----------------------------------------------------------------
    @property
    def erasures(self) -> str:
        """Append-only record of every right-to-erasure run: counts and a keyed hash, never a raw id."""
        return self.table("governance", "erasures")

    @property
    def erasure_requests(self) -> str:
        """Pending erasure requests (consent revoked at ingestion); a row holds the raw id only until
        the request is processed, then it is deleted and the table's history purged."""
        return self.table("governance", "erasure_requests")
