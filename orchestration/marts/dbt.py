"""The dbt integration, in one module: project, translator, assets (STYLE.md §3).

Models become assets keyed by their warehouse schema (``["marts", "fct_daily_oec"]``), grouped
by their folder; dbt sources map to the silver Dagster assets through ``meta.dagster`` in
``_silver__sources.yml``; dbt tests become (blocking) asset checks. Every build runs against a
private copy of the warehouse that is swapped in only when the build passed (lake.warehouse).
"""

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from lake.warehouse import DBT_PROJECT_DIR, WAREHOUSE_PATH_VAR, dbt_build_args, staged_warehouse
from orchestration.freshness import freshness
from orchestration.gates import require_gated_silver
from orchestration.resources import LakeResource

__all__ = ["dbt_project", "WarehouseBuildConfig", "GrowthlakeDbtTranslator", "marts_dbt_assets", "dbt_resource", "ensure_manifest"]

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _dbt_executable() -> str:
    """The dbt installed beside this Python (a venv need not be on PATH), else ``dbt`` on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=_dbt_executable())


def ensure_manifest() -> None:
    """dagster-dbt reads the manifest when the definitions load: parse the project if it never was.

    ``make install`` runs ``dbt parse``; under ``dagster dev`` ``prepare_if_dev`` re-parses on
    every reload. This covers a checkout that skipped both (e.g. ``pytest`` run directly).
    """
    dbt_project.prepare_if_dev()
    if not dbt_project.manifest_path.exists():
        os.environ.setdefault("GROWTHLAKE_ROOT", os.path.abspath("data"))
        os.environ.setdefault("GROWTHLAKE_WAREHOUSE_PATH", os.path.join(os.environ["GROWTHLAKE_ROOT"], "warehouse.duckdb"))
        dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()


class GrowthlakeDbtTranslator(DagsterDbtTranslator):
    """Keys and groups from dbt's own structure, never from model names."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] not in ("model", "seed", "snapshot"):
            return spec  # sources: meta.dagster.asset_key already maps them to ["silver", ...]
        layer = props.get("config", {}).get("schema") or props["fqn"][1]
        return spec.replace_attributes(
            key=dg.AssetKey([layer, props["name"]]),
            group_name=layer,
            freshness_policy=freshness(layer if layer == "marts" else "warehouse"),
        )


translator = GrowthlakeDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@contextmanager
def _lake_env(root: str) -> Iterator[None]:
    # dbt runs as a subprocess that resolves the Delta source paths from GROWTHLAKE_ROOT;
    # DbtCliResource takes no per-call environment, so it is set around the call and restored.
    before = os.environ.get("GROWTHLAKE_ROOT")
    os.environ["GROWTHLAKE_ROOT"] = root
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GROWTHLAKE_ROOT", None)
        else:
            os.environ["GROWTHLAKE_ROOT"] = before


ensure_manifest()


class WarehouseBuildConfig(dg.Config):
    """Launchpad settings of a warehouse build (the Dagster UI's way to backfill the marts)."""

    backfill_from: str | None = None  # YYYY-MM-DD: recompute the daily facts from this date on
    lookback_days: int | None = None  # override var incremental_lookback_days for this build
    full_refresh: bool = False  # rebuild every incremental model from scratch

    def dbt_vars(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.backfill_from:
            try:
                out["backfill_from"] = date.fromisoformat(self.backfill_from).isoformat()
            except ValueError:
                raise dg.Failure(description=f"backfill_from={self.backfill_from!r} is not a date like 2026-11-02") from None
        if self.lookback_days is not None:
            out["incremental_lookback_days"] = max(0, int(self.lookback_days))
        return out


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator,
            name="warehouse_dbt_build")
def marts_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource,
                     config: WarehouseBuildConfig):
    """Build the warehouse with dbt (models and tests) into a private copy; swap it in on success."""
    paths = lake.paths()
    require_gated_silver(context.instance, paths, consumer="the warehouse")
    with _lake_env(paths.root), staged_warehouse(paths) as building:
        args = dbt_build_args(select=None, full_refresh=config.full_refresh,
                              vars={WAREHOUSE_PATH_VAR: str(building), **config.dbt_vars()})
        yield from dbt.cli(args, context=context).stream()

