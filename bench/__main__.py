"""``python -m bench [--quick] [--profile] [section]``: run every benchmark section in order.

A section is a function ``run(quick: bool) -> None`` that prints its own report. Add new
sections to ``SECTIONS``; they run in the order listed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable, Sequence

from bench import bus, polling

Section = Callable[[bool], None]

SECTIONS: dict[str, Section] = {
    "bus": bus.run,
    "polling": polling.run,
    "notifier": __import__("bench.notifier", fromlist=["run"]).run,
    "classifier": __import__("bench.classifier", fromlist=["run"]).run,
    "api": __import__("bench.api", fromlist=["run"]).run,
    "scale": __import__("bench.scale", fromlist=["run"]).run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("section", nargs="?", choices=sorted(SECTIONS), help="run only this one")
    parser.add_argument("--quick", action="store_true", help="short run (smaller N)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run under cProfile and print the top functions (timings are then inflated)",
    )
    args = parser.parse_args(argv)
    chosen = [args.section] if args.section else list(SECTIONS)
    for name in chosen:
        print(f"== bench: {name}{' (quick)' if args.quick else ''} ==", flush=True)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(SECTIONS[name], args.quick)
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("tottime").print_stats(30)
        else:
            SECTIONS[name](args.quick)
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
