"""The real Segment and RudderStack Python SDKs -> ``growthlake collect`` -> bronze -> silver.

Each SDK, pointed at a collector on 127.0.0.1 with a write key, sends page, track and identify
calls with its own consent format; the landed hour goes through the real ingestion and silver
build: the events reach bronze exactly once (a redelivery and a re-ingestion add nothing), the
ledger reconciles, and identify stitches the anonymous device to the user in silver.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
from deltalake import DeltaTable
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from lake.collector import CollectorConfig, start_in_thread
from lake.ingest import ingest_partition, list_landing_partitions
from lake.ledger import verify_partition
from lake.silver import build_silver

pytestmark = pytest.mark.slow


def _segment_consent(analytics: bool) -> dict:
    return {"consent": {"categoryPreferences": {"Analytics": analytics, "Advertising": True}}}


def _rudder_consent(analytics: bool) -> dict:
    allowed, denied = (["analytics", "marketing"], []) if analytics else (["marketing"], ["analytics"])
    return {"consentManagement": {"allowedConsentIds": allowed, "deniedConsentIds": denied, "provider": "custom",
                                  "resolutionStrategy": "and"}}


SDKS = {
    "segment": (SegmentClient, _segment_consent),
    "rudderstack": (RudderClient, _rudder_consent),
}


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_sdk_events_reach_bronze_once_and_identify_stitches_the_person(paths, plan, masker, sdk):
    client_cls, consent = SDKS[sdk]
    key = secrets.token_hex(16)
    anon, user = f"anon-{uuid.uuid4().hex[:8]}", f"usr-{uuid.uuid4().hex[:8]}"
    errors: list = []
    config = CollectorConfig(write_keys=frozenset({key}), port=0, linger_ms=5)
    with start_in_thread(paths, config) as collector:
        client = client_cls(key, host=collector.url, gzip=True, max_retries=2, upload_interval=0.05,
                            on_error=lambda exc, batch: errors.append(exc))
        client.page(anonymous_id=anon, name="Pricing", properties={"path": "/pricing", "title": "Pricing"},
                    context=consent(True))
        client.track(anonymous_id=anon, event="Feature Used", properties={"feature": "dashboards"},
                     context=consent(True))
        client.identify(user_id=user, anonymous_id=anon, traits={"email": "ada@example.com", "firstName": "Ada"},
                        context=consent(True))
        trial_id = str(uuid.uuid4())
        client.track(user_id=user, event="Trial Started", properties={"plan": "pro", "trial_days": 14},
                     context=consent(True), message_id=trial_id)
        client.track(user_id=user, anonymous_id=anon, event="Button Clicked", context=consent(True))  # unplanned
        client.page(anonymous_id=anon, properties={"path": "/"}, context=consent(False))  # no analytics consent
        client.page(anonymous_id="another-device", properties={"path": "/"})  # no consent stated: dropped
        client.flush()
        # the SDK retrying a batch it thinks failed: the same messageId lands a second time
        client.track(user_id=user, event="Trial Started", properties={"plan": "pro", "trial_days": 14},
                     context=consent(True), message_id=trial_id)
        client.shutdown()
    assert errors == []
    assert collector.collector.stats.acknowledged_messages == 8

    keys = list_landing_partitions(paths)
    ledgers = [ingest_partition(paths, k, plan=plan, masker=masker).ledger for k in keys]
    total = {f: sum(getattr(led, f) for led in ledgers)
             for f in ("lines_landed", "bronze_rows", "quarantined", "consent_dropped", "duplicates_dropped")}
    assert total == {"lines_landed": 8, "bronze_rows": 4, "quarantined": 1, "consent_dropped": 2,
                     "duplicates_dropped": 1}
    assert all(verify_partition(paths, k).ok for k in keys)
    again = [ingest_partition(paths, k, plan=plan, masker=masker) for k in keys]
    assert sum(r.bronze_appended + r.quarantine_appended for r in again) == 0

    bronze = DeltaTable(paths.bronze_events).to_pyarrow_table().to_pylist()
    assert sorted(r["event_name"] for r in bronze) == ["feature_used", "page_viewed", "trial_started",
                                                       "user_identified"]
    assert [r["event_id"] for r in bronze].count(trial_id) == 1
    assert "ada@example.com" not in str(bronze) and "127.0.0.1" not in str(bronze)
    [quarantined] = DeltaTable(paths.bronze_quarantine).to_pyarrow_table().to_pylist()
    assert (quarantined["violation_type"], quarantined["event_name"]) == ("unplanned_event", "button_clicked")

    build_silver(paths)
    identity = DeltaTable(paths.silver_identity_map).to_pyarrow_table().to_pylist()
    assert [(r["anonymous_id"], r["user_id"], r["link_event_name"]) for r in identity] == [
        (anon, user, "user_identified")]
    silver = DeltaTable(paths.silver_events).to_pyarrow_table(columns=["event_name", "person_id"]).to_pylist()
    # the page seen before sign-in belongs to the user now
    assert {(r["event_name"], r["person_id"]) for r in silver} == {
        ("page_viewed", user), ("feature_used", user), ("user_identified", user), ("trial_started", user)}
