"""Benchmark PII masking on adversarial text next to benign text: the cost per MB, and their ratio.

    python benchmarks/bench_pii.py [--mb 1] [--repeat 3] [--old-email-kb 8 16 32]

``PiiMasker.mask_text`` runs on every quarantined line and every line that is not JSON (up to
``GROWTHLAKE_MAX_LINE_BYTES``, 1 MiB by default). Each input below is ``--mb`` MB of one adversarial
shape (long runs of word characters, of ``@`` and dots, of digits and dots, of phone-like
characters, of percent escapes, …) masked in the same run as benign JSON-ish text of the same size;
the figures are the best of ``--repeat`` runs (process CPU time). Nothing is asserted: the unit tests
check the ratios with generous margins (tests/unit/test_pii.py).

For reference, ``--old-email-kb`` times the email pattern this scanner replaced
(``[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}``, quadratic on runs of word characters) on a few
small sizes of the first input.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lake.pii import PiiMasker  # noqa: E402

_OLD_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def inputs(size: int) -> dict[str, str]:
    benign = ('{"event_name": "page_viewed", "properties": {"path": "/pricing", "title": "Plans and pricing", '
              '"referrer": "https://www.google.com/"}, "timestamp": "2026-11-02T05:10:00Z", "context": {"user_agent": '
              '"Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", "locale": "en-US"}} ')
    return {
        "benign JSON text": _repeat(benign, size),
        "benign, 1 email + 1 IP per KB": _repeat(benign[:980] + " ada@example.org 198.51.100.23 ", size),
        "word run": "a" * size,
        "word run, then @example.org": "a" * (size - 12) + "@example.org",
        "many @ and dots (a@a.)": _repeat("a@a.", size),
        "chained emails (a@b.co)": _repeat("a@b.co", size),
        "@ only": "@" * size,
        "domain of dots (a@b.b.b…)": "a@" + _repeat("b.", size - 2),
        "digit run": "1" * size,
        "digit/dot run (1.1.1…)": _repeat("1.", size),
        "IPs (1.2.3.4 …)": _repeat("1.2.3.4 ", size),
        "hex/colon run (a:a:…)": _repeat("a:", size),
        "phone-ish (12 12 …)": _repeat("12 ", size),
        "phones (415-555-0123 …)": _repeat("415-555-0123 ", size),
        "plus digits (+1+1…)": _repeat("+1", size),
        "percent escapes (a%40…)": _repeat("a%40", size),
        "double escapes (%25…)": _repeat("%25", size),
    }


def cost(masker: PiiMasker, text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        masker.mask_text(text)
        best = min(best, time.process_time() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=1.0, help="size of each input, in MB")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--old-email-kb", type=int, nargs="*", default=[8, 16, 32])
    args = ap.parse_args(argv)

    size = int(args.mb * (1 << 20))
    masker = PiiMasker(b"bench-pii-key-0123456789abcdef")
    texts = inputs(size)
    baseline = cost(masker, texts["benign JSON text"], args.repeat)
    print(f"mask_text, {args.mb:g} MB per input, best of {args.repeat} (CPU time)")
    print(f"{'input':34s} {'ms/MB':>9s} {'x benign':>9s}")
    for name, text in texts.items():
        spent = baseline if name == "benign JSON text" else cost(masker, text, args.repeat)
        print(f"{name:34s} {spent * 1000 / args.mb:9.1f} {spent / baseline:9.1f}")
    if args.old_email_kb:
        print("\nthe replaced email pattern on a word run (for reference; quadratic):")
        for kb in args.old_email_kb:
            started = time.process_time()
            _OLD_EMAIL.sub("x", "a" * (kb << 10))
            print(f"  {kb:4d} KB: {time.process_time() - started:8.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
