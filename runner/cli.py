"""The ``newsmon`` command line: run a role (or all), print the settings.

newsmon serve                 every role in one process (embedded Redis by default)
newsmon ingestor|classifier|notifier|api
                              one role, for many processes on one Redis
newsmon config                the effective settings, secrets masked (JSON)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from core.errors import NewsmonError, SettingsError
from core.logs import setup_logging
from core.settings import Settings, load_settings, retired_in_environment
from runner.loops import event_loop_for, run_async
from runner.roles import ROLES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsmon", description="Cambodia–Laos defence news monitor.")
    p.add_argument("--config", type=Path, help="TOML settings file (also NEWSMON_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run every role in one process")
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} role only")
    sub.add_parser("config", help="print the effective settings (secrets masked)")

    feeds = sub.add_parser("feeds", help="manage the polled feeds").add_subparsers(
        dest="feeds_command", required=True, metavar="ACTION"
    )
    add = feeds.add_parser("add", help="add a feed (polled at once, then on schedule)")
    add.add_argument("url")
    add.add_argument("--name")
    add.add_argument("--interval", help="e.g. 15m, 1h, 90s (floor 1m; default 15m)")
    add.add_argument("--full-text", action="store_true", help="fetch each article's page")
    add.add_argument("--json", action="store_true")
    ls = feeds.add_parser("list", help="feeds with their health and next check")
    ls.add_argument("--json", action="store_true")
    rm = feeds.add_parser("remove", help="stop polling a feed and forget its state")
    rm.add_argument("feed_id", metavar="ID")

    keys = sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    kc = keys.add_parser("create", help="create a key; the token is printed once")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scope", action="append", choices=["read", "admin"], help="repeatable")
    keys.add_parser("list", help="keys (never their tokens)").add_argument(
        "--json", action="store_true"
    )
    keys.add_parser("revoke", help="revoke a key at once").add_argument("key_id", metavar="ID")

    subs = sub.add_parser("subscriptions", help="manage alert subscriptions").add_subparsers(
        dest="subs_command", required=True, metavar="ACTION"
    )
    sadd = subs.add_parser("add", help="add a subscription; prints its id and signing secret")
    target = sadd.add_mutually_exclusive_group(required=True)
    target.add_argument("--webhook", metavar="URL")
    target.add_argument("--email", metavar="ADDR", action="append", default=[])
    sadd.add_argument("--name")
    sadd.add_argument("--topic", action="append", default=[])
    sadd.add_argument("--all-topics", action="store_true", help="every --topic (default: any)")
    sadd.add_argument("--official", action="append", default=[])
    sadd.add_argument("--country", action="append", default=[])
    sadd.add_argument("--feed", action="append", default=[], metavar="FEED_ID")
    sadd.add_argument("--word", action="append", default=[])
    sadd.add_argument("--relevant-only", action="store_true")
    sadd.add_argument("--min-score", type=float, default=0.0)
    sadd.add_argument("--digest", metavar="hourly|daily@HH:MM[/TZ]")
    sadd.add_argument(
        "--rate-limit", type=int, metavar="N", help="instant alerts per hour; excess → digest"
    )
    sadd.add_argument("--secret", metavar="whsec_…", help="signing secret (default: generated)")
    sadd.add_argument("--json", action="store_true")
    sls = subs.add_parser("list", help="subscriptions with their mode and state")
    sls.add_argument("--json", action="store_true")
    srm = subs.add_parser("remove", help="delete a subscription")
    srm.add_argument("subscription_id", metavar="ID")

    cls = sub.add_parser("classify", help="classify JSONL items (FILE or -) to JSON lines")
    cls.add_argument("file")
    ev = sub.add_parser("eval", help="evaluate the rules on a gold-labelled JSONL file")
    ev.add_argument("file")
    ev.add_argument("--json", action="store_true")
    rc = sub.add_parser("reclassify", help="re-tag stored items after a rules change")
    rc.add_argument("--since", type=datetime.fromisoformat, metavar="DATE")

    poll = sub.add_parser("poll", help="poll feeds now, print a summary and exit")
    poll.add_argument("--once", action="store_true", help="poll once and exit (the default)")
    poll.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    poll.add_argument("feed_ids", nargs="*", metavar="FEED_ID")
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
    for line in retired_in_environment():
        logging.getLogger("newsmon").warning(line)
    try:
        if args.command in ("classify", "eval"):
            from runner import commands

            return commands.offline(settings, args)
        if args.command in ("feeds", "poll", "keys", "subscriptions", "reclassify"):
            return run_async(_command(settings, args), event_loop_for((), settings.event_loop))
        roles = ROLES if args.command == "serve" else (args.command,)
        return run_async(_run(settings, roles), event_loop_for(roles, settings.event_loop))
    except (NewsmonError, ValueError) as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return 1


async def _command(settings: Settings, args: argparse.Namespace) -> int:
    from runner import commands

    if args.command == "poll":
        return await commands.poll(settings, args.feed_ids, args.progress)
    if args.command == "keys":
        return await commands.keys(settings, args)
    if args.command == "reclassify":
        return await commands.reclassify(settings, args.since)
    if args.command == "subscriptions":
        if args.subs_command == "add":
            return await commands.subscriptions_add(settings, args)
        if args.subs_command == "list":
            return await commands.subscriptions_list(settings, args.json)
        return await commands.subscriptions_remove(settings, args.subscription_id)
    if args.feeds_command == "add":
        return await commands.feeds_add(
            settings, args.url, args.name, args.interval, args.full_text, args.json
        )
    if args.feeds_command == "list":
        return await commands.feeds_list(settings, args.json)
    return await commands.feeds_remove(settings, args.feed_id)


async def _run(settings: Settings, roles: tuple[str, ...]) -> int:
    from runner import roles as runtime

    return await runtime.run(settings, roles)


if __name__ == "__main__":
    sys.exit(main())
