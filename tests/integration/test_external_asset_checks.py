"""The external assets' blocking checks (issue 19): no run writes landing/events or the trust table, so the
sensor that observes each evaluates its check whenever what it observes changed.

- ``landing_hour_readable``: a landing hour with a file that cannot be read (a truncated gzip upload) makes
  the check fail naming it, and is not ingested — its files stay, nothing is lost — while the readable hour
  beside it is; once the file is replaced, the check passes and the hour is requested. The check is one
  evaluation over the recent hours (Dagster's SQLite storage keeps one runless evaluation per partition).
- ``daily_trust_consistent``: a trust table whose row says "trusted" for a date with failed gates fails
  when the freshness sensor observes that version; a consistent table passes.
"""

from __future__ import annotations

import datetime as dt
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa

from lake import delta_io
from lake.ingest import partition_key
from lake.landing import partition_folder
from lake.trust import DAILY_TRUST, verify_daily_trust
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from tests.helpers import event, write_batch


def _verdict(result) -> dg.AssetCheckEvaluation | None:
    found = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert len(found) <= 1 and all(e.check_name == "landing_hour_readable" for e in found)
    return found[0] if found else None


def test_an_unreadable_landing_hour_fails_its_check_and_is_held_until_it_reads(paths):
    good, bad = (partition_key(datetime.now(UTC) - timedelta(hours=h)) for h in (3, 2))
    write_batch(paths, good, [event()])
    write_batch(paths, bad, [event()])
    broken = Path(paths.landing_events) / partition_folder(bad) / "batch-2.jsonl.gz"
    whole = gzip.compress(b'{"event_name": "page_viewed"}\n' * 2000)
    broken.write_bytes(whole[: len(whole) // 2])  # an upload cut off half-way: not a whole gzip stream

    sensor = build_definitions(lake=LakeResource(root=paths.root)).resolve_sensor_def("landing_files_sensor")
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                 resources={"lake": LakeResource(root=paths.root)}) as ctx:
        tick = sensor(ctx)
        assert [r.partition_key for r in tick.run_requests] == [good]
        verdict = _verdict(tick)
        assert verdict is not None and not verdict.passed
        assert verdict.metadata["held_hours"].value == [bad]
        assert bad in (verdict.description or "") and "batch-2.jsonl.gz" in (verdict.description or "")
        assert "1 of 2" in (verdict.description or "")
        assert broken.exists()  # held, not deleted: nothing is lost

        ctx.update_cursor(tick.cursor)
        still = sensor(ctx)  # unchanged and still unreadable: still held, nothing new to report
        assert [r.partition_key for r in still.run_requests] == [good]
        assert _verdict(still) is None
        ctx.update_cursor(still.cursor)

        broken.write_bytes(whole)  # the collector re-uploads the whole file
        fixed = sensor(ctx)
        assert sorted(r.partition_key for r in fixed.run_requests) == sorted([good, bad])
        released = _verdict(fixed)
        assert released is not None and released.passed and released.metadata["held_hours"].value == []


def test_the_trust_tables_check_is_judged_by_the_freshness_sensor_at_each_new_version(paths):
    now = datetime.now(UTC)
    rows = [
        {"date_day": dt.date(2026, 3, 2), "is_trusted": True, "failed_gates": 0, "untrusted_reasons": None,
         "computed_at": now},
        {"date_day": dt.date(2026, 3, 3), "is_trusted": False, "failed_gates": 1,
         "untrusted_reasons": "bronze/events 2026-03-03-05:00 volume_within_history failed", "computed_at": now},
    ]
    delta_io.overwrite(paths.data_trust_daily, pa.Table.from_pylist(rows, schema=DAILY_TRUST), operation="test")
    assert verify_daily_trust(paths)[0]

    defs = build_definitions(lake=LakeResource(root=paths.root))
    sensor = defs.resolve_sensor_def("freshness_sla_sensor")
    instance = dg.DagsterInstance.ephemeral()
    check_key = dg.AssetCheckKey(dg.AssetKey(["observability", "data_trust_daily"]), "daily_trust_consistent")

    def latest() -> tuple[bool | None, str]:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(check_key)
        evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
        return (getattr(evaluation, "passed", None), getattr(evaluation, "description", "") or "")

    with dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def(),
                                 resources={"lake": LakeResource(root=paths.root)}) as ctx:
        ctx.update_cursor(sensor(ctx).cursor)
        assert latest()[0] is True

        rows[1] = {**rows[1], "is_trusted": True}  # a trusted day with a failed gate: a row that must not exist
        delta_io.overwrite(paths.data_trust_daily, pa.Table.from_pylist(rows, schema=DAILY_TRUST), operation="test")
        sensor(ctx)
        passed, description = latest()
        assert passed is False
        assert "trusted date(s) with failed gates" in description and "2026-03-03" in description
