"""The collector's HTTP contract, over a real socket on 127.0.0.1: what it lands, refuses and defers."""

from __future__ import annotations

import gzip
import secrets
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
import requests

from lake.collector import CollectorConfig, start_in_thread, write_keys_from_env
from lake.errors import ConfigError
from lake.ingest import list_landing_files, list_landing_partitions

KEY = secrets.token_hex(16)


def _msg(i: int = 0, **fields) -> dict:
    return {"type": "track", "event": "Feature Used", "userId": f"u{i}", "messageId": str(uuid.uuid4()),
            "properties": {"feature": "api"}, "timestamp": "2026-11-02T05:10:00.000Z"} | fields


def _landed(paths) -> list[dict]:
    out = []
    for key in list_landing_partitions(paths):
        for f in list_landing_files(paths, key):
            data = Path(f.path).read_bytes()
            assert data.endswith(b"\n"), f"{f.relative} is not a complete batch"
            out += [orjson.loads(line) for line in data.splitlines()]
    return out


@pytest.fixture
def collector(paths):
    with start_in_thread(paths, CollectorConfig(write_keys=frozenset({KEY, secrets.token_hex(16)}), port=0,
                                                linger_ms=5)) as running:
        yield running


def _post(collector, path: str, body, *, key: str | None = KEY, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(collector.url + path, data=data, auth=(key, "") if key else None,
                         headers={"Content-Type": "application/json"} | (headers or {}), timeout=10)


def test_batch_is_landed_in_segment_format_before_the_ack(paths, collector):
    sent = [_msg(i) for i in range(3)] + [{"type": "identify", "userId": "u0", "anonymousId": "a0",
                                           "traits": {"email": "ada@example.com"}, "messageId": "id-1"}]
    res = _post(collector, "/v1/batch", {"batch": sent, "sentAt": "2026-11-02T05:10:00.500Z",
                                         "writeKey": KEY, "context": {"locale": "en-GB"}})
    assert res.status_code == 200 and res.json() == {"success": True}
    lines = _landed(paths)  # visible as soon as the request was acknowledged
    assert [m["messageId"] for m in lines] == [m["messageId"] for m in sent]
    first = lines[0]
    assert first["receivedAt"].endswith("Z") and first["originalTimestamp"] == "2026-11-02T05:10:00.000Z"
    assert first["sentAt"] == "2026-11-02T05:10:00.500Z"
    assert first["context"] == {"locale": "en-GB", "ip": "127.0.0.1"}
    assert not any("writeKey" in m for m in lines) and KEY not in str(lines)
    key = list_landing_partitions(paths)[0]
    assert key == first["receivedAt"][:10] + "-" + first["receivedAt"][11:13] + ":00"  # the hour of receipt
    assert not list((Path(paths.root) / "landing" / "_collector").rglob("*.jsonl"))  # no temp file left


@pytest.mark.parametrize("kind", ["track", "identify", "page", "screen", "alias", "group"])
def test_single_message_endpoints(paths, collector, kind):
    body = {"userId": "u1", "anonymousId": "a1", "event": "Feature Used", "previousId": "a0", "groupId": "g1",
            "messageId": f"m-{kind}"}
    assert _post(collector, f"/v1/{kind}", body).status_code == 200
    [line] = _landed(paths)
    assert (line["type"], line["messageId"]) == (kind, f"m-{kind}")
    assert line["timestamp"] == line["receivedAt"]  # no client time: the time of receipt


def test_gzip_body_and_key_in_the_body(paths, collector):
    body = gzip.compress(orjson.dumps({"batch": [_msg(1), _msg(2)], "writeKey": KEY}))
    res = _post(collector, "/v1/batch", body, key=None, headers={"Content-Encoding": "gzip"})
    assert res.status_code == 200, res.text
    assert len(_landed(paths)) == 2


def test_missing_message_id_is_derived_from_the_message_so_a_retry_keeps_it(paths, collector):
    msg = _msg(1)
    del msg["messageId"]
    for sent_at in ("2026-11-02T05:10:01Z", "2026-11-02T05:10:09Z"):  # the SDK's retry: same message, new sentAt
        assert _post(collector, "/v1/batch", {"batch": [dict(msg)], "sentAt": sent_at}).status_code == 200
    ids = [m["messageId"] for m in _landed(paths)]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0].startswith("gl-")


@pytest.mark.parametrize(("key", "headers"), [
    (None, {}),  # no key at all
    ("not-a-key-not-a-key", {}),
    (None, {"Authorization": "Bearer abc"}),
    (None, {"Authorization": "Basic %%%"}),
])
def test_unknown_write_key_is_401(paths, collector, key, headers):
    res = _post(collector, "/v1/batch", {"batch": [_msg()]}, key=key, headers=headers)
    assert res.status_code == 401 and res.json()["code"] == "unauthorized"
    assert res.headers["WWW-Authenticate"].startswith("Basic")
    assert _landed(paths) == []


