"""The ``newsmon`` command line: run a role (or all), print the settings.

newsmon serve                 every role in one process (embedded Redis by default)
newsmon ingestor|classifier|notifier|api
                              one role, for many processes on one Redis
newsmon config                the effective settings, secrets masked (JSON)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from core.errors import NewsmonError, SettingsError
from core.logs import setup_logging
from core.settings import Settings, load_settings
from runner.roles import ROLES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsmon", description="Cambodia–Laos defence news monitor.")
    p.add_argument("--config", type=Path, help="TOML settings file (also NEWSMON_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run every role in one process")
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} role only")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings: Settings = load_settings(args.config)
    except SettingsError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return 2
    if args.command == "config":
        print(json.dumps(settings.masked(), indent=2, sort_keys=True))
        return 0
    setup_logging(settings.log_level, settings.log_format)
    roles = ROLES if args.command == "serve" else (args.command,)
    try:
        return asyncio.run(_run(settings, roles))
    except NewsmonError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return 1


async def _run(settings: Settings, roles: tuple[str, ...]) -> int:
    from runner import roles as runtime

    return await runtime.run(settings, roles)


if __name__ == "__main__":
    sys.exit(main())
