"""The one settings object: every GROWTHLAKE_* variable parsed, checked and explained in one place."""

from __future__ import annotations

import os

import pytest

from lake.errors import ConfigError, PiiKeyMissing
from lake.paths import LakePaths
from lake.settings import Settings

KEY = "k" * 32


def test_defaults_from_an_empty_environment():
    s = Settings.from_env({})
    assert s.root == os.path.abspath("data")
    assert (s.pii_key, s.profile, s.tracking_plan, s.local_dir, s.lock_dir, s.online_store) == (None,) * 6
    assert (s.lock_timeout_s, s.vacuum_retention_hours, s.silver_step_rows) == (600.0, 168, 1_000_000)
    assert s.ingest_step_bytes == 256 << 20
    assert (s.parallel_min_bytes, s.max_line_bytes, s.write_keys, s.storage_options) == (16 << 20, 1 << 20,
                                                                                           frozenset(), ())


def test_every_variable_is_read(tmp_path):
    env = {"GROWTHLAKE_ROOT": str(tmp_path / "lake"), "GROWTHLAKE_PII_KEY": KEY, "GROWTHLAKE_PROFILE": "Demo",
           "GROWTHLAKE_TRACKING_PLAN": "/p.yaml", "GROWTHLAKE_SEGMENT_MAPPING": "/m.yaml",
           "GROWTHLAKE_ANOMALY_CONFIG": "/a.yaml", "GROWTHLAKE_LOCAL_DIR": str(tmp_path / "local"),
           "GROWTHLAKE_LOCK_DIR": str(tmp_path / "locks"), "GROWTHLAKE_LOCK_TIMEOUT": "2.5",
           "GROWTHLAKE_ONLINE_STORE": str(tmp_path / "o.sqlite"), "GROWTHLAKE_ALERT_WEBHOOK": "http://127.0.0.1:9/a",
           "GROWTHLAKE_WRITE_KEYS": f"{KEY}, {'w' * 16}", "GROWTHLAKE_CELERY_BROKER": "redis://127.0.0.1:6379/0",
           "GROWTHLAKE_VACUUM_RETENTION_HOURS": "0", "GROWTHLAKE_SILVER_STEP_ROWS": "5",
           "GROWTHLAKE_INGEST_STEP_BYTES": "4096",
           "GROWTHLAKE_PARALLEL_MIN_BYTES": "1", "GROWTHLAKE_MAX_LINE_BYTES": "4096", "GROWTHLAKE_ACTOR": "ada",
           "GROWTHLAKE_FAILPOINT": "x", "AWS_REGION": "eu-west-1", "DAGSTER_HOME": str(tmp_path / "dh"),
           "GROWTHLAKE_NORMALIZER": "Per_Line"}
    s = Settings.from_env(env)
    assert s.root == str(tmp_path / "lake") and s.pii_key == KEY and s.profile == "demo" and s.is_demo
    assert (s.tracking_plan, s.segment_mapping, s.anomaly_config) == ("/p.yaml", "/m.yaml", "/a.yaml")
    assert (s.local_dir, s.lock_dir, s.online_store) == (str(tmp_path / "local"), str(tmp_path / "locks"),
                                                         str(tmp_path / "o.sqlite"))
    assert (s.lock_timeout_s, s.vacuum_retention_hours, s.silver_step_rows, s.parallel_min_bytes,
            s.max_line_bytes, s.ingest_step_bytes) == (2.5, 0, 5, 1, 4096, 4096)
    assert s.write_keys == {KEY, "w" * 16} and s.alert_webhook == "http://127.0.0.1:9/a"
    assert (s.celery_broker, s.actor, s.failpoint) == ("redis://127.0.0.1:6379/0", "ada", "x")
    assert s.normalizer == "per_line" and Settings.from_env({}).normalizer == "columnar"
    assert s.storage_options == (("AWS_REGION", "eu-west-1"),) and s.dagster_home == str(tmp_path / "dh")
    assert s.storage_options_for("s3://b/x") == {"AWS_REGION": "eu-west-1"} and s.storage_options_for("/x") is None


