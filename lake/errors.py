"""One error hierarchy for growthlake: every error says what was wrong and what to do."""

from __future__ import annotations

__all__ = [
    "GrowthlakeError",
    "ConfigError",
    "PiiKeyMissing",
    "TrackingPlanError",
    "BreakingPlanChange",
    "LandingPartitionError",
    "GateFailed",
    "ReconciliationError",
    "SilverStateError",
    "RequestRejected",
    "AlertError",
]


class GrowthlakeError(Exception):
    """Root of every error growthlake raises on purpose."""


class ConfigError(GrowthlakeError):
    """A setting is missing or malformed."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {problem}. {fix}")


class PiiKeyMissing(ConfigError):
    """Ingestion refuses to run without a pseudonymization key."""

    def __init__(self) -> None:
        super().__init__(
            "GROWTHLAKE_PII_KEY",
            "not set, and PII (IPs, emails) cannot be pseudonymized without a secret key",
            "Export a long random secret (e.g. `export GROWTHLAKE_PII_KEY=$(openssl rand -hex 32)`), "
            "or set GROWTHLAKE_PROFILE=demo to use a generated, clearly-labelled demo key "
            "kept under the storage root (never for real data).",
        )


class TrackingPlanError(GrowthlakeError):
    """The tracking plan file itself is invalid."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"tracking plan {path}: {problem}. Fix the YAML and rerun.")


class BreakingPlanChange(GrowthlakeError):
    """A breaking tracking-plan change was made without a major version bump."""

    def __init__(self, old_version: str, new_version: str, changes: list[str]) -> None:
        self.changes = changes
        listing = "; ".join(changes)
        super().__init__(
            f"tracking plan changed incompatibly ({listing}) but its version went "
            f"{old_version} -> {new_version}. Bump the major version (consumers must be told), "
            "or make the change additive (new optional property / new event)."
        )


class LandingPartitionError(GrowthlakeError):
    """A landing partition key or folder is malformed."""

    def __init__(self, value: str, expected: str) -> None:
        super().__init__(f"landing partition {value!r} is not valid: expected {expected}.")


class GateFailed(GrowthlakeError):
    """A data-quality gate rejected a batch before it was published."""

    def __init__(self, suite: str, partition: str, summary: str, held_at: str) -> None:
        self.suite = suite
        self.partition = partition
        super().__init__(
            f"gate {suite!r} rejected landing partition {partition}: {summary}. Nothing was "
            f"published; the batch is kept for inspection at {held_at}. Fix the source (or the "
            "suite, if the expectation is wrong) and re-materialize the partition."
        )


class ReconciliationError(GrowthlakeError):
    """Ledger counts of a partition do not add up."""

    def __init__(self, partition: str, detail: str) -> None:
        super().__init__(
            f"landing partition {partition} does not reconcile: {detail}. Re-materialize the "
            "partition (ingestion is idempotent) and inspect the ledger with `growthlake status`."
        )


class SilverStateError(GrowthlakeError):
    """The silver tables cannot be brought back to the state their last build recorded."""

    def __init__(self, table: str, problem: str) -> None:
        self.table = table
        super().__init__(
            f"silver table {table}: {problem}. The silver layer is derived data: rebuild it from bronze "
            "with `lake.silver.rebuild_silver(paths)` (nothing in bronze is touched)."
        )


class WarehouseBuildFailed(GrowthlakeError):
    """dbt could not build the analyst warehouse; the previous warehouse file is left in place."""

    def __init__(self, failed: list[str], detail: str, warehouse: str, log_path: str | None = None) -> None:
        self.failed = list(failed)
        names = ", ".join(self.failed) or "no node (dbt stopped before running any)"
        log = f"; dbt's log: {log_path}" if log_path else ""
        super().__init__(
            f"dbt build of the warehouse failed at {names}: {detail}. {warehouse} was left unchanged "
            f"(analysts keep the last good build). Fix the upstream data or the model, then rebuild{log}."
        )


class WarehouseAuditFailed(WarehouseBuildFailed):
    """dbt built the warehouse copy, but it failed its audit (GX suites) before the swap: not published."""

    def __init__(self, failed: list[str], detail: str, warehouse: str) -> None:
        self.failed = list(failed)
        GrowthlakeError.__init__(
            self,
            f"the new warehouse build failed its audit at {', '.join(self.failed) or 'no named check'} ({detail}). "
            f"{warehouse} was left unchanged (analysts keep the last good build). Look at the day and figures "
            "named above in the silver data (or widen the gate if the change is real), then rebuild.")


class WarehouseBusy(GrowthlakeError):
    """Another process holds the warehouse file open read-write."""

    def __init__(self, warehouse: str, detail: str) -> None:
        super().__init__(
            f"{warehouse} is open read-write by another process or was not closed cleanly ({detail}), so "
            "it can be neither copied consistently nor replaced safely. Analysts must connect read-only "
            "(`duckdb -readonly <file>`, `duckdb.connect(path, read_only=True)`): close that session "
            "(or open the file once read-write with nothing else connected, so DuckDB checkpoints its "
            "write-ahead log) and rebuild."
        )


class RequestRejected(GrowthlakeError):
    """The collector refuses an HTTP request (or one message of a batch).

    Attributes:
        status: the HTTP status to answer (4xx; 503 when landing failed and a retry will do).
        code: a Segment-style error code (``invalid_request``, ``unauthorized``, …).
        message: what was wrong and what to do, sent to the client as it is.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class AlertError(GrowthlakeError):
    """An alert cannot be acknowledged or resolved: unknown id, ambiguous prefix, or already done."""

    def __init__(self, alert: str, problem: str) -> None:
        self.alert = alert
        super().__init__(f"alert {alert}: {problem}. List the alerts with `growthlake alerts list --all`.")
