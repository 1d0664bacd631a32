"""dbt's files of one storage root: the parsed manifest the Dagster definitions load, and the
target/log folders of warehouse builds — all below ``paths.dbt_dir`` (``$ROOT/_dbt``, or
``$GROWTHLAKE_LOCAL_DIR/_dbt`` for an object-store root), never in the code checkout.

dagster-dbt builds the warehouse assets from ``manifest.json``. :func:`prepare_manifest` runs
``dbt parse`` when that file is missing or stale — its fingerprint (a hash of every file of the
dbt project and of the dbt version) differs from the one recorded beside it — with every setting
the parse needs passed explicitly (``--vars``, the subprocess environment), never through this
process's environment. ``make install`` calls it (``growthlake prepare``); so does the Dagster
definitions loader, so ``dagster dev`` picks up an edited model on reload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from lake.errors import ConfigError
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["DBT_PROJECT_DIR", "LAKE_ROOT_VAR", "WAREHOUSE_PATH_VAR", "BUILDS_KEPT", "build_target_dir", "dbt_env",
           "manifest_dir", "manifest_fingerprint", "prepare_manifest"]

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
WAREHOUSE_PATH_VAR = "warehouse_path"  # dbt CLI var read by profiles.yml before GROWTHLAKE_WAREHOUSE_PATH
LAKE_ROOT_VAR = "lake_root"  # dbt CLI var read by the sources' delta_table_path before GROWTHLAKE_ROOT
BUILDS_KEPT = 5  # target folders of the last builds kept for inspection (run_results.json, dbt.log)

_PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "selectors.yml")
_PROJECT_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_FINGERPRINT = "fingerprint.txt"


def manifest_dir(paths: LakePaths) -> Path:
    """Where the parsed manifest of ``paths`` lives: ``<dbt_dir>/manifest``."""
    return Path(paths.dbt_dir) / "manifest"


def manifest_fingerprint(project_dir: str | os.PathLike[str] = DBT_PROJECT_DIR) -> str:
    """A hash of every file dbt parses in ``project_dir``, and of the installed dbt-core version."""
    project = Path(project_dir)
    digest = hashlib.sha256(f"dbt-core {metadata.version('dbt-core')}\n".encode())
    files = [project / name for name in _PROJECT_FILES if (project / name).is_file()]
    for folder in _PROJECT_FOLDERS:
        if (project / folder).is_dir():
            files += sorted(p for p in (project / folder).rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def prepare_manifest(paths: LakePaths, *, project_dir: str | os.PathLike[str] = DBT_PROJECT_DIR,
                     timeout_s: float = 300.0) -> Path:
    """Return ``manifest.json`` for ``paths``, running ``dbt parse`` first when it is missing or stale.

    The parse runs in a temporary folder beside the manifest (its target and logs), reads the
    project's ``profiles.yml`` with the lake's root and warehouse passed as ``--vars``, and the
    result replaces the old manifest atomically; concurrent callers serialize on a writer lock.

    Raises:
        ConfigError: dbt could not parse the project (the message carries dbt's last lines), or
            the root is an object store and ``GROWTHLAKE_LOCAL_DIR`` is unset.
    """
    folder = manifest_dir(paths)
    manifest = folder / "manifest.json"
    wanted = manifest_fingerprint(project_dir)
    if _recorded(folder) == wanted and manifest.exists():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    with table_lock(paths, "dbt_manifest"):
        if _recorded(folder) == wanted and manifest.exists():  # another process parsed meanwhile
            return manifest
        work = Path(tempfile.mkdtemp(prefix="parse-", dir=folder.parent))
        try:
            if (folder / "partial_parse.msgpack").exists():  # dbt re-parses only the files that changed
                (work / "target").mkdir()
                shutil.copyfile(folder / "partial_parse.msgpack", work / "target" / "partial_parse.msgpack")
            _parse(paths, Path(project_dir), work, timeout_s=timeout_s)
            for name in ("manifest.json", "semantic_manifest.json", "partial_parse.msgpack"):
                if (work / "target" / name).exists():
                    os.replace(work / "target" / name, folder / name)
            (folder / _FINGERPRINT).write_text(wanted)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return manifest


def build_target_dir(paths: LakePaths, label: str) -> Path:
    """A new, empty target (and log) folder for one dbt build: ``<dbt_dir>/builds/<time>-<label>-<id>``.

    Only the newest :data:`BUILDS_KEPT` build folders are kept; older ones are deleted here.
    """
    builds = Path(paths.dbt_dir) / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    for old in sorted(p for p in builds.iterdir() if p.is_dir())[:-(BUILDS_KEPT - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
    target = builds / f"{stamp}-{safe}-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    return target


def dbt_env(paths: LakePaths, warehouse_path: str | os.PathLike[str], *,
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a dbt process of this project needs (offline, no usage tracking).

    Args:
        paths: the lake whose silver tables dbt reads (``GROWTHLAKE_ROOT``).
        warehouse_path: the DuckDB file dbt writes (``GROWTHLAKE_WAREHOUSE_PATH``).
        base: the environment to extend; defaults to this process's (``PATH``, ``HOME``, the
            ``AWS_*`` of an object-store root: dbt's delta plugin reads them itself).
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "GROWTHLAKE_ROOT": paths.root,
        "GROWTHLAKE_WAREHOUSE_PATH": os.fspath(warehouse_path),
        **dict(paths.settings.storage_options),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    })
    return env


def _recorded(folder: Path) -> str | None:
    try:
        return (folder / _FINGERPRINT).read_text().strip()
    except OSError:
        return None


def _parse(paths: LakePaths, project: Path, work: Path, *, timeout_s: float) -> None:
    args = [sys.executable, "-m", "dbt.cli.main", "parse", "--quiet", "--project-dir", str(project),
            "--profiles-dir", str(project), "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
            "--vars", json.dumps({LAKE_ROOT_VAR: paths.root, WAREHOUSE_PATH_VAR: paths.warehouse})]
    try:
        proc = subprocess.run(args, env=dbt_env(paths, paths.warehouse), cwd=project, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError("dbt project", f"`dbt parse` did not finish within {timeout_s:.0f}s",
                          f"Run `dbt parse --project-dir {project}` by hand to see why") from None
    if proc.returncode != 0 or not (work / "target" / "manifest.json").exists():
        tail = " | ".join(line.strip() for line in (proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ConfigError("dbt project", f"`dbt parse` failed ({tail or 'no output'})",
                          f"Fix the model or YAML it names in {project}, then reload")
