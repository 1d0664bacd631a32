"""Ingestion: landing hours -> bronze events + quarantine, exactly once, with a ledger (a range in one pass)."""

from lake.ingest.normalize import NormalizedBatch, Normalizer
from lake.ingest.pipeline import Auditor, GateOutcome, IngestionResult, gx_auditor, ingest_partition, ingest_range
from lake.landing import (
    LandingFile,
    hour_keys,
    iter_lines,
    list_landing_files,
    list_landing_partitions,
    parse_partition_key,
    partition_folder,
    partition_key,
)

__all__ = [
    "Auditor",
    "GateOutcome",
    "IngestionResult",
    "LandingFile",
    "NormalizedBatch",
    "Normalizer",
    "gx_auditor",
    "hour_keys",
    "ingest_partition",
    "ingest_range",
    "iter_lines",
    "list_landing_files",
    "list_landing_partitions",
    "parse_partition_key",
    "partition_folder",
    "partition_key",
]
