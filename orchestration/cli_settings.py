"""What each ``growthlake`` verb needs of the settings, checked once before the verb does any work."""

from __future__ import annotations

import argparse

from lake.settings import Settings

__all__ = ["KEYS", "PII", "PLAN", "READ", "UPDATE", "WRITE", "checked_settings"]

# What a verb needs of the settings, checked once before it starts (set_defaults(needs=...)):
#   read    the lake must exist and be readable     write   the root may be created, must be writable
#   update  read + write                            pii     a PII key (or the demo profile)
#   plan    a valid tracking plan                   keys    the collector's write keys
READ, WRITE, UPDATE = frozenset({"read"}), frozenset({"write"}), frozenset({"read", "write"})
PII, PLAN, KEYS = frozenset({"pii"}), frozenset({"plan"}), frozenset({"keys"})


def checked_settings(args: argparse.Namespace) -> Settings:
    """The settings of this invocation (``--root`` and ``--tracking-plan`` win over the environment),
    checked for everything the verb needs before it does any work.

    Raises:
        ConfigError: a setting is malformed or missing (the message says which and how to fix it).
        TrackingPlanError: the tracking plan cannot be used.
    """
    needs: frozenset[str] = getattr(args, "needs", frozenset())
    settings = Settings.from_env(root=getattr(args, "root", None), tracking_plan=getattr(args, "tracking_plan", None))
    if needs & {"read", "write"}:
        settings.check_root(must_exist="read" in needs, writable="write" in needs)
    if "pii" in needs:
        settings.require_pii_key()
    if "keys" in needs:
        settings.require_write_keys()
    if "plan" in needs:
        from lake.contracts import load_plan

        load_plan(settings.tracking_plan)
    return settings


