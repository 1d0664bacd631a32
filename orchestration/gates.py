"""Upstream gates a consumer must not build on when they failed."""

import dagster as dg

from lake.paths import LakePaths
from lake.silver import unaudited_tables

__all__ = ["SILVER_GATES", "as_check_result", "failed_gates", "failed_silver_gates", "require_gated_silver"]

SILVER_GATES = [dg.AssetCheckKey(dg.AssetKey(["silver", table]), f"gx_silver_{table}")
                for table in ("events", "identity_map", "sessions")]


def failed_gates(instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]) -> list[str]:
    """The checks among ``keys`` whose latest evaluation failed, as ``asset:check`` strings."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key, record in latest.items()
                  if record.status.value == "FAILED")


def failed_silver_gates(instance: dg.DagsterInstance) -> list[str]:
    """Silver gates whose latest evaluation failed: nothing downstream may be built on that data."""
    return failed_gates(instance, SILVER_GATES)


def require_gated_silver(instance: dg.DagsterInstance, paths: LakePaths, *, consumer: str) -> None:
    """Raise ``dg.Failure`` when ``consumer`` (e.g. "the warehouse") must not read silver: a silver
    gate's latest evaluation failed, or a silver table changed after its last gated build."""
    failed = failed_silver_gates(instance)
    if failed:
        raise dg.Failure(
            description=f"silver gate(s) {', '.join(failed)} failed on their latest evaluation: {consumer} is not "
                        "built on that data (readers keep the last good version). Fix silver and re-materialize it.",
            metadata={"failed_gates": failed},
        )
    unaudited = unaudited_tables(paths)
    if unaudited:
        raise dg.Failure(
            description=f"silver table(s) {', '.join(unaudited)} changed after the last finished, gated silver build: "
                        f"{consumer} is not built on unaudited data. Materialize the hourly job (its silver build "
                        "rolls such writes back and re-runs the gates) first.",
            metadata={"unaudited_tables": unaudited},
        )


def as_check_result(evaluation: dg.AssetCheckEvaluation) -> dg.AssetCheckResult:
    """The result a check function returns for the evaluation a sensor records (the external assets' checks:
    the sensor that observes the asset evaluates it; run from the UI, the check judges it the same way)."""
    return dg.AssetCheckResult(passed=evaluation.passed, description=evaluation.description,
                               metadata=dict(evaluation.metadata), severity=evaluation.severity)