def test_secrets_stay_out_of_the_repr():
    s = Settings.from_env({"GROWTHLAKE_PII_KEY": KEY, "GROWTHLAKE_WRITE_KEYS": "w" * 20})
    assert KEY not in repr(s) and "w" * 20 not in repr(s)


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("GROWTHLAKE_PII_KEY", "s3cr3t-xyz", "shorter than 16 characters"),
    ("GROWTHLAKE_WRITE_KEYS", f"{KEY},tiny-key", "1 key(s) shorter than 16"),
    ("GROWTHLAKE_PROFILE", "prod", "'prod'"),
    ("GROWTHLAKE_LOCK_TIMEOUT", "ten", "not a number of seconds"),
    ("GROWTHLAKE_LOCK_TIMEOUT", "-1", "below the minimum"),
    ("GROWTHLAKE_VACUUM_RETENTION_HOURS", "1.5", "not a whole number of hours"),
    ("GROWTHLAKE_SILVER_STEP_ROWS", "0", "below the minimum of 1 rows"),
    ("GROWTHLAKE_INGEST_STEP_BYTES", "a lot", "not a whole number of bytes"),
    ("GROWTHLAKE_PARALLEL_MIN_BYTES", "lots", "not a whole number of bytes"),
    ("GROWTHLAKE_MAX_LINE_BYTES", "10", "below the minimum"),
    ("GROWTHLAKE_NORMALIZER", "fast", "'fast'"),
])
def test_a_malformed_variable_is_refused_by_name_with_a_fix(variable, value, says):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    message = str(err.value)
    assert message.startswith(f"{variable}: ") and says in message
    assert value not in message or "KEY" not in variable  # a secret is never echoed
    assert len(message.splitlines()) == 1


def test_overrides_win_and_unknown_overrides_are_a_bug(tmp_path):
    s = Settings.from_env({"GROWTHLAKE_ROOT": "/elsewhere"}, root=tmp_path, tracking_plan=None)
    assert s.root == str(tmp_path) and s.tracking_plan is None
    with pytest.raises(TypeError):
        Settings.from_env({}, no_such_setting=1)


def test_pii_key_required_unless_the_demo_profile_on_a_local_root():
    with pytest.raises(PiiKeyMissing):
        Settings.from_env({}).require_pii_key()
    Settings.from_env({"GROWTHLAKE_PROFILE": "demo"}).require_pii_key()
    Settings.from_env({"GROWTHLAKE_PII_KEY": KEY}).require_pii_key()
    with pytest.raises(ConfigError, match="object store"):
        Settings.from_env({"GROWTHLAKE_PROFILE": "demo", "GROWTHLAKE_ROOT": "s3://b/lake"}).require_pii_key()


def test_check_root(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Settings.from_env({}, root=tmp_path / "file").check_root(must_exist=False, writable=True)
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.from_env({}, root=tmp_path / "missing").check_root(must_exist=True, writable=False)
    Settings.from_env({}, root=tmp_path / "missing").check_root(must_exist=False, writable=True)  # created later
    Settings.from_env({}, root=tmp_path).check_root(must_exist=True, writable=True)
    with pytest.raises(ConfigError, match="GROWTHLAKE_LOCAL_DIR"):
        Settings.from_env({}, root="s3://bucket/lake").check_root(must_exist=True, writable=True)
    Settings.from_env({"GROWTHLAKE_LOCAL_DIR": str(tmp_path)}, root="s3://bucket/lake").check_root(
        must_exist=True, writable=True)


def test_lake_paths_carry_the_settings_they_were_made_with(tmp_path):
    settings = Settings.from_env({"GROWTHLAKE_LOCK_DIR": str(tmp_path / "locks"),
                                  "GROWTHLAKE_ONLINE_STORE": str(tmp_path / "o.sqlite")}, root=tmp_path / "lake")
    paths = LakePaths.from_root(settings=settings)
    assert paths.root == str(tmp_path / "lake") and paths.locks == str(tmp_path / "locks")
    assert paths.online_store == str(tmp_path / "o.sqlite")
    other = LakePaths.from_root(tmp_path / "other", settings=settings)
    assert other.root == str(tmp_path / "other") and other.settings.lock_dir == settings.lock_dir
    assert other == LakePaths(str(tmp_path / "other"))  # equal by root
