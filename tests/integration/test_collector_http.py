"""The collector's HTTP contract, over a real socket on 127.0.0.1: what it lands, refuses and defers."""

from __future__ import annotations

import gzip
import random
import secrets
import threading
import time
from pathlib import Path

import orjson
import pytest
import requests

from lake.collector import CollectorConfig, start_in_thread, write_keys_from_env
from lake.errors import ConfigError
from lake.ingest import ingest_partition, list_landing_files, list_landing_partitions
from tests.collector_helpers import landed as _landed
from tests.collector_helpers import msg as _msg
from tests.collector_helpers import nested, post

KEY = secrets.token_hex(16)


@pytest.fixture
def collector(paths):
    with start_in_thread(paths, CollectorConfig(write_keys=frozenset({KEY, secrets.token_hex(16)}), port=0,
                                                linger_ms=5)) as running:
        yield running


def _post(collector, path: str, body, *, key: str | None = KEY, headers: dict | None = None) -> requests.Response:
    return post(collector, path, body, key=key, headers=headers, timeout=10)


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
    (None, {"Authorization": "Basic é"}),  # not ASCII (latin-1 on the wire): was a 500
    (None, {"Authorization": "Basic ключ".encode()}),  # not ASCII (UTF-8 on the wire): was a 500
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
    ({"batch": ["nope"]}, {}, "batch[0] is not a JSON object"),  # with good messages beside it: a partial batch
    ({"batch": [_msg(type="purchase")]}, {}, "batch[0].type"),
    ({"batch": [{"type": ["track"], "userId": "u1"}]}, {}, "batch[0].type"),  # unhashable: was a 500
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
    res = _post(collector, "/v1/batch", {"batch": [big]})  # beside good messages it is only listed as rejected
    assert res.status_code == 413 and "batch[0]" in res.json()["message"]
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


def test_a_batch_lands_its_good_messages_and_lists_the_rejected_ones(paths, collector):
    good = [_msg(i) for i in range(3)]
    too_big = _msg(9, properties={"blob": "x" * (33 * 1024)})
    batch = [good[0], "nope", _msg(type="purchase"), good[1], _msg(userId=None, messageId="no-ids"), too_big,
             {"type": {"nested": 1}, "userId": "u1"}, "DEEP", good[2]]
    deep = b'{"type": "track", "event": "Deep", "userId": "u7", "messageId": "deep-1", "properties": ' + \
        nested(300) + b"}"  # parses (orjson reads 1024 levels), but cannot be written back as a line
    res = _post(collector, "/v1/batch", orjson.dumps({"batch": batch}).replace(b'"DEEP"', deep))
    assert res.status_code == 200, res.text
    answer = res.json()
    assert answer["success"] is True
    assert [m["messageId"] for m in _landed(paths)] == [m["messageId"] for m in good]  # the good ones, in order
    rejected = {r["index"]: r for r in answer["rejected"]}
    assert sorted(rejected) == [1, 2, 4, 5, 6, 7]
    assert "batch[1] is not a JSON object" in rejected[1]["message"] and rejected[1]["messageId"] is None
    assert "batch[2].type 'purchase'" in rejected[2]["message"] and rejected[2]["messageId"] == batch[2]["messageId"]
    assert "userId or an anonymousId" in rejected[4]["message"] and rejected[4]["messageId"] == "no-ids"
    assert rejected[5]["code"] == "payload_too_large" and "32 KB per message" in rejected[5]["message"]
    assert "batch[6].type 'dict'" in rejected[6]["message"]
    assert "nest it less than 250 levels" in rejected[7]["message"] and rejected[7]["messageId"] == "deep-1"
    assert {r["code"] for r in answer["rejected"]} <= {"invalid_request", "payload_too_large"}
    assert collector.collector.stats.rejected_messages == 6
    assert collector.collector.stats.acknowledged_messages == 3


def test_a_batch_of_only_bad_messages_is_400_listing_each(paths, collector):
    res = _post(collector, "/v1/batch", {"batch": ["nope", _msg(event="")]})
    assert res.status_code == 400
    answer = res.json()
    assert "batch[0] is not a JSON object" in answer["message"] and "event name" in answer["message"]
    assert [r["index"] for r in answer["rejected"]] == [0, 1]
    assert _landed(paths) == []


def test_a_body_nested_past_the_parser_limit_is_400(paths, collector):
    res = _post(collector, "/v1/batch", b'{"batch": [' + nested(2000) + b"]}")
    assert res.status_code == 400 and "not JSON" in res.json()["message"]
    res = _post(collector, "/v1/track", b'{"userId": "u1", "event": "Deep", "properties": ' + nested(260) + b"}")
    assert res.status_code == 400 and "levels" in res.json()["message"]  # one message: no partial answer
    assert _landed(paths) == []


def test_every_gzip_member_is_read(paths, collector):
    raw = orjson.dumps({"batch": [_msg(1), _msg(2), _msg(3)]})
    cut = len(raw) // 2
    res = _post(collector, "/v1/batch", gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]),
                headers={"Content-Encoding": "gzip"})
    assert res.status_code == 200, res.text  # the second member was dropped: the JSON looked truncated
    assert len(_landed(paths)) == 3
    # Two complete bodies, one per member: not one JSON document (was 200, the second one silently lost).
    twice = gzip.compress(orjson.dumps({"batch": [_msg(4)]})) + gzip.compress(orjson.dumps({"batch": [_msg(5)]}))
    res = _post(collector, "/v1/batch", twice, headers={"Content-Encoding": "gzip"})
    assert res.status_code == 400 and "not JSON" in res.json()["message"]
    res = _post(collector, "/v1/batch", gzip.compress(raw) + b"trailing junk", headers={"Content-Encoding": "gzip"})
    assert res.status_code == 400 and "after 1 complete member" in res.json()["message"]
    res = _post(collector, "/v1/batch", gzip.compress(raw)[:-5], headers={"Content-Encoding": "gzip"})
    assert res.status_code == 400 and "truncated" in res.json()["message"]
    assert len(_landed(paths)) == 3