@pytest.mark.parametrize(("body", "headers", "reason"), [
    (b"{not json", {}, "not JSON"),
    (b"[1, 2]", {}, "JSON object"),
    ({"batch": {"type": "track"}}, {}, "`batch` array"),
    ({"batch": [_msg(), "nope"]}, {}, "batch[1] is not a JSON object"),
    ({"batch": [_msg(), _msg(type="purchase")]}, {}, "batch[1].type"),
    ({"batch": [_msg(userId=None)]}, {}, "userId or an anonymousId"),
    ({"batch": [_msg(event="")]}, {}, "event name"),
    ({"batch": [_msg(userId={"id": 1})]}, {}, "userId must be"),
    ({"batch": [{"type": "alias", "userId": "u1"}]}, {}, "previousId"),
    (b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}, "gzip"),
    (b"{}", {"Content-Encoding": "br"}, "not supported"),
])
def test_malformed_payload_is_400_with_a_reason_and_nothing_lands(paths, collector, body, headers, reason):
    res = _post(collector, "/v1/batch", body, headers=headers)
    assert res.status_code == 400, res.text
    assert reason in res.json()["message"]
    assert _landed(paths) == []


def test_oversized_bodies_are_413(paths, collector):
    big = _msg(properties={"blob": "x" * (33 * 1024)})
    res = _post(collector, "/v1/batch", {"batch": [_msg(), big]})
    assert res.status_code == 413 and "batch[1]" in res.json()["message"]
    res = _post(collector, "/v1/batch", {"batch": [_msg(i, properties={"blob": "y" * 20_000}) for i in range(30)]})
    assert res.status_code == 413  # 600 KB > 500 KB per batch
    res = _post(collector, "/v1/track", _msg(properties={"blob": "z" * (40 * 1024)}))
    assert res.status_code == 413  # one message: 32 KB
    bomb = gzip.compress(orjson.dumps({"batch": [_msg(i, properties={"pad": " " * 30_000}) for i in range(40)]}))
    assert len(bomb) < 50_000
    res = _post(collector, "/v1/batch", bomb, headers={"Content-Encoding": "gzip"})
    assert res.status_code == 413 and "decompressed" in res.json()["message"]
    assert _landed(paths) == []


def test_backpressure_refuses_with_retry_after_instead_of_buffering(paths):
    config = CollectorConfig(write_keys=frozenset({KEY}), port=0, max_batch_bytes=64 * 1024,
                             max_inflight_bytes=64 * 1024, linger_ms=800)
    batch = {"batch": [_msg(i, properties={"feature": "api", "pad": "p" * 4000}) for i in range(10)]}  # ~42 KB
    with start_in_thread(paths, config) as running:
        assert _post(running, "/v1/batch", {"batch": [_msg(0)]}).status_code == 200  # idle: committed at once
        first: list[requests.Response] = []
        t = threading.Thread(target=lambda: first.append(_post(running, "/v1/batch", batch)))
        t.start()
        time.sleep(0.3)  # admitted, it waits for the next commit (at most one per 800 ms linger)
        refused = _post(running, "/v1/batch", {"batch": [_msg(i, properties={"pad": "q" * 4000}) for i in range(10)]})
        t.join()
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert first[0].status_code == 200
        retried = _post(running, "/v1/batch", {"batch": [_msg(99)]})  # once the first landed, there is room again
        assert retried.status_code == 200
    assert len(_landed(paths)) == 12
    assert running.collector.stats.rejected == {429: 1}


def test_concurrent_requests_share_landing_files(paths):
    config = CollectorConfig(write_keys=frozenset({KEY}), port=0, linger_ms=400)
    with start_in_thread(paths, config) as running:
        assert _post(running, "/v1/batch", {"batch": [_msg(0)]}).status_code == 200  # idle: its own file, at once
        codes: list[int] = []
        threads = [threading.Thread(target=lambda i=i: codes.append(
            _post(running, "/v1/batch", {"batch": [_msg(i), _msg(i)]}).status_code)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes == [200] * 12
    assert len(_landed(paths)) == 25
    files = [f for k in list_landing_partitions(paths) for f in list_landing_files(paths, k)]
    assert len(files) <= 3  # one commit per linger interval, not one file per request


def test_write_keys_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("GROWTHLAKE_WRITE_KEYS", raising=False)
    with pytest.raises(ConfigError, match="GROWTHLAKE_WRITE_KEYS"):
        write_keys_from_env()
    monkeypatch.setenv("GROWTHLAKE_WRITE_KEYS", "short")
    with pytest.raises(ConfigError, match="shorter"):
        write_keys_from_env()
    a, b = secrets.token_hex(16), secrets.token_hex(16)
    monkeypatch.setenv("GROWTHLAKE_WRITE_KEYS", f" {a}, {b} ,")
    config = CollectorConfig.from_env(port=0)
    assert config.write_keys == {a, b} and config.accepts(b) and not config.accepts(a[:-1])
    assert a not in repr(config)
