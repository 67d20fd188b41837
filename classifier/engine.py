"""The rule engine: one item's title and text in, labels and their evidence out.

Owns: finding rule terms and lexicon words in a field (one Aho-Corasick pass per field over
the normalised text, whole words only, longest match wins among label terms), evaluating
each rule's conditions (case, proximity, field, negative context, context requirements,
other labels), deriving implied labels, relevance (the rules file's ``relevance``) and the
score.

Must not: do any I/O (the rules arrive already loaded), keep state between calls, or
depend on anything but its arguments: the same rules and input give the same Labels.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from classifier.lexicon import Condition, Lexicon, Relevance, Rule, Term
from classifier.normalise import Normalised, normalise, normalise_term
from core.models import Field_, LabelKind, Labels, Match

# Relevant items score in [RELEVANT_FLOOR, 1); others in [0, IRRELEVANT_CEILING].
RELEVANT_FLOOR = 0.5
IRRELEVANT_CEILING = 0.45
_FIELD_ORDER: dict[Field_, int] = {"title": 0, "text": 1}
_KINDS: tuple[LabelKind, ...] = ("topic", "official", "country", "organisation")
_SPACE = re.compile(" ")
# A condition's truth for one hit: None when the condition is decided in another phase.
_Truth = Callable[[Condition], bool | None]


@dataclass(frozen=True, slots=True)
class _Hit:
    """A whole-word occurrence of label terms, after local conditions and overlaps."""

    field: Field_
    start: int  # original offsets
    end: int
    text: str
    terms: tuple[Term, ...]  # empty for an `ignore` phrase


@dataclass(slots=True)
class _Field:
    """One scanned field: its normalised text and the lexicon words found in it."""

    name: Field_
    norm: Normalised
    cues: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # lexicon → spans
    _spaces: list[int] | None = None

    def word_at(self, pos: int) -> int:
        """Index of the word holding normalised position ``pos`` (spaces counted lazily)."""
        if self._spaces is None:
            self._spaces = [m.start() for m in _SPACE.finditer(self.norm.text)]
        return bisect_right(self._spaces, pos)

    def near(self, lexicon: str, start: int, end: int, within: int) -> bool:
        """A word of ``lexicon`` within ``within`` words of ``[start, end)`` (not inside it)."""
        spans = self.cues.get(lexicon)
        if not spans:
            return False
        first, last = self.word_at(start), self.word_at(end - 1)
        for c_start, c_end in spans:
            if c_start >= start and c_end <= end:
                continue  # the hit's own words are not its context
            if c_start >= end:
                gap = self.word_at(c_start) - last
            elif c_end <= start:
                gap = first - self.word_at(c_end - 1)
            else:
                gap = 0
            if gap <= within:
                return True
        return False


class Classifier:
    """Labels items with a compiled :class:`Lexicon`. Thread-safe: it holds no state."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon

    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    @property
    def rules_version(self) -> str:
        return self._lexicon.version

    def classify(self, title: str, text: str) -> Labels:
        """Classify one item from its title and body text."""
        title_field, title_hits = self._scan("title", title)
        text_field, text_hits = self._scan("text", text)
        fields = {"title": title_field, "text": text_field}
        anywhere: set[str] = {*title_field.cues, *text_field.cues}
        accepted = _accept([*title_hits, *text_hits], fields, anywhere)
        matches = sorted(
            set(_evidence(accepted)),
            key=lambda m: (_FIELD_ORDER[m.field], m.start, m.end, m.kind, m.label, m.rule),
        )
        found: dict[LabelKind, set[str]] = {kind: set() for kind in _KINDS}
        for match in matches:
            found[match.kind].add(match.label)
        relevant = _relevant(self._lexicon.relevance, found)
        weights = {rule.id: rule.weight for _hit, rule in accepted}
        return Labels(
            topics=sorted(found["topic"]),
            officials=sorted(found["official"]),
            countries=sorted(found["country"]),
            organisations=sorted(found["organisation"]),
            relevant=relevant,
            score=_score(matches, weights, self._lexicon.title_weight, relevant=relevant),
            matches=matches,
            rules_version=self._lexicon.version,
        )

    def _scan(self, name: Field_, original: str) -> tuple[_Field, list[_Hit]]:
        """One automaton pass over a field: lexicon words, then locally valid, longest-first
        label hits."""
        norm = normalise(original)
        scanned = _Field(name, norm)
        raw: list[tuple[int, int, tuple[Term, ...]]] = []
        text = norm.text
        for last, (key, terms, cues) in self._lexicon.automaton.iter(text):
            start, end = last - len(key) + 1, last + 1
            if not _bounded(text, start, end, key):
                continue
            for lexicon in cues:
                scanned.cues.setdefault(lexicon, []).append((start, end))
            if terms or not cues:  # label terms, or an `ignore` phrase
                raw.append((start, end, terms))
        candidates = []
        for start, end, terms in raw:
            alive = tuple(t for t in terms if _locally_valid(t, scanned, start, end, original))
            if terms and not alive:
                continue  # a cancelled term must not shadow a shorter valid one
            candidates.append((start, end, alive))
        hits = []
        for start, end, terms in _longest_first(candidates, len(text)):
            o_start, o_end = norm.original_span(start, end)
            hits.append(_Hit(name, o_start, o_end, original[o_start:o_end], terms))
        return scanned, hits


