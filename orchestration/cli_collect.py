"""``growthlake collect``: the Segment / RudderStack-compatible HTTP collector over the landing zone."""

from __future__ import annotations

import argparse
import logging
import sys

from orchestration.cli_settings import KEYS, WRITE

__all__ = ["add_parser"]


def _cmd_collect(args: argparse.Namespace) -> int:
    from lake.collector import CollectorConfig, serve
    from lake.paths import LakePaths

    paths = LakePaths.from_root(args.root)
    config = CollectorConfig.from_env(
        host=args.host, port=args.port, max_message_bytes=args.max_message_kb * 1024,
        max_batch_bytes=args.max_batch_kb * 1024, max_inflight_bytes=args.max_inflight_mb << 20,
        linger_ms=args.linger_ms,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(url: str) -> None:
        print(f"collecting on {url} (/v1/batch, /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/alias, "
              f"/v1/group) -> {paths.landing_events}; {len(config.write_keys)} write key(s)", flush=True)

    stats = serve(paths, config, ready=ready)
    print(f"stopped: {stats.requests:,} requests, {stats.acknowledged_messages:,} messages landed in "
          f"{stats.files_landed:,} files, rejected {dict(sorted(stats.rejected.items())) or 'none'}", file=sys.stderr)
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("collect", parents=[common],
                       help="receive events from Segment / RudderStack SDKs over HTTP into the landing zone")
    c.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    c.add_argument("--port", type=int, default=8088, help="port (0: any free port, printed on start)")
    c.add_argument("--max-message-kb", type=int, default=32, help="largest message accepted (Segment: 32)")
    c.add_argument("--max-batch-kb", type=int, default=500, help="largest request body accepted (Segment: 500)")
    c.add_argument("--max-inflight-mb", type=int, default=64,
                   help="request bytes held before landing; beyond it requests get 429 + Retry-After")
    c.add_argument("--linger-ms", type=float, default=50.0,
                   help="how long a commit waits for more requests (fewer, larger landing files)")
    c.set_defaults(fn=_cmd_collect, needs=WRITE | KEYS)
