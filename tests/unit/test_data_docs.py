"""GX Data Docs: one static site documenting every declared suite, written only where asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from expectations.docs import build_data_docs
from expectations.suites import load_suite, suite_names

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_data_docs_document_every_suite_and_write_nothing_else(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Anything GX might write to the working folder, the home folder or the temp folder lands in
    # these empty folders, which must stay empty; the repo's expectations must not change either.
    cwd, home, tmp, site = (tmp_path / n for n in ("cwd", "home", "tmp", "site"))
    for folder in (cwd, home, tmp):
        folder.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    repo_before = {p: p.stat().st_mtime_ns for p in _files(REPO / "expectations")}

    index = build_data_docs(site)

    assert index == site.resolve() / "index.html" and index.is_file()
    assert not _files(cwd) and not _files(home) and not _files(tmp)
    assert {p: p.stat().st_mtime_ns for p in _files(REPO / "expectations")
            if "__pycache__" not in p.parts} == {p: t for p, t in repo_before.items() if "__pycache__" not in p.parts}

    names = suite_names()
    assert names
    index_html = index.read_text(encoding="utf-8")
    pages = {p.stem: p for p in (site / "expectations").glob("*.html")}
    assert set(pages) == set(names)  # one page per suite, nothing more
    for name in names:
        assert f"expectations/{name}.html" in index_html  # linked from the index
        page = pages[name].read_text(encoding="utf-8")
        assert name in page
        # GX's own renderer: the page states how many expectations the suite holds.
        count = len(load_suite(name).expectations)
        assert f"{count} total Expectation" in page


def test_data_docs_rebuild_in_place(tmp_path: Path) -> None:
    first = build_data_docs(tmp_path / "site")
    second = build_data_docs(tmp_path / "site")
    assert first == second and second.is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"site"}