def _bounded(text: str, start: int, end: int, key: str) -> bool:
    """Whole-word test: a letter/digit edge of the key must not touch another one."""
    if key[0].isalnum() and start > 0 and text[start - 1].isalnum():
        return False
    return not (key[-1].isalnum() and end < len(text) and text[end].isalnum())


def _locally_valid(term: Term, scanned: _Field, start: int, end: int, original: str) -> bool:
    """Conditions that need only the hit and its field: case, field, proximity."""
    rule = term.rule
    if rule.match_case:
        o_start, o_end = scanned.norm.original_span(start, end)
        if normalise_term(original[o_start:o_end], fold_case=False) != term.cased:
            return False
    if not (rule.all or rule.any or rule.none):
        return True
    return _conditions_hold(rule, lambda c: _local(c, scanned, start, end), local_only=True)


def _local(cond: Condition, scanned: _Field, start: int, end: int) -> bool | None:
    """A local condition's truth, or None for an item-level one (decided later)."""
    if cond.kind == "field":
        return scanned.name == cond.field
    if cond.kind == "near" and cond.within is not None:
        return scanned.near(cond.lexicon, start, end, cond.within)
    return None


def _conditions_hold(rule: Rule, truth: _Truth, *, local_only: bool = False) -> bool:
    """all: every one true; any: one true (or none listed); none: none true.

    With ``local_only``, undecided (item-level) conditions count as passing so that
    the item-level phase can decide them.
    """

    def value(cond: Condition, default: bool) -> bool:
        got = truth(cond)
        return default if got is None else got

    if not all(value(c, True) for c in rule.all):
        return False
    if rule.any and not any(value(c, local_only) for c in rule.any):
        return False
    return not any(value(c, False) for c in rule.none)


def _longest_first(
    candidates: list[tuple[int, int, tuple[Term, ...]]], size: int
) -> list[tuple[int, int, tuple[Term, ...]]]:
    """Resolve overlaps: longer spans win, then the earlier one; return in text order."""
    if len(candidates) < 2:
        return candidates
    taken = bytearray(size)
    chosen = []
    for cand in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
        start, end = cand[0], cand[1]
        if any(taken[start:end]):
            continue
        taken[start:end] = b"\x01" * (end - start)
        chosen.append(cand)
    return sorted(chosen, key=lambda c: c[0])


