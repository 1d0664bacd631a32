"""Upstream gates a consumer must not build on when they failed."""

import dagster as dg

__all__ = ["SILVER_GATES", "failed_gates", "failed_silver_gates"]

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
