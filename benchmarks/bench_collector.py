"""Benchmark ``growthlake collect`` (events/s held with zero loss) and the Segment ingestion path.

    python benchmarks/bench_collector.py [--events 200000] [--batch 100] [--clients 4]
    python benchmarks/bench_collector.py --ingest [--users 4000]     # Segment-path vs canonical ingestion

Collector: the collector runs as its own process (the CLI, 127.0.0.1, a fresh root); ``--clients``
concurrent HTTP clients send ``--events`` Segment track messages in ``/v1/batch`` requests of
``--batch`` messages (a request refused with 429 is retried after its Retry-After, as the SDKs do).
Prints acknowledged events/s, request latency, landing files, and checks zero loss: the landed
lines are counted and must equal the acknowledged messages, every id once.

``--ingest``: the simulator's week for ``--users`` visitors, landed twice into one landing hour —
as canonical lines and converted to Segment messages (same events, faults and consent) — and each
ingested into a fresh lake in this process; prints events/s of both paths.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from lake.ingest import list_landing_files, list_landing_partitions  # noqa: E402
from lake.paths import LakePaths  # noqa: E402


# -- collector throughput ----------------------------------------------------------------------------
def _start_collector(root: str, key: str, linger_ms: float) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, GROWTHLAKE_WRITE_KEYS=key,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "collect", "--root", root, "--port", "0",
                             "--linger-ms", str(linger_ms)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    return proc, found.group(0)


def _bodies(events: int, batch: int) -> list[tuple[bytes, list[str]]]:
    ctx = {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) Safari/605.1.15",
           "locale": "en-US", "library": {"name": "analytics-python", "version": "2.4.0"},
           "consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
    out = []
    for lo in range(0, events, batch):
        msgs = [{"type": "track", "event": "Feature Used", "messageId": str(uuid.uuid4()), "userId": f"usr-{i % 5000}",
                 "anonymousId": f"anon-{i % 7000}", "properties": {"feature": "dashboards", "duration_s": 12.5},
                 "timestamp": "2026-11-02T05:10:00.000Z", "context": ctx}
                for i in range(lo, min(events, lo + batch))]
        out.append((orjson.dumps({"batch": msgs, "sentAt": "2026-11-02T05:10:00.100Z"}),
                    [m["messageId"] for m in msgs]))
    return out


async def _send(url: str, key: str, bodies: list[tuple[bytes, list[str]]], clients: int):
    import aiohttp

    queue: asyncio.Queue = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    acked: list[str] = []
    latencies: list[float] = []
    refused = 0
    headers = {"Content-Type": "application/json", "Authorization": aiohttp.encode_basic_auth(key, "")}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal refused
        while not queue.empty():
            body, ids = queue.get_nowait()
            while True:
                t0 = time.perf_counter()
                async with session.post(f"{url}/v1/batch", data=body, headers=headers) as res:
                    await res.read()
                    if res.status == 200:
                        latencies.append(time.perf_counter() - t0)
                        acked.extend(ids)
                        break
                    if res.status in (429, 503):
                        refused += 1
                        await asyncio.sleep(float(res.headers.get("Retry-After", "1")))
                        continue
                    raise SystemExit(f"unexpected {res.status}: {await res.text()}")

    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return acked, latencies, refused, wall


def bench_collector(events: int, batch: int, clients: int, linger_ms: float, base: Path) -> None:
    key = secrets.token_hex(16)
    paths = LakePaths.from_root(base / "collector")
    proc, url = _start_collector(paths.root, key, linger_ms)
    try:
        bodies = _bodies(events, batch)
        acked, latencies, refused, wall = asyncio.run(_send(url, key, bodies, clients))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    landed: list[str] = []
    files = 0
    for key_ in list_landing_partitions(paths):
        for f in list_landing_files(paths, key_):
            files += 1
            landed += [orjson.loads(line)["messageId"] for line in Path(f.path).read_bytes().splitlines()]
    zero_loss = len(landed) == len(acked) == events and set(landed) == set(acked)
    lat = sorted(latencies)
    print(f"collector (linger {linger_ms:g} ms): {events:,} events in {len(bodies):,} requests of {batch} from "
          f"{clients} clients: {wall:.2f}s  "
          f"{len(acked) / wall:,.0f} events/s acknowledged  {len(bodies) / wall:,.0f} requests/s")
    print(f"collector: latency p50 {statistics.median(lat) * 1000:.1f} ms  "
          f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms  "
          f"429 retries {refused}  landing files {files}")
    print(f"collector: landed lines {len(landed):,} == acknowledged {len(acked):,}: "
          f"{'zero loss' if zero_loss else 'LOSS OR DUPLICATES'}")
    if not zero_loss:
        raise SystemExit(1)


# -- Segment-path vs canonical ingestion -------------------------------------------------------------
def _to_segment(raw: bytes) -> bytes:
    """A canonical line as the Segment message carrying the same event (faulty lines stay as they are)."""
    try:
        ev = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if type(ev) is not dict:
        return raw
    name = ev.get("event_name")
    ctx = ev.get("context") if type(ev.get("context")) is dict else {}
    consent = ctx.get("consent") if type(ctx.get("consent")) is dict else {}
    msg = {"type": "page" if name == "page_viewed" else "track", "userId": ev.get("user_id"),
           "anonymousId": ev.get("anonymous_id"), "properties": ev.get("properties"), "timestamp": ev.get("timestamp"),
           "originalTimestamp": ev.get("timestamp"), "sentAt": ev.get("received_at"),
           "receivedAt": ev.get("received_at"), "integrations": {}, "channel": "client",
           "context": {"ip": ctx.get("ip"), "userAgent": ctx.get("user_agent"), "locale": ctx.get("locale"),
                       "library": {"name": "analytics.js", "version": "5.2.0"},
                       "consent": {"categoryPreferences": {"Analytics": consent.get("analytics") is True,
                                                           "Advertising": consent.get("marketing") is True}}}}
    if name != "page_viewed":
        msg["event"] = " ".join(w.capitalize() for w in str(name).split("_"))  # "User Signed Up"
    if "event_id" in ev:
        msg["messageId"] = ev["event_id"]
    return orjson.dumps(msg)


def bench_ingest(users: int, base: Path) -> None:
    from lake.contracts import load_plan
    from lake.ingest import ingest_partition
    from lake.pii import PiiMasker
    from simulation import simulate

    sim = LakePaths.from_root(base / "sim")
    s = simulate(sim.root, users=users, days=7, seed=1, start=date(2026, 11, 2))
    key = list_landing_partitions(sim)[-1]
    lakes = {}
    for fmt in ("canonical", "segment"):
        lake = LakePaths.from_root(base / fmt)
        target = Path(lake.landing_events) / f"date={key[:10]}" / f"hour={key[11:13]}"
        target.mkdir(parents=True)
        for i, f in enumerate(sorted(Path(sim.landing_events).rglob("*.jsonl"))):
            data = f.read_bytes()
            if fmt == "segment":
                data = b"\n".join(_to_segment(line) if line else line for line in data.split(b"\n"))
            (target / f"{i:04d}-{f.name}").write_bytes(data)
        lakes[fmt] = lake
    plan, masker = load_plan(), PiiMasker(os.environ["GROWTHLAKE_PII_KEY"].encode())
    warm = LakePaths.from_root(base / "warm-up")
    shutil.copytree(Path(lakes["canonical"].landing_events), Path(warm.landing_events))
    ingest_partition(warm, key, plan=plan, masker=masker)  # imports GX, starts the worker pool
    print(f"ingest: {s.lines_written:,} simulated lines in one landing hour (warm process)")
    for fmt, lake in lakes.items():
        size = sum(f.size for f in list_landing_files(lake, key))
        t0 = time.perf_counter()
        led = ingest_partition(lake, key, plan=plan, masker=masker).ledger
        wall = time.perf_counter() - t0
        assert led.reconciled, led.summary()
        print(f"ingest {fmt:<9}: {led.lines_landed:,} lines ({size / 1e6:,.0f} MB) -> bronze {led.bronze_rows:,}, "
              f"quarantined {led.quarantined:,}, consent {led.consent_dropped:,}, dups {led.duplicates_dropped:,}: "
              f"{wall:.2f}s  {led.lines_landed / wall:,.0f} events/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100, help="messages per request (the SDKs' default: 100)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    ap.add_argument("--linger-ms", type=float, default=50.0, help="the collector's commit interval (its default: 50)")
    ap.add_argument("--ingest", action="store_true", help="also compare Segment-path and canonical ingestion")
    ap.add_argument("--users", type=int, default=4000, help="simulated visitors for --ingest (~50 lines each)")
    args = ap.parse_args(argv)
    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))  # a throwaway key for the run
    base = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    try:
        bench_collector(args.events, args.batch, args.clients, args.linger_ms, base)
        if args.ingest:
            bench_ingest(args.users, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
