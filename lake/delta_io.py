"""Delta IO used by every layer: read with pushdown, append, replace a slice atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

__all__ = ["storage_options", "open_table", "read", "append", "replace_where", "row_count", "version"]


def storage_options(uri: str) -> dict[str, str] | None:
    """Object-store options from the environment (``AWS_*``); None for local paths."""
    if "://" not in uri:
        return None
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_EC2_METADATA_DISABLED")
    return {k: v for k in keys if (v := os.environ.get(k))}


def open_table(uri: str) -> DeltaTable | None:
    """The Delta table at ``uri``, or None when nothing was ever committed there."""
    try:
        return DeltaTable(uri, storage_options=storage_options(uri))
    except TableNotFoundError:
        return None


def read(uri: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
         filter: pads.Expression | None = None) -> pa.Table:
    """Read a table (projected and filtered, with partition and statistics pruning).

    A table that does not exist yet reads as empty with ``schema``.
    """
    dt = open_table(uri)
    cols = list(columns) if columns is not None else schema.names
    if dt is None:
        return pa.schema([schema.field(c) for c in cols]).empty_table()
    return dt.to_pyarrow_dataset().to_table(columns=cols, filter=filter)


def row_count(uri: str, *, filter: pads.Expression | None = None) -> int:
    dt = open_table(uri)
    if dt is None:
        return 0
    return dt.to_pyarrow_dataset().count_rows(filter=filter)


def version(uri: str) -> int | None:
    dt = open_table(uri)
    return None if dt is None else dt.version()


def _commit(operation: str, metadata: dict[str, Any] | None) -> CommitProperties:
    meta = {"growthlake.operation": operation}
    meta.update({f"growthlake.{k}": str(v) for k, v in (metadata or {}).items()})
    return CommitProperties(custom_metadata=meta)


def append(uri: str, data: pa.Table, *, partition_by: Sequence[str] | None = None,
           operation: str = "append", metadata: dict[str, Any] | None = None) -> None:
    """Append ``data`` in one Delta commit (creating the table on first write)."""
    if data.num_rows == 0:
        return
    write_deltalake(uri, data, mode="append", partition_by=list(partition_by) if partition_by else None,
                    storage_options=storage_options(uri), commit_properties=_commit(operation, metadata))


def replace_where(uri: str, data: pa.Table, predicate: str, *, partition_by: Sequence[str] | None = None,
                  operation: str = "replace", metadata: dict[str, Any] | None = None) -> None:
    """Atomically delete the rows matching ``predicate`` and add ``data`` (one commit).

    ``predicate`` must be built only from identifiers and values this project controls
    (validated partition keys), never from free user input.
    """
    if open_table(uri) is None:
        write_deltalake(uri, data, mode="append", partition_by=list(partition_by) if partition_by else None,
                        storage_options=storage_options(uri), commit_properties=_commit(operation, metadata))
        return
    write_deltalake(uri, data, mode="overwrite", predicate=predicate,
                    partition_by=list(partition_by) if partition_by else None,
                    storage_options=storage_options(uri), commit_properties=_commit(operation, metadata))
