"""The nightly table maintenance: compact small files and vacuum superseded ones.

An op job, not an asset: it changes no row of any table (compaction commits carry ``dataChange:
false``; vacuum only deletes files no current version references). 05:00 UTC, after the night's
erasures, warehouse build, features, loops and report (02:00–04:00), so it also sweeps the files
those rewrote; it takes every writer lock, so an hourly run that starts meanwhile waits for it.
"""

import dagster as dg

from lake.maintenance import maintain_tables
from orchestration.resources import LakeResource

__all__ = ["maintain_delta_tables", "nightly_maintenance_job", "nightly_maintenance_schedule"]


# out=Nothing, as the `-> dg.Nothing` annotation Dagster also reads (a value, not a type to mypy) would say
@dg.op(out=dg.Out(dg.Nothing),
       description="Compact partitions with many small files and vacuum files superseded longer than the "
       "retention (GROWTHLAKE_VACUUM_RETENTION_HOURS, default 168) in every Delta table of the lake.")
def maintain_delta_tables(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    reports = maintain_tables(lake.paths())  # retention: GROWTHLAKE_VACUUM_RETENTION_HOURS or 168
    for r in reports:
        if r.partitions_compacted or r.files_vacuumed:
            context.log.info(r.summary())
    context.add_output_metadata(
        {
            "tables": len(reports),
            "partitions_compacted": sum(r.partitions_compacted for r in reports),
            "files_before": sum(r.files_before for r in reports),
            "files_after": sum(r.files_after for r in reports),
            "files_vacuumed": sum(r.files_vacuumed for r in reports),
            "mb_vacuumed": round(sum(r.bytes_vacuumed for r in reports) / 2**20, 1),
        }
    )


@dg.job(name="nightly_maintenance", executor_def=dg.in_process_executor,
        description="Table maintenance: OPTIMIZE (compact) and VACUUM every Delta table of the lake.")
def nightly_maintenance_job():
    maintain_delta_tables()


nightly_maintenance_schedule = dg.ScheduleDefinition(
    name="nightly_maintenance",
    job=nightly_maintenance_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
)
