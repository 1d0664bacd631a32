"""The dbt integration, in one module: project, translator, assets (STYLE.md §3).

Models become assets keyed by their warehouse schema (``["marts", "fct_daily_oec"]``), grouped
by their folder; dbt sources map to the silver Dagster assets through ``meta.dagster`` in
``_silver__sources.yml``; dbt tests become (blocking) asset checks. Every build runs against a
private copy of the warehouse that is swapped in only when the build passed (lake.warehouse).

Nothing here runs at import: the manifest is prepared (``dbt parse``, when missing or stale) and
the assets are built by :func:`build_marts_assets`, which the definitions loader calls.
"""

import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from lake.dbt_manifest import build_target_dir, prepare_manifest
from lake.paths import LakePaths
from lake.warehouse import DBT_PROJECT_DIR, LAKE_ROOT_VAR, WAREHOUSE_PATH_VAR, dbt_build_args, staged_warehouse
from orchestration.automation import warehouse_after_gates
from orchestration.freshness import freshness
from orchestration.gates import require_gated_silver
from orchestration.resources import LakeResource

__all__ = ["WarehouseBuildConfig", "GrowthlakeDbtTranslator", "build_marts_assets", "dbt_project", "dbt_resource"]


def dbt_executable() -> str:
    """The dbt installed beside this Python (a venv need not be on ``PATH``), else ``dbt`` on ``PATH``."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def dbt_project(paths: LakePaths) -> DbtProject:
    """The dbt project, its manifest prepared for ``paths`` (``lake.dbt_manifest``; parsed when missing
    or stale, never under the code checkout)."""
    manifest = prepare_manifest(paths)
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=manifest.parent)


def dbt_resource() -> DbtCliResource:
    """dbt as the warehouse asset runs it: the executable beside this Python, the project's profiles."""
    return DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=dbt_executable())


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
            automation_condition=warehouse_after_gates(),
        )


translator = GrowthlakeDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


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
                raise dg.Failure(
                    description=f"backfill_from={self.backfill_from!r} is not a date like 2026-11-02") from None
        if self.lookback_days is not None:
            out["incremental_lookback_days"] = max(0, int(self.lookback_days))
        return out


def build_marts_assets(paths: LakePaths) -> dg.AssetsDefinition:
    """The dbt models (and their tests, as blocking checks) as Dagster assets, from the manifest of ``paths``."""

    project = dbt_project(paths)

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=translator,
                name="warehouse_dbt_build")
    def marts_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource,
                         config: WarehouseBuildConfig):
        """Build the warehouse with dbt (models and tests) into a private copy; swap it in on success."""
        paths = lake.paths()
        require_gated_silver(context.instance, paths, consumer="the warehouse")
        with staged_warehouse(paths) as building:
            # Everything dbt writes (target, logs) goes to a build folder under the storage root; the
            # lake's root and the copy to build reach dbt as --vars, not through this process's environment.
            target = build_target_dir(paths, f"dagster-{context.run.run_id[:8]}")
            args = dbt_build_args(select=None, full_refresh=config.full_refresh,
                                  vars={LAKE_ROOT_VAR: paths.root, WAREHOUSE_PATH_VAR: str(building),
                                        **config.dbt_vars()})
            yield from dbt.cli(args, context=context, target_path=target).stream()

    return marts_dbt_assets
