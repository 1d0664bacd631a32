"""Proof after the fact: no row an erasure promised to remove is back in bronze or silver.

The erasure record keeps a keyed hash of each subject's id, never the id (``lake.erasure.record``).
:func:`erased_rows_remaining` hashes every distinct ``user_id`` / ``anonymous_id`` of
``bronze/events``, ``silver/events`` and ``silver/identity_map`` the same way and counts the rows
whose id is an erased subject's and that the lake already held when that erasure completed
(``received_at`` — for the identity map ``linked_at`` — at or before ``completed_at``). Rows received
later are not the erasure's to remove: a person may consent again.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lake import delta_io
from lake.erasure.record import ERASURES, subject_hash
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.schemas import BRONZE_EVENTS, SILVER_EVENTS, SILVER_IDENTITY_MAP

__all__ = ["erased_rows_remaining"]


def erased_rows_remaining(paths: LakePaths, masker: PiiMasker) -> dict[str, int]:
    """Rows of erased subjects still present, per table (``bronze/events``…); tables with none left out.

    Args:
        paths: the lake.
        masker: the keyed hasher the erasures were recorded with (``GROWTHLAKE_PII_KEY``).

    Returns:
        Row counts per table; empty when every erasure still holds (or none was recorded).
    """
    erasures = pl.from_arrow(delta_io.read(paths.erasures, ERASURES, columns=["subject_hash", "completed_at"]))
    assert isinstance(erasures, pl.DataFrame)
    if erasures.is_empty():
        return {}
    # The latest erasure of each subject bounds what must be gone.
    completed: dict[str, datetime] = dict(
        erasures.group_by("subject_hash").agg(pl.col("completed_at").max()).iter_rows())
    sources = [("bronze/events", paths.bronze_events, BRONZE_EVENTS, "received_at"),
               ("silver/events", paths.silver_events, SILVER_EVENTS, "received_at"),
               ("silver/identity_map", paths.silver_identity_map, SILVER_IDENTITY_MAP, "linked_at")]
    hashes: dict[str, str] = {}  # id -> keyed hash, each distinct id hashed once across tables
    out: dict[str, int] = {}
    for name, uri, schema, at in sources:
        frame = pl.from_arrow(delta_io.read(uri, schema, columns=["user_id", "anonymous_id", at]))
        assert isinstance(frame, pl.DataFrame)
        held = pl.lit(False)
        for column in ("user_id", "anonymous_id"):
            ids = frame.select(pl.col(column).drop_nulls().unique()).to_series().to_list()
            for i in ids:
                if i not in hashes:
                    hashes[i] = subject_hash(masker, i)
            erased = {i: completed[hashes[i]] for i in ids if hashes[i] in completed}
            if erased:
                bound = pl.col(column).replace_strict(erased, default=None, return_dtype=frame.schema[at])
                held = held | (bound.is_not_null() & (pl.col(at) <= bound)).fill_null(False)
        remaining = frame.filter(held).height
        if remaining:
            out[name] = remaining
    return out