def _accept(
    hits: list[_Hit], fields: dict[str, _Field], anywhere: set[str]
) -> list[tuple[_Hit, Rule]]:
    """Item-level conditions, in two phases: rules that do not look at other labels fire
    first; rules that do (context requirements, label/kind conditions) then see the labels
    of phase one (so no rule depends on another conditional rule)."""

    def item_truth(present: set[tuple[LabelKind, str]]) -> _Truth:
        kinds = {kind for kind, _ in present}

        def truth(cond: Condition) -> bool | None:
            if cond.kind == "label":
                return cond.label in present
            if cond.kind == "kind":
                return cond.label_kind in kinds
            if cond.kind == "near" and cond.within is None:
                return cond.lexicon in anywhere
            return None  # local: already decided in the scan

        return truth

    phase_one: list[tuple[_Hit, Rule]] = []
    later: list[tuple[_Hit, Rule]] = []
    for hit in hits:
        for term in hit.terms:
            (later if term.rule.needs_labels else phase_one).append((hit, term.rule))
    none_present: set[tuple[LabelKind, str]] = set()
    first = [(h, r) for h, r in phase_one if _item_ok(r, item_truth(none_present))]
    present: set[tuple[LabelKind, str]] = set()
    for _hit, rule in first:
        present.add((rule.kind, rule.label))
        present.update(rule.implies)
    countries = {label for kind, label in present if kind == "country"}
    truth = item_truth(present)
    second = [
        (h, r)
        for h, r in later
        if (r.context is None or (r.kind, r.label) in present or bool(countries & set(r.context)))
        and _item_ok(r, truth)
    ]
    return first + second


def _item_ok(rule: Rule, truth: _Truth) -> bool:
    if not (rule.all or rule.any or rule.none):
        return True
    return _conditions_hold(rule, truth, local_only=True)


def _relevant(relevance: Relevance, found: dict[LabelKind, set[str]]) -> bool:
    def truth(cond: Condition) -> bool:
        if cond.kind == "label" and cond.label is not None:
            kind, label = cond.label
            return label in found[kind]
        return cond.kind == "kind" and cond.label_kind is not None and bool(found[cond.label_kind])

    if not all(truth(c) for c in relevance.all):
        return False
    if relevance.any and not any(truth(c) for c in relevance.any):
        return False
    return not any(truth(c) for c in relevance.none)


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


def _score(
    matches: list[Match], weights: dict[str, float], title_weight: float, *, relevant: bool
) -> float:
    """Deterministic confidence in [0, 1].

    Each distinct topic counts 1 (``title_weight`` when the title carries it), each topic
    hit adds 0.15 × its rule's weight, each title hit of any kind 0.3 (capped); irrelevant
    items also earn a little for countries, officials and organisations. The sum is
    squashed with 1 - exp(-x/4), then placed in [0.5, 1) for relevant items and [0, 0.45]
    for the rest, so any relevant item outranks any irrelevant one.
    """
    if not matches:
        return 0.0
    topic_matches = [m for m in matches if m.kind == "topic"]
    topics = {m.label for m in topic_matches}
    title_topics = {m.label for m in topic_matches if m.field == "title"}
    title_hits = len({(m.start, m.end) for m in matches if m.field == "title"})
    hit_weight = sum(weights.get(m.rule, 1.0) for m in topic_matches[:30])
    strength = (
        len(topics)
        + (title_weight - 1.0) * len(title_topics)
        + 0.15 * hit_weight
        + 0.3 * min(title_hits, 5)
    )
    if relevant:
        squashed = 1.0 - math.exp(-strength / 4.0)
        return round(RELEVANT_FLOOR + (1.0 - RELEVANT_FLOOR) * squashed * 0.999, 4)
    others = len({(m.kind, m.label) for m in matches if m.kind != "topic"})
    squashed = 1.0 - math.exp(-(strength + 0.2 * min(others, 10)) / 4.0)
    return round(IRRELEVANT_CEILING * squashed, 4)
