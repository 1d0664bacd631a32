"""The collector's pure parts: body decoding, per-message judgement, and its options."""

from __future__ import annotations

import gzip
import secrets

import orjson
import pytest

from lake.collector import CollectorConfig
from lake.collector.protocol import BodyDecoder, RequestRejected, parse_body, prepare
from lake.errors import ConfigError, GrowthlakeError
from orchestration.cli import build_parser
from orchestration.cli_collect import config_from_args

RECEIVED = "2026-11-02T05:10:01.000Z"


def _decode(chunks: list[bytes], limit: int = 1 << 20, encoding: str = "gzip") -> bytes:
    decoder = BodyDecoder(encoding, limit)
    for chunk in chunks:
        decoder.feed(chunk)
    return decoder.finish()


def test_every_gzip_member_is_decoded_whatever_the_chunking():
    raw = orjson.dumps({"batch": [{"type": "track", "event": "E", "userId": str(i)} for i in range(50)]})
    body = b"".join(gzip.compress(raw[i:i + 100]) for i in range(0, len(raw), 100))  # many members
    for size in (1, 7, 64, len(body)):
        assert _decode([body[i:i + size] for i in range(0, len(body), size)]) == raw


# mtime=0: gzip stamps the time into its header, and test ids must be the same in every xdist worker.
_GZ = gzip.compress(b"{}", mtime=0)


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "gzip body is empty"),
    (_GZ[:-3], "truncated"),
    (_GZ + _GZ[:5], "truncated"),
    (_GZ + b"\x00\x00", "after 1 complete member"),
    (b"plain text", "not valid gzip"),
], ids=["empty", "truncated-member", "truncated-second-member", "trailing-zeros", "not-gzip"])
def test_a_broken_gzip_body_is_400(body, reason):
    with pytest.raises(RequestRejected) as exc:
        _decode([body])
    assert exc.value.status == 400 and reason in exc.value.message


def test_decompression_stops_at_the_limit():
    bomb = gzip.compress(b" " * (20 << 20))  # 20 MB of output from ~20 KB
    decoder = BodyDecoder("gzip", 64 * 1024)
    with pytest.raises(RequestRejected) as exc:
        decoder.feed(bomb)
    assert exc.value.status == 413 and "decompressed body exceeds 64 KB" in exc.value.message
    assert decoder.size == 64 * 1024 + 1  # one byte past the limit, never more
    with pytest.raises(RequestRejected) as exc:
        BodyDecoder("br", 1024)
    assert exc.value.status == 400 and isinstance(exc.value, GrowthlakeError)


def test_each_message_is_judged_on_its_own():
    body = parse_body(orjson.dumps({"batch": [
        {"type": "track", "event": "E", "userId": "u1", "messageId": "m1"},
        {"type": ["track"], "userId": "u2", "messageId": "m2"},
        {"type": "track", "event": "E", "messageId": 7},
        {"type": "identify", "userId": "u4", "properties": {"x": "y" * 2000}},
    ], "sentAt": RECEIVED, "context": {"locale": "en-GB"}}))
    prepared = prepare(body, "batch", received_iso=RECEIVED, peer_ip="203.0.113.9", max_message_bytes=1024)
    assert [orjson.loads(line)["messageId"] for line in prepared.lines] == ["m1"]
    assert [(r.index, r.message_id, r.status) for r in prepared.rejected] == [(1, "m2", 400), (2, "7", 400),
                                                                              (3, None, 413)]
    assert prepared.failure() is None  # one landed: 200, with the rejections listed
    assert orjson.loads(prepared.lines[0])["context"] == {"locale": "en-GB", "ip": "203.0.113.9"}
    only_bad = prepare({"batch": [{"type": "identify", "userId": "u4", "properties": {"x": "y" * 2000}}]}, "batch",
                       received_iso=RECEIVED, peer_ip=None, max_message_bytes=1024)
    assert only_bad.failure().status == 413


def test_collect_options_build_the_config(monkeypatch):
    key = secrets.token_hex(16)
    monkeypatch.setenv("GROWTHLAKE_WRITE_KEYS", key)
    parser = build_parser()
    assert config_from_args(parser.parse_args(["collect"])) == CollectorConfig(write_keys=frozenset({key}))
    args = parser.parse_args(["collect", "--header-timeout-s", "2.5", "--body-timeout-s", "30", "--idle-timeout-s",
                              "5", "--max-connections-per-ip", "0", "--max-unauthenticated-kb", "8"])
    config = config_from_args(args)
    assert (config.header_timeout_s, config.body_timeout_s, config.idle_timeout_s) == (2.5, 30, 5)
    assert (config.max_connections_per_ip, config.max_unauthenticated_bytes) == (0, 8 * 1024)
    for bad in ({"header_timeout_s": 0}, {"body_timeout_s": -1}, {"idle_timeout_s": float("nan")},
                {"max_connections_per_ip": -1}, {"max_unauthenticated_bytes": 0}):
        with pytest.raises(ConfigError):
            CollectorConfig(write_keys=frozenset({key}), **bad)
