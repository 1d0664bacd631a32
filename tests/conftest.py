"""Shared fixtures: every test gets its own lake under tmp_path and its own PII key."""

from __future__ import annotations

import os
import secrets

import pytest

from lake.contracts import load_plan
from lake.paths import LakePaths
from lake.pii import PiiMasker

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch):
    """Tests never touch the developer's lake or Dagster instance (subprocesses inherit this)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("GROWTHLAKE_TRACKING_PLAN", raising=False)
    monkeypatch.delenv("GROWTHLAKE_FAILPOINT", raising=False)
    monkeypatch.delenv("GROWTHLAKE_ONLINE_STORE", raising=False)


@pytest.fixture
def pii_key(monkeypatch) -> str:
    key = secrets.token_hex(32)  # the tests set their own secret; nothing is hard-coded
    monkeypatch.setenv("GROWTHLAKE_PII_KEY", key)
    monkeypatch.delenv("GROWTHLAKE_PROFILE", raising=False)
    return key


@pytest.fixture
def paths(tmp_path, monkeypatch, pii_key) -> LakePaths:
    root = tmp_path / "lake"
    monkeypatch.setenv("GROWTHLAKE_ROOT", str(root))
    return LakePaths.from_root(root)


@pytest.fixture(scope="session")
def plan():
    return load_plan()


@pytest.fixture
def masker(pii_key) -> PiiMasker:
    return PiiMasker(pii_key.encode())
