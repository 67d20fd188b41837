"""Full classification against a bare pyahocorasick scan of the same text, same terms.

The corpus is generated from the dev set (tests/data/dev.jsonl): items are stitched from
its titles and paragraphs, shuffled with a fixed seed, to ``N`` items of 2–8 paragraphs.
The bare side lower-cases each field and runs ``Automaton.iter`` over it with every rule
term and lexicon word (the same keys the engine compiles); it builds no labels. The full
side is ``Classifier.classify`` (normalisation with offsets, matching, conditions, labels,
evidence, score). MB/s counts the UTF-8 bytes of title + text. Best of ``REPEATS``.
Target: full classification reaches ``TARGET`` of the bare scan's MB/s.
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


def _best(fn: object, items: list[tuple[str, str]]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(items)
        times.append(time.perf_counter() - t0)
    return min(times)


def run(quick: bool) -> None:
    n = N_QUICK if quick else N_FULL
    items = corpus(n)
    size = sum(len(t.encode()) + len(x.encode()) for t, x in items) / 1e6
    classifier = Classifier(load_lexicon())
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

    t_bare = _best(bare, items)
    t_full = _best(full, items)
    print(f"corpus: {n:,} items, {size:.1f} MB (from {DEV.name}); best of {REPEATS}")
    print(f"{'':<24}{'items/s':>12}{'MB/s':>10}")
    print(f"{'bare pyahocorasick':<24}{n / t_bare:>12,.0f}{size / t_bare:>10.1f}")
    print(f"{'full classification':<24}{n / t_full:>12,.0f}{size / t_full:>10.1f}")
    ratio = t_bare / t_full
    verdict = "target met" if ratio >= TARGET else "target NOT met"
    print(f"target: full/bare MB/s >= {TARGET:.0%}; measured {ratio:.0%}: {verdict}")
