"""Normalize landing hours column-wise, on every core when they are large.

Lines are read a chunk at a time and normalized by :class:`lake.ingest.columnar.ColumnarNormalizer`
(the contract, consent and PII masking as column expressions; the lines only Python judges go to
the per-line reference, and are counted). Decoding is still one orjson call per line and
CPU-bound: a big hour — or a range of hours ingested in one pass — is split into line ranges of its
files, each range normalized in a worker process, and the pieces are concatenated back in (hour,
file, line) order — the same result as the serial path, row for row. Small batches stay in-process:
starting workers would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from lake.contracts.plan import TrackingPlan
from lake.ingest.columnar import ColumnarNormalizer, gc_paused
from lake.ingest.formats import converters_for
from lake.ingest.normalize import ConsentRevocation, NormalizedBatch, Normalizer, partition_counts
from lake.landing import LandingFile, iter_line_batches, iter_lines
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.settings import NormalizerKind
from lake.settings import current as current_settings

__all__ = ["normalize_files", "normalize_hours", "runs_in_parallel", "shutdown_pool",
           "COLUMNAR_MIN_BYTES", "PARALLEL_MIN_BYTES"]

# Below this many bytes in a partition, normalize in-process (~30k events); the setting
# GROWTHLAKE_PARALLEL_MIN_BYTES (lake.settings) overrides it, this attribute overrides both in tests.
PARALLEL_MIN_BYTES: int | None = None
# Below this many bytes (~14k lines), a partition is normalized per line even with the columnar
# normalizer: the columns cost ~10 ms a batch whatever its size, more than they save on a small one
# (BENCHMARKS.md, "Column-wise normalization"). Tests set it to 0 to run the columns on small lakes.
COLUMNAR_MIN_BYTES = 8 << 20
_POOL: ProcessPoolExecutor | None = None


@dataclass(frozen=True)
class _Chunk:
    root: str
    key: str
    file: LandingFile
    first_line: int  # 1-based, inclusive
    last_line: int | None  # inclusive; None: to the end
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # a Segment file's mapper


def _workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:
        # forkserver: never fork a process that runs Dagster/GX/delta-rs threads.
        _POOL = ProcessPoolExecutor(max_workers=_workers(), mp_context=mp.get_context("forkserver"))
    return _POOL


def shutdown_pool() -> None:
    """Stop the worker processes, if any were started.

    The interpreter's exit stops them; a process that ends with ``os._exit`` (the CLI) must call
    this first, or the workers outlive it, holding its stdout and stderr open.
    """
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


class _PerLine:
    """The per-line reference behind the interface of :class:`ColumnarNormalizer` (``per_line``)."""

    def __init__(self, plan: TrackingPlan, masker: PiiMasker, *, ingested_at: datetime | None = None,
                 max_line_bytes: int) -> None:
        self.reference = Normalizer(plan, masker, ingested_at=ingested_at, max_line_bytes=max_line_bytes)
        self.max_line_bytes = max_line_bytes
        self.ingested_at = self.reference.ingested_at
        self.fed = 0

    def add_lines(self, lines: list[bytes], source_file: str, first_line: int, landing_partition: str,
                  convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.fed += len(lines)
        for i, raw in enumerate(lines):
            self.reference.add_line(raw, source_file, first_line + i, landing_partition, convert)

    def finish(self) -> NormalizedBatch:
        batch = self.reference.finish()
        batch.python_fallback_lines = self.fed  # every line went through the per-line path
        return batch


def _normalizer(kind: NormalizerKind, plan: TrackingPlan, masker: PiiMasker, *, ingested_at: datetime | None = None,
                max_line_bytes: int) -> ColumnarNormalizer | _PerLine:
    if kind == "per_line":
        return _PerLine(plan, masker, ingested_at=ingested_at, max_line_bytes=max_line_bytes)
    return ColumnarNormalizer(plan, masker, ingested_at=ingested_at, max_line_bytes=max_line_bytes)


def _add_file(norm: ColumnarNormalizer | _PerLine, paths: LakePaths, key: str, file: LandingFile,
              convert: Callable[[dict[str, Any]], dict[str, Any]] | None, *, first_line: int = 1,
              last_line: int | None = None) -> None:
    """Feed lines ``first_line`` to ``last_line`` (inclusive; None: to the end) of one file."""
    for number, lines in iter_line_batches(paths, file, max_line_bytes=norm.max_line_bytes):
        end = number + len(lines) - 1
        if end < first_line:
            continue
        if last_line is not None and number > last_line:
            break
        lo = max(0, first_line - number)
        hi = len(lines) if last_line is None else min(len(lines), last_line - number + 1)
        norm.add_lines(lines[lo:hi], file.relative, number + lo, key, convert)


def _normalize_chunk(chunk: _Chunk, plan: TrackingPlan, key: bytes, ingested_at: datetime, spool: str,
                     max_line_bytes: int, kind: NormalizerKind) -> tuple[int, int, str, str, list[ConsentRevocation],
                                                                       int]:
    """Normalize one chunk in a worker; hand the tables back as Arrow IPC files in ``spool``
    (memory-mapped by the parent: no copy through the pipe)."""
    paths = LakePaths(chunk.root)
    norm = _normalizer(kind, plan, PiiMasker(key), ingested_at=ingested_at, max_line_bytes=max_line_bytes)
    with gc_paused():
        _add_file(norm, paths, chunk.key, chunk.file, chunk.convert, first_line=chunk.first_line,
                  last_line=chunk.last_line)
        batch = norm.finish()
    out = []
    for name, table in (("bronze", batch.bronze), ("quarantine", batch.quarantine)):
        fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".arrow", dir=spool)
        with os.fdopen(fd, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        out.append(path)
    return batch.lines_landed, batch.consent_dropped, out[0], out[1], batch.revocations, batch.python_fallback_lines


def _read_spooled(path: str) -> pa.Table:
    table = pa.ipc.open_file(pa.memory_map(path)).read_all()
    os.unlink(path)  # the mapping stays valid until the table is released
    return table


def _count_lines(paths: LakePaths, file: LandingFile) -> int:
    return sum(1 for _ in iter_lines(paths, file, max_line_bytes=0))  # only the count matters


def _chunks(paths: LakePaths, files: list[tuple[str, LandingFile]], parts: int, converts: list) -> list[_Chunk]:
    if len(files) >= parts:
        return [_Chunk(paths.root, key, f, 1, None, c) for (key, f), c in zip(files, converts, strict=True)]
    out = []
    per_file = max(1, parts // max(1, len(files)))
    for (key, f), c in zip(files, converts, strict=True):
        if per_file == 1:
            out.append(_Chunk(paths.root, key, f, 1, None, c))
            continue
        n = _count_lines(paths, f)
        step = -(-n // per_file)
        for lo in range(1, n + 1, step):
            out.append(_Chunk(paths.root, key, f, lo, min(n, lo + step - 1), c))
    return out


def runs_in_parallel(files: list[LandingFile]) -> bool:
    """Whether :func:`normalize_files` will use worker processes for these files."""
    threshold = PARALLEL_MIN_BYTES if PARALLEL_MIN_BYTES is not None else current_settings().parallel_min_bytes
    return sum(f.size for f in files) >= threshold and _workers() >= 2


def normalize_files(paths: LakePaths, key: str, files: list[LandingFile], *, plan: TrackingPlan,
                    masker: PiiMasker) -> NormalizedBatch:
    """Normalize every line of ``files`` (one landing partition), in parallel when it pays."""
    return normalize_hours(paths, {key: files}, plan=plan, masker=masker)


def normalize_hours(paths: LakePaths, files: dict[str, list[LandingFile]], *, plan: TrackingPlan,
                    masker: PiiMasker) -> NormalizedBatch:
    """Normalize every line of several landing hours at once, in parallel when it pays.

    Column-wise (:class:`lake.ingest.columnar.ColumnarNormalizer`): the result equals the per-line
    reference's row for row. ``python_fallback_lines`` counts the lines that reference normalized:
    those only it can judge, or all of them when the batch is smaller than
    :data:`COLUMNAR_MIN_BYTES` or ``GROWTHLAKE_NORMALIZER=per_line`` (``paths.settings.normalizer``).

    Args:
        paths: the lake's locations.
        files: each hour's batch files (hour key -> its files, sorted), in hour order.
        plan: the tracking plan to enforce.
        masker: the keyed pseudonymizer.

    Returns:
        One batch for all the hours: its rows carry their hour (``_landing_partition``,
        ``landing_partition``) and come in (hour, file, line) order; ``by_partition`` holds each
        hour's line and consent counts (an hour without lines is absent).
    """
    limit = paths.settings.max_line_bytes  # longer lines are quarantined unread (line_too_long)
    flat = [(key, f) for key, hour_files in files.items() for f in hour_files]
    kind = paths.settings.normalizer
    if sum(f.size for _, f in flat) < COLUMNAR_MIN_BYTES:
        kind = "per_line"  # too small for the columns to pay off
    norm = _normalizer(kind, plan, masker, max_line_bytes=limit)
    converts = converters_for(paths, [f for _, f in flat], plan=plan)  # format detected once per file
    if not runs_in_parallel([f for _, f in flat]):
        with gc_paused():
            for (key, f), convert in zip(flat, converts, strict=True):
                _add_file(norm, paths, key, f, convert)
            return norm.finish()
    chunks = _chunks(paths, flat, _workers() * 2, converts)
    n = len(chunks)
    with tempfile.TemporaryDirectory(prefix="growthlake-normalize-") as spool:
        parts = list(_pool().map(_normalize_chunk, chunks, [plan] * n, [masker.key] * n, [norm.ingested_at] * n,
                                 [spool] * n, [limit] * n, [kind] * n))
        lines: Counter[str] = Counter()
        consent: Counter[str] = Counter()
        for chunk, part in zip(chunks, parts, strict=True):
            lines[chunk.key] += part[0]
            consent[chunk.key] += part[1]
        return NormalizedBatch(
            lines_landed=sum(p[0] for p in parts),
            consent_dropped=sum(p[1] for p in parts),
            bronze=pa.concat_tables([_read_spooled(p[2]) for p in parts]),
            quarantine=pa.concat_tables([_read_spooled(p[3]) for p in parts]),
            revocations=[r for p in parts for r in p[4]],  # in (hour, file, line) order, like the rows
            python_fallback_lines=sum(p[5] for p in parts),
            by_partition=partition_counts(lines, consent),
        )
