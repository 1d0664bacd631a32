"""Shared fixtures: every test gets its own lake under tmp_path and its own PII key."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

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
    monkeypatch.delenv("GROWTHLAKE_SEGMENT_MAPPING", raising=False)
    monkeypatch.delenv("GROWTHLAKE_ANOMALY_CONFIG", raising=False)


@pytest.fixture(scope="session")
def definitions(dbt_manifest_seed):
    """The code location's definitions over the empty lake of ``dbt_manifest_seed`` (its manifest was
    parsed for it), for tests that inspect the graph."""
    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    return build_definitions(lake=LakeResource(root=str(dbt_manifest_seed.parent.parent)))


@pytest.fixture
def pii_key(monkeypatch) -> str:
    key = secrets.token_hex(32)  # the tests set their own secret; nothing is hard-coded
    monkeypatch.setenv("GROWTHLAKE_PII_KEY", key)
    monkeypatch.delenv("GROWTHLAKE_PROFILE", raising=False)
    return key


@pytest.fixture(scope="session")
def dbt_manifest_seed(tmp_path_factory) -> Path:
    """One real `dbt parse` per test process (``lake.dbt_manifest.prepare_manifest`` on a lake of its own)."""
    from lake.dbt_manifest import manifest_dir, prepare_manifest

    seed = LakePaths.from_root(tmp_path_factory.mktemp("dbt-seed") / "lake")
    prepare_manifest(seed)
    return manifest_dir(seed)


@pytest.fixture
def paths(tmp_path, monkeypatch, pii_key, dbt_manifest_seed) -> LakePaths:
    root = tmp_path / "lake"
    monkeypatch.setenv("GROWTHLAKE_ROOT", str(root))
    lake = LakePaths.from_root(root)
    # The definitions of every test lake are built from the same dbt project: copy the session's parsed
    # manifest (with its fingerprint, so it counts as fresh) instead of parsing again per test. The
    # manifest's only root-specific text is the sources' delta_table_path, which the Dagster graph does
    # not use; dbt builds parse the project themselves, with this lake's root. Tests of the parse
    # itself use lakes of their own (test_cli_front_door, test_make_dev).
    shutil.copytree(dbt_manifest_seed, Path(lake.dbt_dir) / "manifest")
    return lake


@pytest.fixture(scope="session")
def plan():
    return load_plan()


@pytest.fixture
def masker(pii_key) -> PiiMasker:
    return PiiMasker(pii_key.encode())


# -- servers for the scale-out tests (tests/integration/test_s3.py, test_celery.py) --------------
# Each is a subprocess bound to 127.0.0.1 on a free port, started once per test process and
# stopped by its PID. A missing binary skips the tests that need it (and says how to install it).


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(argv: list[str], port: int, name: str, timeout: float = 30.0):
    import socket
    import subprocess
    import tempfile
    import time

    # The server's output, kept for the error message; a file, not a pipe (a full pipe blocks it).
    log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read().decode()[-2000:]}") from None
            if time.monotonic() > deadline:
                _stop_server(proc)
                raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s") from None
            time.sleep(0.05)


def _stop_server(proc) -> None:
    from tests.helpers import stop_process

    stop_process(proc)


def _executable(name: str) -> str | None:
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name(name)  # a venv's scripts need not be on PATH
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3-compatible server (moto) on 127.0.0.1: its endpoint URL."""
    exe = _executable("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (pip install -c constraints.txt -e '.[test]')")
    port = _free_port()
    proc = _start_server([exe, "-H", "127.0.0.1", "-p", str(port)], port, "moto_server")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_server(proc)


@pytest.fixture(scope="session")
def s3_settings(s3_endpoint) -> dict[str, str]:
    """The environment an object-store root needs (the standard AWS_* variables), for moto."""
    return {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def redis_url():
    """A throwaway Redis (no persistence) on 127.0.0.1: its URL, for Celery's broker and results."""
    exe = _executable("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = _free_port()
    proc = _start_server([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                         port, "redis-server")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop_server(proc)


def _postgres_bindir() -> str | None:
    """The Debian ``postgresql`` binaries (``/usr/lib/postgresql/<major>/bin``, newest), else ``initdb`` on PATH."""
    import glob
    import shutil
    from pathlib import Path

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (``initdb`` in a temporary folder, no fsync): its URL.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user (whom
    Debian's package creates) and its commands run through ``runuser``. Stopped by the postmaster's PID.
    """
    import os
    import shutil
    import signal
    import subprocess
    import tempfile
    import time

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    as_user: list[str] = []
    folder = tempfile.mkdtemp(prefix="growthlake-pg-")
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no `postgres` user to own the cluster (PostgreSQL refuses root)")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    data = f"{folder}/data"
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    port = _free_port()
    # -k: the Unix socket in the temp folder (the package's /var/run/postgresql may not exist);
    # fsync off: a test server, thrown away after the session.
    proc = _start_server([*as_user, f"{bindir}/postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port),
                          "-k", folder, "-c", "fsync=off", "-c", "max_connections=200"], port, "postgres")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:  # the postmaster's PID, first line of postmaster.pid (the Popen is runuser's when root)
            with open(f"{data}/postmaster.pid") as fh:
                pid = int(fh.readline())
            os.kill(pid, signal.SIGINT)  # fast shutdown
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        except (OSError, ValueError):
            pass
        _stop_server(proc)
        shutil.rmtree(folder, ignore_errors=True)
