"""Pseudonymization: keyed, stable, never the raw value; refuses to run without a key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lake.errors import PiiKeyMissing
from lake.paths import LakePaths
from lake.pii import PiiMasker, looks_like_pii, pii_key_from_env


def test_hash_is_keyed_and_stable():
    a, b = PiiMasker(b"k" * 32), PiiMasker(b"j" * 32)
    assert a.hash("203.0.113.7") == a.hash("203.0.113.7")
    assert a.hash("203.0.113.7") != b.hash("203.0.113.7")
    assert len(a.hash("x")) == 32 and "203" not in a.hash("203.0.113.7")


def test_mask_properties_masks_plan_pii_and_anything_that_looks_like_pii():
    m = PiiMasker(b"k" * 32)
    props = {"email": "ada@example.com", "note": "call me at 10.0.0.1", "path": "/pricing", "n": 3}
    masked = m.mask_properties(props, frozenset({"email"}))
    assert sorted(masked) == ["email", "note"]
    assert props["path"] == "/pricing" and props["n"] == 3
    assert not any(looks_like_pii(str(v)) for v in props.values())


def test_already_masked_fields_are_not_hashed_twice():
    m = PiiMasker(b"k" * 32)
    props = {"email": m.hash("ada@example.com")}
    m.mask_properties(props, frozenset({"email"}), already=frozenset({"email"}))
    assert props["email"] == m.hash("ada@example.com")


def test_mask_text_for_lines_that_are_not_json():
    m = PiiMasker(b"k" * 32)
    out = m.mask_text('{"ip": "198.51.100.23", "e": "eve@example.org", "v": "1.0.0", "h": "' + "a" * 32 + '"')
    assert "198.51.100.23" not in out and "eve@example.org" not in out
    assert "1.0.0" in out and "a" * 32 in out


@pytest.mark.parametrize("value", ["ada@example.com", "10.1.2.3", "host 2001:db8:85a3::8a2e:370:7334 x",
                                   "2001:0db8:85a3:0000:0000:8a2e:0370:7334"])
def test_looks_like_pii(value):
    assert looks_like_pii(value)


@pytest.mark.parametrize("value", ["/pricing", "1.0.0", "v2.3.4-beta", "2026-11-02T05:10:00Z", "10:15:03"])
def test_not_pii(value):
    assert not looks_like_pii(value)


def test_refuses_to_run_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("GROWTHLAKE_PII_KEY", raising=False)
    monkeypatch.delenv("GROWTHLAKE_PROFILE", raising=False)
    with pytest.raises(PiiKeyMissing, match="GROWTHLAKE_PII_KEY.*GROWTHLAKE_PROFILE=demo"):
        pii_key_from_env(LakePaths.from_root(tmp_path))


def test_demo_profile_generates_one_private_key_under_the_root(monkeypatch, tmp_path):
    monkeypatch.delenv("GROWTHLAKE_PII_KEY", raising=False)
    monkeypatch.setenv("GROWTHLAKE_PROFILE", "demo")
    paths = LakePaths.from_root(tmp_path)
    k1, k2 = pii_key_from_env(paths), pii_key_from_env(paths)
    assert k1 == k2 and len(k1) == 64
    assert oct(os.stat(Path(paths.demo_pii_key)).st_mode)[-3:] == "600"
    other = LakePaths.from_root(tmp_path / "other")
    assert pii_key_from_env(other) != k1
