"""Where the GrowthBook features document lives, and how it is published and read: ``$ROOT/actuation/
flags/<name>.json``, a local file replaced atomically or an object-store object written in one PUT.
The document itself is built by :mod:`growth_loops.actuation.flags`."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from growth_loops.actuation.flags import _FLAG_KEY, ActuationError, canonical_json
from lake.durable import fsync_dir
from lake.paths import LakePaths

__all__ = ["features_document_path", "load_features_document", "publish_features_document"]


def _check_document(doc: Any, where: str) -> None:
    features = doc.get("features") if isinstance(doc, Mapping) else None
    if not isinstance(features, Mapping):
        raise ActuationError(where, "it is not a GrowthBook document (no `features` object)",
                             "Build it with build_features_document().")
    for key, feature in features.items():
        if (not isinstance(feature, Mapping) or "defaultValue" not in feature
                or not isinstance(feature.get("rules", []), list)):
            raise ActuationError(where, f"feature {key!r} has no defaultValue or malformed rules",
                                 "Build it with build_features_document().")


def features_document_path(root: LakePaths | str | os.PathLike[str], name: str = "features") -> str:
    """Where the flag document lives below the storage root: ``$ROOT/actuation/flags/<name>.json``.

    Args:
        root: The lake, or its storage root.
        name: The document's name, e.g. one per product surface.
    """
    if not _FLAG_KEY.match(name):
        raise ActuationError(f"document name {name!r}", "it is empty or not a plain name", "Use letters, digits, _ - .")
    base = root.root if isinstance(root, LakePaths) else os.fspath(root)
    return "/".join([base, "actuation", "flags", f"{name}.json"])


def _local(path: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(path))


def _object_store(path: str | os.PathLike[str]) -> tuple[Any, str] | None:
    """``(pyarrow filesystem, path in it)`` for an object-store URI (``s3://…``), ``None`` for a local path.

    The filesystem reads the store's settings from the environment (``AWS_*``), as the landing zone does.
    """
    text = os.fspath(path)
    if "://" not in text:
        return None
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(text)
    except (OSError, ValueError) as exc:
        raise ActuationError(f"features document {text}", f"its store cannot be opened ({exc})",
                             "Check the URI and the store's settings (AWS_* variables).") from None


def _read_object(store: tuple[Any, str]) -> bytes | None:
    """The object's bytes, or ``None`` when it does not exist."""
    import pyarrow.fs as pafs

    fs, where = store
    if fs.get_file_info(where).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(where) as src:
        return src.read()


def publish_features_document(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """Write ``doc`` to ``path`` (a local file or an ``s3://`` object) atomically as canonical JSON and
    return its content hash.

    On an object store the document is one PUT (atomic there). Locally, readers see the old document
    or the new one, never a partial file: the bytes go to a temp file in the same directory, are
    fsynced, then ``os.replace`` swaps it in (and the directory is fsynced so the rename survives a
    crash). When the file (or object) already holds exactly this content it is left untouched (its
    mtime too), so pollers see no change.

    Returns:
        sha256 (hex) of the canonical JSON — the file's bytes — equal for equal content.
    """
    _check_document(doc, "features document")
    data = canonical_json(doc).encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    store = _object_store(path)
    if store is not None:
        # An object store: one PUT of the whole document. S3 makes an object visible only once all of
        # it is written (a multipart upload likewise on completion), so readers get the old bytes or
        # the new ones, never a part; an unchanged document is not written again.
        if _read_object(store) == data:
            return digest
        fs, where = store
        with fs.open_output_stream(where, metadata={"Content-Type": "application/json"}) as out:
            out.write(data)
        return digest
    target = _local(path)
    try:
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return digest
    except OSError:
        pass  # unreadable: rewrite it
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return digest


def load_features_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a published document.

    Raises:
        ActuationError: The file is missing, not JSON, or not a features document.
    """
    store = _object_store(path)
    target: Path | str = os.fspath(path) if store is not None else _local(path)
    try:
        if store is not None:
            raw = _read_object(store)
            if raw is None:
                raise FileNotFoundError(target)
        else:
            raw = Path(target).read_bytes()
        doc = json.loads(raw)
    except FileNotFoundError:
        raise ActuationError(f"features document {target}", "it does not exist",
                             "Publish one with publish_features_document().") from None
    except ValueError as exc:
        raise ActuationError(f"features document {target}", f"it is not valid JSON ({exc})",
                             "Republish it; publish_features_document() never leaves a partial file.") from None
    _check_document(doc, f"features document {target}")
    return doc
