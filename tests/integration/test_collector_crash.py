"""``kill -9`` of a loaded collector: every acknowledged event is in the landing zone, no partial
file is ever visible, and after the clients' retries ingestion keeps each event exactly once."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from deltalake import DeltaTable

from lake.ingest import ingest_partition, list_landing_partitions
from lake.ledger import verify_partition
from tests.collector_helpers import landed

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CLIENTS, PER_BATCH = 4, 50


def _start(root: str, key: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, GROWTHLAKE_WRITE_KEYS=key,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "collect", "--root", root, "--port", "0",
                             "--linger-ms", "5"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert found, f"collector did not start: {line!r}"
    return proc, found.group(0)


def _batch() -> list[dict]:
    consent = {"consent": {"categoryPreferences": {"Analytics": True}}}
    return [{"type": "track", "event": "Feature Used", "userId": f"u{i % 97}", "messageId": str(uuid.uuid4()),
             "properties": {"feature": "api"}, "context": consent} for i in range(PER_BATCH)]


def test_kill_minus_9_under_load_loses_no_acknowledged_event(paths, plan, masker):
    key = secrets.token_hex(16)
    proc, url = _start(paths.root, key)
    acked: list[str] = []
    unacked: list[list[dict]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            batch = _batch()
            try:
                resp = session.post(f"{url}/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=10)
                ok = resp.status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                (acked.extend(m["messageId"] for m in batch) if ok else unacked.append(batch))
            if not ok:
                return  # the collector is gone: an SDK would keep the batch and retry it later

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are being received, written and renamed
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(acked) >= 3000 and unacked, (len(acked), len(unacked))

    # Every acknowledged event is there; nothing partial is visible to ingestion.
    lines = landed(paths)
    assert set(acked) <= {m["messageId"] for m in lines}
    spool = Path(paths.root) / "landing" / "_collector"
    dead = [p for p in spool.iterdir() if p.is_dir()]
    assert len(dead) == 1  # the killed process's spool (temp files are never inside landing/events)

    # Restart: the dead spool (never acknowledged) is removed; the clients retry what was not acknowledged.
    proc, url = _start(paths.root, key)
    try:
        assert not dead[0].exists()
        session = requests.Session()
        for batch in unacked:
            assert session.post(f"{url}/v1/batch", json={"batch": batch}, auth=(key, ""), timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    sent = set(acked) | {m["messageId"] for b in unacked for m in b}
    lines = landed(paths)
    landed_ids = [m["messageId"] for m in lines]
    assert set(landed_ids) == sent
    assert not list(spool.rglob("*.jsonl"))

    # Ingestion keeps each event once: redeliveries (landed before the kill, retried after) are duplicates.
    keys = list_landing_partitions(paths)
    ledgers = [ingest_partition(paths, k, plan=plan, masker=masker).ledger for k in keys]
    assert sum(led.lines_landed for led in ledgers) == len(landed_ids)
    assert sum(led.bronze_rows for led in ledgers) == len(sent)
    assert sum(led.duplicates_dropped for led in ledgers) == len(landed_ids) - len(sent)
    assert all(verify_partition(paths, k).ok for k in keys)
    print(f"acknowledged before kill -9: {len(acked)}, unacknowledged batches retried: {len(unacked)}, "
          f"landed lines: {len(landed_ids)}, distinct: {len(sent)}, duplicates dropped at ingestion: "
          f"{len(landed_ids) - len(sent)}")
    ids = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id"])["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(sent)
