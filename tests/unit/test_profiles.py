"""Landing profiles: an hour reduced to counts, unplanned properties of quarantined lines included."""

from __future__ import annotations

from expectations.anomaly import load_config
from lake import delta_io
from lake.contracts import load_plan
from lake.ingest import ingest_partition
from lake.profiles import LANDING_PROFILES, Profile, hour_profile, profile_hours, read_profiles
from tests.helpers import event, write_batch

KEY, EARLIER = "2026-11-02-05:00", "2026-11-02-04:00"
COLUMNS = load_config()["distribution_drift"]["columns"]


def _land(paths, masker, key, lines):
    write_batch(paths, key, lines)
    ingest_partition(paths, key, plan=load_plan(), masker=masker)


def test_an_hour_is_counted_by_event_property_and_key_column(paths, masker):
    pay = [event("payment_succeeded", {"amount": a, "currency": "USD", "invoice_id": f"in-{i}"}, user_id="u1")
           for i, a in enumerate((5, 30, 30, 2000))]
    pages = [event(props={"path": "/p", "coupon": "X"}) for _ in range(3)] + [event(props={"path": "/"})] * 1
    _land(paths, masker, KEY, [*pay, *pages, b"{not json"])
    profile = hour_profile(paths, KEY, columns=COLUMNS)

    assert profile.dimension("event_lines") == {"payment_succeeded": 4, "page_viewed": 4}
    # The coupon lines were quarantined (unexpected_property) and still count: read back from raw_line.
    assert profile.dimension("property") == {"payment_succeeded.amount": 4, "payment_succeeded.currency": 4,
                                             "payment_succeeded.invoice_id": 4,
                                             "page_viewed.path": 4, "page_viewed.coupon": 3}
    columns = profile.columns()
    # Bronze rows only (4 payments of u1, 1 clean page view of anon-1), counted per person: 2 people.
    assert columns["device_type"] == {"mobile": 2}
    assert columns["payment_succeeded.amount"] == {"[0,10)": 1, "[25,50)": 2, ">=1000": 1}


def test_profiles_are_stored_once_per_hour_and_missing_history_is_profiled_on_demand(paths, masker):
    _land(paths, masker, EARLIER, [event(ts="2026-11-02T04:10:00Z", received="2026-11-02T04:10:01Z")] * 1)
    _land(paths, masker, KEY, [event(), event()])
    assert read_profiles(paths, [EARLIER]) == {}  # nothing profiled yet

    hours = profile_hours(paths, [EARLIER, KEY, "2026-11-02-03:00"], columns=COLUMNS)  # 03:00 never landed
    both = Profile.total(hours.values())
    assert set(hours) == both.hours == {EARLIER, KEY} and both.dimension("event_lines") == {"page_viewed": 3}
    assert set(read_profiles(paths, [EARLIER, KEY])) == {EARLIER, KEY}  # stored
    stored = delta_io.read(paths.landing_profiles, LANDING_PROFILES)
    again = hour_profile(paths, KEY, columns=COLUMNS)  # a rerun replaces the hour's rows, never adds
    assert again.dimension("event_lines") == {"page_viewed": 2}
    assert delta_io.read(paths.landing_profiles, LANDING_PROFILES).num_rows == stored.num_rows
