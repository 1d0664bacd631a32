"""Durable local writes: what "written" means before a file is acknowledged or swapped in."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a directory, so a rename into it (``os.replace``) survives a power loss."""
    fd = os.open(Path(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
