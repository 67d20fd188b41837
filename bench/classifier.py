"""Full classification against a bare pyahocorasick scan of the same text, same terms.

The corpus is generated from the dev set (tests/data/dev.jsonl): items are stitched from
its titles and paragraphs, shuffled with a fixed seed, to ``N`` items of 2–8 paragraphs.
The bare side lower-cases each field and runs ``Automaton.iter`` over it with every rule
term and lexicon word (the same keys the engine compiles); it builds no labels. The full
side is ``Classifier.classify`` (normalisation with offsets, matching, conditions, labels,
evidence, score, the Labels and Match objects), with the engine the service runs by default
(the compiled one when it is built), and, for reference, with the Python engine. MB/s counts
the UTF-8 bytes of title + text. Best of ``REPEATS``; the sides alternate, so a slow spell
of the machine does not fall on one side only. Target: full classification (default
engine) reaches ``TARGET`` of the bare scan's MB/s.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import ahocorasick

from classifier.engine import Classifier
from classifier.lexicon import load_lexicon

DEV = Path(__file__).resolve().parents[1] / "tests" / "data" / "dev.jsonl"
N_FULL = 20_000
N_QUICK = 2_000
REPEATS = 3
TARGET = 0.40


def corpus(n: int) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in DEV.read_text(encoding="utf-8").splitlines() if x.strip()]
    titles = [r["title"] for r in rows]
    paragraphs = [r["content"] for r in rows]
    rng = random.Random(4)
    return [
        (rng.choice(titles), "\n\n".join(rng.sample(paragraphs, rng.randint(2, 8))))
        for _ in range(n)
    ]


def bare_automaton() -> object:
    lexicon = load_lexicon()
    automaton = ahocorasick.Automaton()
    for key, value in lexicon.automaton.items():
        automaton.add_word(key, value)
    automaton.make_automaton()
    return automaton


def _best(fns: list[object], items: list[tuple[str, str]]) -> list[float]:
    """Best time of each of ``fns`` over ``REPEATS`` rounds, taking turns."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for fn, spent in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn(items)
            spent.append(time.perf_counter() - t0)
    return [min(spent) for spent in times]


def run(quick: bool) -> None:
    n = N_QUICK if quick else N_FULL
    items = corpus(n)
    size = sum(len(t.encode()) + len(x.encode()) for t, x in items) / 1e6
    lexicon = load_lexicon()
    classifier = Classifier(lexicon)
    python = Classifier(lexicon, "python")
    automaton: ahocorasick.Automaton = bare_automaton()

    def bare(batch: list[tuple[str, str]]) -> int:
        hits = 0
        for title, text in batch:
            for _ in automaton.iter(title.lower()):
                hits += 1
            for _ in automaton.iter(text.lower()):
                hits += 1
        return hits

    def full(batch: list[tuple[str, str]]) -> int:
        return sum(len(classifier.classify(t, x).matches) for t, x in batch)

    def full_python(batch: list[tuple[str, str]]) -> int:
        return sum(len(python.classify(t, x).matches) for t, x in batch)

    t_bare, t_full, t_python = _best([bare, full, full_python], items)
    print(f"corpus: {n:,} items, {size:.1f} MB (from {DEV.name}); best of {REPEATS}")
    print(f"{'':<34}{'items/s':>12}{'MB/s':>10}{'× bare':>9}")
    rows = [
        ("bare pyahocorasick", t_bare),
        (f"full classification ({classifier.engine})", t_full),
    ]
    if classifier.engine != "python":
        rows.append(("full classification (python)", t_python))
    for name, spent in rows:
        print(f"{name:<34}{n / spent:>12,.0f}{size / spent:>10.1f}{t_bare / spent:>9.2f}")
    ratio = t_bare / t_full
    verdict = "target met" if ratio >= TARGET else "target NOT met"
    note = "" if classifier.engine == "compiled" else " (the compiled engine is not built)"
    print(
        f"target: full/bare MB/s >= {TARGET:.0%} with the default engine "
        f"({classifier.engine}{note}); measured {ratio:.0%}: {verdict}"
    )