def test_timestamps_outside_the_calendar_land_and_are_quarantined_at_ingestion(paths, collector, plan, masker):
    consent = {"consent": {"categoryPreferences": {"Analytics": True}}}
    odd = [
        _msg(1, timestamp="0001-01-01T00:30:00+01:00", context=consent),  # before year 1 once in UTC
        _msg(2, timestamp="0001-01-02T00:00:00Z", sentAt="9999-12-31T00:00:00Z", context=consent),  # skew fix overflows
        {"type": "identify", "userId": "u3", "messageId": "revoke-1", "timestamp": "0001-01-01T00:30:00+01:00",
         "context": {"consent": {"categoryPreferences": {"Analytics": False}}}},  # a consent revocation
    ]
    res = _post(collector, "/v1/batch", {"batch": odd})
    assert res.status_code == 200 and "rejected" not in res.json(), res.text
    lines = _landed(paths)
    assert [m["originalTimestamp"] for m in lines] == [m["timestamp"] for m in odd]
    assert lines[0]["timestamp"] == odd[0]["timestamp"]  # landed as sent: no usable correction
    [key] = list_landing_partitions(paths)
    ledger = ingest_partition(paths, key, plan=plan, masker=masker).ledger
    assert (ledger.lines_landed, ledger.quarantined, ledger.consent_dropped) == (3, 2, 1)
    assert ledger.quarantined_by_reason == {"invalid_timestamp": 2}


def test_no_input_is_answered_500(paths, collector):
    """Seeded mutations of a valid batch — bytes, values, headers — all get a 2xx or 4xx with a reason."""
    rng = random.Random(17)
    base = orjson.dumps({"batch": [_msg(i, context={"locale": "en-GB"}) for i in range(3)],
                         "sentAt": "2026-11-02T05:10:00.500Z"})
    odd_values = [None, 0, -1, 2**63, 1e308, "", "é", "\u0000", [], {}, [[[]]], {"": {}}, True,
                  "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-23:59", "2026-13-45T99:99:99Z"]
    keys = ["type", "event", "userId", "anonymousId", "messageId", "timestamp", "sentAt", "context", "properties",
            "batch", "writeKey", "previousId", "groupId", "traits", "originalTimestamp"]
    bodies: list[tuple[str, bytes, dict]] = []
    for _ in range(60):  # one field of one message (or of the body) replaced by an odd value
        body = orjson.loads(base)
        target = body if rng.random() < 0.3 else rng.choice(body["batch"])
        target[rng.choice(keys)] = rng.choice(odd_values)
        bodies.append(("/v1/batch", orjson.dumps(body), {}))
    for _ in range(40):  # bytes flipped, cut or inserted
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[i] = rng.randrange(256)
            elif op < 0.7:
                del data[i:]
            else:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        bodies.append((rng.choice(["/v1/batch", "/v1/track", "/v1/identify", "/v1/alias"]), bytes(data), {}))
    for encoding in ["gzip", "GZIP", "gzip ", "deflate", "gzip, gzip", "é", ""]:
        bodies.append(("/v1/batch", base, {"Content-Encoding": encoding}))
        bodies.append(("/v1/batch", gzip.compress(base), {"Content-Encoding": encoding}))
    for path, data, headers in bodies:
        res = _post(collector, path, data, headers=headers)
        assert res.status_code in (200, 400, 413), (path, data[:200], headers, res.status_code, res.text[:300])
        answer = res.json()
        assert answer.get("success") is True or answer["message"], answer


def test_a_failure_nobody_foresaw_refuses_only_its_message_and_is_logged_as_a_bug(paths, collector, monkeypatch,
                                                                                  caplog):
    import lake.collector.protocol as protocol
    import lake.collector.server as server

    real = protocol.landing_line

    def landing_line(msg, **kw):
        if msg.get("userId") == "boom":
            raise RuntimeError("a bug")
        return real(msg, **kw)

    monkeypatch.setattr(protocol, "landing_line", landing_line)
    res = _post(collector, "/v1/batch", {"batch": [_msg(1), _msg(userId="boom", messageId="m-boom"), _msg(2)]})
    assert res.status_code == 200, res.text
    [rejected] = res.json()["rejected"]
    assert rejected == {"index": 1, "messageId": "m-boom", "code": "invalid_request",
                        "message": "batch[1] could not be processed (RuntimeError)"}
    assert len(_landed(paths)) == 2
    bug = [r for r in caplog.records if r.name == "growthlake.collector" and r.exc_info]
    assert len(bug) == 1 and "collector bug" in bug[0].getMessage()

    def parse_body(data):
        raise RuntimeError("another bug")

    monkeypatch.setattr(server, "parse_body", parse_body)
    res = _post(collector, "/v1/batch", {"batch": [_msg(3)]})
    assert res.status_code == 400 and "could not process this request (RuntimeError)" in res.json()["message"]
    assert len(_landed(paths)) == 2
