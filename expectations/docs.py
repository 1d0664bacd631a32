"""Great Expectations Data Docs: a static HTML site documenting every declared suite.

The site is rendered by GX's own site builder from an ephemeral (in-memory) context whose only
Data Docs site is a local folder, so nothing is written outside that folder. Great Expectations
is imported lazily (it takes seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

from expectations.suites import load_suite, suite_names

__all__ = ["SITE_NAME", "build_data_docs"]

#: Name of the one Data Docs site the context is given.
SITE_NAME = "growthlake_local_site"


def build_data_docs(site_dir: str | os.PathLike[str]) -> Path:
    """Build GX Data Docs for every suite in :func:`expectations.suites.suite_names` into ``site_dir``.

    Each JSON suite is converted to a GX suite exactly as validation does
    (:func:`expectations._gx.build_suite`), so the docs show what the gates run.

    Args:
        site_dir: Folder of the static site (created if missing). Nothing is written elsewhere.

    Returns:
        The path of the site's ``index.html``.

    Raises:
        InvalidSuiteError: A suite file is malformed.
        RuntimeError: GX did not produce an index page.
    """
    site = Path(site_dir).resolve()
    site.mkdir(parents=True, exist_ok=True)
    from expectations._gx import build_suite, ephemeral_context

    context = ephemeral_context(data_docs_sites={
        SITE_NAME: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    })
    for name in suite_names():
        context.suites.add(build_suite(load_suite(name)))
    context.build_data_docs(site_names=[SITE_NAME])
    index = site / "index.html"
    if not index.is_file():
        raise RuntimeError(f"Great Expectations built no Data Docs index in {site}")
    return index
