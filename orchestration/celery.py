"""Dagster steps on Celery workers: the code location of a deployment that outgrew one process.

Load this module instead of ``orchestration.definitions`` (``workspace.yaml``:
``module_name: orchestration.celery``). It holds the same assets, checks, jobs, schedules and
sensors — the default jobs keep their in-process executor — plus ``hourly_ingestion_celery``:
the hourly job (landing hour -> bronze -> silver, with the same gates and trust hooks) whose steps
are queued on Celery (``dagster-celery``) and run by whichever worker is free, so the runs of a
backfill (up to a week of hours each, ``orchestration.hours``) and the hourly runs are ingested side by
side on a pool of workers. The data stays correct however the steps
are spread: the writers of a table serialize on its writer lock (lake/locks.py), one machine's
processes through ``flock`` — see DEPLOY.md for several machines.

Settings, read when a run starts (never at import):

* ``GROWTHLAKE_CELERY_BROKER`` — the broker and result backend URL, e.g. ``redis://host:6379/0``.
* The Dagster instance must be shared by the run and the workers (``DAGSTER_HOME`` with Postgres
  storage in production; SQLite in one folder on a single machine); the lake settings
  (``GROWTHLAKE_ROOT``, ``GROWTHLAKE_PII_KEY``, the ``AWS_*`` of an object-store root) must be set
  for the workers too: each step runs in a worker's process.

A worker (``-P solo``: one step at a time in the worker's own process, no fork; start as many as
there are cores)::

    celery -A dagster_celery.app worker -Q dagster -P solo -n worker1@%h \\
        -b "$GROWTHLAKE_CELERY_BROKER" --result-backend "$GROWTHLAKE_CELERY_BROKER" \\
        -I orchestration.celery   # import the definitions once, at start-up, not on the first step
"""

from __future__ import annotations

import functools

import dagster as dg
from dagster_celery import celery_executor

from orchestration.bronze.partitions import hourly
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from orchestration.trust import TRUST_HOOKS

__all__ = ["BROKER_ENV", "HOURLY_CELERY_JOB", "build_celery_definitions", "celery_definitions", "defs",
           "growthlake_celery_executor", "hourly_ingestion_celery", "hourly_ingestion_on_celery"]

HOURLY_CELERY_JOB = "hourly_ingestion_celery"
BROKER_ENV = "GROWTHLAKE_CELERY_BROKER"

# The broker is read from the environment when a run starts ({"env": ...} is resolved then).
growthlake_celery_executor = celery_executor.configured(
    {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}}, name="growthlake_celery")

hourly_ingestion_celery = dg.define_asset_job(
    HOURLY_CELERY_JOB,
    selection=dg.AssetSelection.groups("bronze", "silver"),
    partitions_def=hourly,
    executor_def=growthlake_celery_executor,
    hooks=TRUST_HOOKS,
    description="hourly_ingestion with its steps on Celery workers (dagster-celery): landing hour -> bronze -> "
                "silver behind the same blocking gates. Broker and result backend: $GROWTHLAKE_CELERY_BROKER.",
)


def build_celery_definitions(*, lake: LakeResource | None = None) -> dg.Definitions:
    """Every definition of ``orchestration.definitions``, plus the Celery variant of the hourly job."""
    return dg.Definitions.merge(build_definitions(lake=lake), dg.Definitions(jobs=[hourly_ingestion_celery]))


@functools.cache
def celery_definitions() -> dg.Definitions:
    """The definitions of this code location, built once per process (workers reuse them per step)."""
    return build_celery_definitions()


def hourly_ingestion_on_celery() -> dg.JobDefinition:
    """The Celery hourly job, for ``dg.reconstructable``: how a worker finds the job of its step.

    Example::

        dg.execute_job(dg.reconstructable(hourly_ingestion_on_celery), instance=dg.DagsterInstance.get(),
                       tags={"dagster/partition": "2026-11-02-05:00"})
    """
    return celery_definitions().resolve_job_def(HOURLY_CELERY_JOB)


@dg.definitions
def defs() -> dg.Definitions:
    """This code location (``workspace.yaml``: ``module_name: orchestration.celery``), loaded by Dagster,
    not at import."""
    return celery_definitions()
