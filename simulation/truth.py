"""Ground truth the pipeline never reads: ``users.parquet`` and ``manifest.json``, both atomic.

``users.parquet`` is streamed in row groups (bounded memory for any number of users) into a
hidden partial file and renamed when complete; ``manifest.json`` is written last, so its
presence means the whole run (landing files included) is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .journey import UserOutcome
from .population import CHANNEL_NAMES, Population

__all__ = ["TruthWriter", "USERS_SCHEMA", "write_manifest"]

_TS = pa.timestamp("ms", tz="UTC")
_PROBS = ("p_signup", "p_onboarding_step", "p_trial", "p_team", "p_convert", "p_churn_daily",
          "p_active_daily", "p_cancel_monthly")
_OUTCOME_TS = ("signup_ms", "trial_ms", "converted_ms", "cancelled_ms", "churned_ms", "consent_changed_ms")
_OUTCOME_STR = ("user_id", "signup_method", "plan", "locale", "referrer", "utm_source", "utm_medium",
                "utm_campaign")

USERS_SCHEMA = pa.schema(
    [("user_index", pa.int32()), ("user_id", pa.string()), ("anonymous_ids", pa.list_(pa.string())),
     ("arrival_ts", _TS), ("signup_ts", _TS), ("trial_start_ts", _TS),
     ("converted_ts", _TS), ("cancelled_ts", _TS), ("churned_ts", _TS), ("consent_changed_ts", _TS),
     ("channel", pa.string()), ("referrer", pa.string()), ("utm_source", pa.string()),
     ("utm_medium", pa.string()), ("utm_campaign", pa.string()), ("signup_method", pa.string()),
     ("plan", pa.string()), ("locale", pa.string()), ("onboarding_variant", pa.string()),
     ("onboarding_steps_completed", pa.int8()), ("engagement", pa.float64()), ("price_sensitivity", pa.float64()),
     ("n_devices", pa.int8()), ("analytics_consent", pa.bool_()), ("marketing_consent", pa.bool_())]
    + [(p, pa.float64()) for p in _PROBS]
    + [("events_emitted", pa.int32())]
)
_RENAMED_TS = {"signup_ms": "signup_ts", "trial_ms": "trial_start_ts", "converted_ms": "converted_ts",
               "cancelled_ms": "cancelled_ts", "churned_ms": "churned_ts", "consent_changed_ms": "consent_changed_ts"}


def _atomic_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_manifest(truth_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` (sorted keys, indented) atomically."""
    _atomic_bytes(truth_dir / "manifest.json",
                  orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


# The truth keeps no email or IP: it lives under the storage root, where no raw PII may be stored
# in any Parquet file (the landing zone is the only place raw collector payloads exist).


class TruthWriter:
    """Collects one ``UserOutcome`` per visitor, in user-index order, into ``users.parquet``."""

    def __init__(self, truth_dir: Path, pop: Population, *, row_group: int) -> None:
        truth_dir.mkdir(parents=True, exist_ok=True)
        self.truth_dir = truth_dir
        self.pop = pop
        self.row_group = row_group
        self._partial = truth_dir / ".users.parquet.partial"
        self._writer = pq.ParquetWriter(self._partial, USERS_SCHEMA, compression="zstd")
        self._rows: list[UserOutcome] = []
        self._next = 0

    def add(self, outcome: UserOutcome) -> None:
        self._rows.append(outcome)
        if len(self._rows) >= self.row_group:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        rows, pop = self._rows, self.pop
        lo, hi = self._next, self._next + len(rows)
        cols: dict[str, Any] = {
            "user_index": np.arange(lo, hi, dtype=np.int32),
            "anonymous_ids": [o.anonymous_ids for o in rows],
            "arrival_ts": pa.array(pop.arrival_ms[lo:hi], type=pa.int64()).cast(_TS),
            "channel": [CHANNEL_NAMES[c] for c in pop.channel[lo:hi]],
            "onboarding_variant": np.where(pop.guided_onboarding[lo:hi], "guided", "control").tolist(),
            "onboarding_steps_completed": [o.onboarding_steps for o in rows],
            "events_emitted": [o.events for o in rows],
        }
        for name in _OUTCOME_STR:
            cols[name] = [getattr(o, name) for o in rows]
        for name in _OUTCOME_TS:
            cols[_RENAMED_TS[name]] = pa.array([getattr(o, name) for o in rows], type=pa.int64()).cast(_TS)
        for name in ("engagement", "price_sensitivity", "n_devices", "analytics_consent", "marketing_consent",
                     *_PROBS):
            cols[name] = getattr(pop, name)[lo:hi]
        table = pa.table({f.name: pa.array(cols[f.name], type=f.type) if not isinstance(cols[f.name], pa.Array)
                          else cols[f.name] for f in USERS_SCHEMA}, schema=USERS_SCHEMA)
        self._writer.write_table(table)
        self._rows = []
        self._next = hi

    def close(self) -> Path:
        """Write the last row group and publish ``users.parquet``."""
        self._flush()
        self._writer.close()
        final = self.truth_dir / "users.parquet"
        os.replace(self._partial, final)
        return final

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._partial.unlink(missing_ok=True)
