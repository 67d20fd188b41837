"""The rule engine: one item's title and text in, labels and their evidence out.

Owns: finding lexicon terms in a field (one Aho-Corasick pass per field, whole words only,
longest match wins on overlaps), applying per-rule conditions (case, negative context,
name-needs-context), deriving implied labels, relevance and the score.

Must not: do any I/O (the lexicon arrives already loaded), keep state between calls, or
depend on anything but its arguments: the same lexicon and input give the same Labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from classifier.lexicon import Lexicon, Rule, Term
from classifier.normalise import Normalised, normalise, normalise_term
from core.models import Field_, LabelKind, Labels, Match

# How far (in normalised characters) either side of a hit an `unless_near` word cancels it.
NEAR_WINDOW = 60
# Both countries must be present for an item to be about Cambodia–Laos ties.
PAIR = frozenset({"cambodia", "laos"})
# Relevant items score in [RELEVANT_FLOOR, 1); others in [0, IRRELEVANT_CEILING].
RELEVANT_FLOOR = 0.5
IRRELEVANT_CEILING = 0.45
_FIELD_ORDER: dict[Field_, int] = {"title": 0, "text": 1}
_KINDS: tuple[LabelKind, ...] = ("topic", "official", "country", "organisation")


@dataclass(frozen=True, slots=True)
class _Hit:
    """A whole-word occurrence of one automaton key, before item-level conditions."""

    field: Field_
    start: int  # original offsets
    end: int
    text: str
    terms: tuple[Term, ...]  # empty for an `ignore` phrase


class Classifier:
    """Labels items with a compiled :class:`Lexicon`. Thread-safe: it holds no state."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon

    @property
    def rules_version(self) -> str:
        return self._lexicon.version

    def classify(self, title: str, text: str) -> Labels:
        """Classify one item from its title and body text."""
        hits = [*self._scan("title", title), *self._scan("text", text)]
        accepted = _accept(hits)
        matches = sorted(
            set(_evidence(accepted)),
            key=lambda m: (_FIELD_ORDER[m.field], m.start, m.end, m.kind, m.label, m.rule),
        )
        found: dict[LabelKind, set[str]] = {kind: set() for kind in _KINDS}
        for match in matches:
            found[match.kind].add(match.label)
        relevant = found["country"] >= PAIR and bool(found["topic"])
        return Labels(
            topics=sorted(found["topic"]),
            officials=sorted(found["official"]),
            countries=sorted(found["country"]),
            organisations=sorted(found["organisation"]),
            relevant=relevant,
            score=_score(matches, relevant=relevant),
            matches=matches,
            rules_version=self._lexicon.version,
        )

    def _scan(self, field: Field_, original: str) -> list[_Hit]:
        """One automaton pass over a field: whole-word, locally valid, longest-first hits."""
        norm = normalise(original)
        candidates: list[tuple[int, int, tuple[Term, ...]]] = []
        for last, (key, terms) in self._lexicon.automaton.iter(norm.text):
            start, end = last - len(key) + 1, last + 1
            if not _bounded(norm.text, start, end, key):
                continue
            alive = tuple(t for t in terms if _locally_valid(t, norm, start, end, original))
            if terms and not alive:
                continue  # a cancelled term must not shadow a shorter valid one
            candidates.append((start, end, alive))
        hits = []
        for start, end, terms in _longest_first(candidates, len(norm.text)):
            o_start, o_end = norm.original_span(start, end)
            hits.append(_Hit(field, o_start, o_end, original[o_start:o_end], terms))
        return hits


def _bounded(text: str, start: int, end: int, key: str) -> bool:
    """Whole-word test: a letter/digit edge of the key must not touch another one."""
    if key[0].isalnum() and start > 0 and text[start - 1].isalnum():
        return False
    return not (key[-1].isalnum() and end < len(text) and text[end].isalnum())


def _locally_valid(term: Term, norm: Normalised, start: int, end: int, original: str) -> bool:
    rule = term.rule
    if rule.match_case:
        o_start, o_end = norm.original_span(start, end)
        if normalise_term(original[o_start:o_end], fold_case=False) != term.cased:
            return False
    if rule.unless_near:
        window = norm.text[max(0, start - NEAR_WINDOW) : end + NEAR_WINDOW]
        if any(_has_word(window, word) for word in rule.unless_near):
            return False
    return True


def _has_word(text: str, word: str) -> bool:
    at = text.find(word)
    while at >= 0:
        if _bounded(text, at, at + len(word), word):
            return True
        at = text.find(word, at + 1)
    return False


def _longest_first(
    candidates: list[tuple[int, int, tuple[Term, ...]]], size: int
) -> list[tuple[int, int, tuple[Term, ...]]]:
    """Resolve overlaps: longer spans win, then the earlier one; return in text order."""
    taken = bytearray(size)
    chosen = []
    for cand in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
        start, end = cand[0], cand[1]
        if any(taken[start:end]):
            continue
        taken[start:end] = b"\x01" * (end - start)
        chosen.append(cand)
    return sorted(chosen, key=lambda c: c[0])


def _accept(hits: list[_Hit]) -> list[tuple[_Hit, Rule]]:
    """Apply item-level conditions: conditional rules need the full name or a country."""
    unconditional = [(h, t.rule) for h in hits for t in h.terms if t.rule.context is None]
    present: set[tuple[LabelKind, str]] = set()
    for _hit, rule in unconditional:
        present.add((rule.kind, rule.label))
        present.update(rule.implies)
    countries = {label for kind, label in present if kind == "country"}
    conditional = [
        (h, t.rule)
        for h in hits
        for t in h.terms
        if t.rule.context is not None
        and ((t.rule.kind, t.rule.label) in present or countries & set(t.rule.context))
    ]
    return unconditional + conditional


def _evidence(accepted: Iterable[tuple[_Hit, Rule]]) -> Iterator[Match]:
    """One Match per label a hit gives: the rule's own label, then what it implies."""
    for hit, rule in accepted:
        for kind, label in ((rule.kind, rule.label), *rule.implies):
            yield Match(
                kind=kind,
                label=label,
                rule=rule.id,
                text=hit.text,
                field=hit.field,
                start=hit.start,
                end=hit.end,
            )


def _score(matches: list[Match], *, relevant: bool) -> float:
    """Deterministic confidence in [0, 1].

    Each distinct topic counts 1 (2 when the title carries it), each topic hit adds 0.15,
    each title hit of any kind 0.3 (capped); irrelevant items also earn a little for
    countries, officials and organisations. The sum is squashed with 1 - exp(-x/4), then
    placed in [0.5, 1) for relevant items and [0, 0.45] for the rest, so any relevant item
    outranks any irrelevant one.
    """
    if not matches:
        return 0.0
    topic_matches = [m for m in matches if m.kind == "topic"]
    topics = {m.label for m in topic_matches}
    title_topics = {m.label for m in topic_matches if m.field == "title"}
    title_hits = len({(m.start, m.end) for m in matches if m.field == "title"})
    strength = (
        len(topics)
        + len(title_topics)
        + 0.15 * min(len(topic_matches), 30)
        + 0.3 * min(title_hits, 5)
    )
    if relevant:
        squashed = 1.0 - math.exp(-strength / 4.0)
        return round(RELEVANT_FLOOR + (1.0 - RELEVANT_FLOOR) * squashed * 0.999, 4)
    others = len({(m.kind, m.label) for m in matches if m.kind != "topic"})
    squashed = 1.0 - math.exp(-(strength + 0.2 * min(others, 10)) / 4.0)
    return round(IRRELEVANT_CEILING * squashed, 4)
