"""Nothing happens at import: importing any module of lake/, growth_loops/, simulation/, expectations/ or
orchestration/ reads no environment variable, writes none, starts no subprocess and writes no file.

A fresh interpreter (a subprocess, so nothing is imported yet) records, then imports every module of
the five packages: every read of ``os.environ`` made by this project's code (or of a ``GROWTHLAKE_*``,
``AWS_*`` or ``DBT_*`` variable by anyone on its behalf), every write, and every ``subprocess.Popen``,
while a frame of this project that is not itself an ``import`` statement is on the stack (a library's
own import-time work is that library's business; a library called by this project's module code is not).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("lake", "growth_loops", "simulation", "expectations", "orchestration")

PROBE = r'''
import json, linecache, os, pkgutil, subprocess, sys, importlib
REPO, PACKAGES = sys.argv[1], sys.argv[2].split(",")
OURS = tuple(os.path.join(REPO, p) + os.sep for p in PACKAGES)
events = []

STDLIB = (os.path.dirname(os.__file__) + os.sep,)

def direct_caller_is_ours():
    """The first frame outside the standard library (os, collections.abc) is this project's."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(STDLIB):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(OURS)

def culprit():
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(OURS):
            line = linecache.getline(name, frame.f_lineno).strip()
            if line.startswith(("import ", "from ")):
                return None  # a library imported by this line did it
            return f"{os.path.relpath(name, REPO)}:{frame.f_lineno}: {line}"
        frame = frame.f_back
    return None

class Recording(os._Environ):
    def __getitem__(self, key):
        where = culprit()
        if where and (direct_caller_is_ours() or key.startswith(("GROWTHLAKE_", "AWS_", "DBT_"))):
            events.append(["read", key, where])
        return super().__getitem__(key)
    def __setitem__(self, key, value):
        where = culprit()
        if where:
            events.append(["write", key, where])
        super().__setitem__(key, value)
    def __delitem__(self, key):
        where = culprit()
        if where:
            events.append(["delete", key, where])
        super().__delitem__(key)

env = os.environ
os.environ = Recording(env._data, env.encodekey, env.decodekey, env.encodevalue, env.decodevalue)
popen_init = subprocess.Popen.__init__
def recording_popen(self, args, *a, **k):
    where = culprit()
    if where:
        events.append(["subprocess", str(args)[:200], where])
    return popen_init(self, args, *a, **k)
subprocess.Popen.__init__ = recording_popen

modules = []
for package in PACKAGES:
    pkg = importlib.import_module(package)
    modules.append(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        importlib.import_module(info.name)
        modules.append(info.name)
print(json.dumps({"modules": modules, "events": events}))
'''


def test_importing_every_module_reads_writes_and_runs_nothing(tmp_path):
    cwd, root = tmp_path / "cwd", tmp_path / "lake"
    cwd.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GROWTHLAKE_ROOT": str(root),
           "GROWTHLAKE_PII_KEY": "x" * 32, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO), ",".join(PACKAGES)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"orchestration.definitions", "orchestration.marts.dbt", "lake.ingest.parallel", "lake.settings",
            "orchestration.celery", "expectations.runner"} <= set(report["modules"])
    assert len(report["modules"]) > 100
    assert report["events"] == [], "\n".join(" ".join(e) for e in report["events"])
    assert not root.exists(), "an import created the storage root"
    assert list(cwd.iterdir()) == [], "an import wrote files in the working directory"
