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
from collections.abc import Callable, Iterable, Iterator

from classifier.lexicon import Condition, Lexicon, LocalCheck, Relevance, Rule, Term
from classifier.normalise import Normalised, normalise, normalise_term
from core.models import Field_, LabelKind, Labels, Match

# Relevant items score in [RELEVANT_FLOOR, 1); others in [0, IRRELEVANT_CEILING].
RELEVANT_FLOOR = 0.5
IRRELEVANT_CEILING = 0.45
_FIELD_ORDER: dict[Field_, int] = {"title": 0, "text": 1}
_KINDS: tuple[LabelKind, ...] = ("topic", "official", "country", "organisation")
# A condition's truth for one hit: None when the condition is decided in another phase.
_Truth = Callable[[Condition], bool | None]
# A whole-word occurrence of label terms, after local conditions and overlaps:
# (field, original start, original end, original text, Terms; empty for an `ignore` phrase).
_Hit = tuple[Field_, int, int, str, tuple[Term, ...]]
# One piece of evidence before it becomes a Match, in the order matches are sorted:
# (field order, start, end, kind, label, rule id, text, field).
_Evidence = tuple[int, int, int, LabelKind, str, str, str, Field_]
_MATCH_FIELDS = frozenset(Match.model_fields)
# The Labels fields the engine sets (story_id is left to the story index).
_LABELS_SET = frozenset(Labels.model_fields) - {"story_id"}
_new = object.__new__
_set = object.__setattr__


def _labels(values: dict[str, object]) -> Labels:
    """Labels from the engine's own values (``_LABELS_SET``), without validation: as
    ``_match``; the score is in [0, 1] by construction (see ``_score``)."""
    labels = _new(Labels)
    _set(labels, "__dict__", {**values, "story_id": None})
    _set(labels, "__pydantic_fields_set__", set(_LABELS_SET))
    _set(labels, "__pydantic_extra__", None)
    _set(labels, "__pydantic_private__", None)
    return labels


def _match(
    kind: LabelKind, label: str, rule: str, text: str, f: Field_, start: int, end: int
) -> Match:
    """A Match from the engine's own, already well-typed values, without validation.

    What ``Match.model_construct`` does for a model without defaults, aliases, extras or
    private attributes, at a fifth of its cost (it and validation dominated classification;
    tests compare these with validated Matches).
    """
    match = _new(Match)
    _set(
        match,
        "__dict__",
        {"kind": kind, "label": label, "rule": rule, "text": text, "field": f,
         "start": start, "end": end},
    )  # fmt: skip
    _set(match, "__pydantic_fields_set__", set(_MATCH_FIELDS))
    _set(match, "__pydantic_extra__", None)
    _set(match, "__pydantic_private__", None)
    return match


# One automaton hit: (last normalised index, the key's data; see Lexicon.automaton).
_Raw = tuple[int, tuple[int, bool, bool, tuple[Term, ...], tuple[str, ...], bool]]


class _Field:
    """One scanned field: its normalised text, its automaton hits, and (built on first use,
    as most hits only ever need their label terms) the lexicon words found in it."""

    __slots__ = ("_cues", "name", "norm", "raw")

    def __init__(self, name: Field_, norm: Normalised, raw: list[_Raw]) -> None:
        self.name = name
        self.norm = norm
        self.raw = raw
        self._cues: dict[str, list[tuple[int, int]]] | None = None

    @property
    def cues(self) -> dict[str, list[tuple[int, int]]]:
        """Lexicon name → spans of its whole-word occurrences, in text order."""
        if self._cues is None:
            cues: dict[str, list[tuple[int, int]]] = {}
            text = self.norm.text
            size = len(text)
            for last, (length, head, tail, _terms, names, _simple) in self.raw:
                if not names:
                    continue
                start, end = last - length + 1, last + 1
                if head and start and text[start - 1].isalnum():
                    continue
                if tail and end < size and text[end].isalnum():
                    continue
                for lexicon in names:
                    if lexicon in cues:
                        cues[lexicon].append((start, end))
                    else:
                        cues[lexicon] = [(start, end)]
            self._cues = cues
        return self._cues

    def near(self, lexicon: str, start: int, end: int, within: int) -> bool:
        """A word of ``lexicon`` within ``within`` words of ``[start, end)`` (not inside it).

        Words are separated by one space after normalisation, so the gap in words between
        two spans is the number of spaces between them.
        """
        spans = self.cues.get(lexicon)
        if not spans:
            return False
        count = self.norm.text.count
        for c_start, c_end in spans:
            if c_start >= start and c_end <= end:
                continue  # the hit's own words are not its context
            if c_start >= end:
                gap = count(" ", end, c_start + 1)
            elif c_end <= start:
                gap = count(" ", c_end, start + 1)
            else:
                gap = 0
            if gap <= within:
                return True
        return False


class Classifier:
    """Labels items with a compiled :class:`Lexicon`. Thread-safe: it holds no state."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon
        self._iter = lexicon.automaton.iter

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
        accepted = _accept([*title_hits, *text_hits], (title_field, text_field))
        evidence = sorted(set(_evidence(accepted)))
        found: dict[LabelKind, set[str]] = {kind: set() for kind in _KINDS}
        for ev in evidence:
            found[ev[3]].add(ev[4])
        relevant = _relevant(self._lexicon.relevance, found)
        weights = {rule.id: rule.weight for _hit, rule in accepted}
        return _labels(
            {
                "topics": sorted(found["topic"]),
                "officials": sorted(found["official"]),
                "countries": sorted(found["country"]),
                "organisations": sorted(found["organisation"]),
                "relevant": relevant,
                "score": _score(evidence, weights, self._lexicon.title_weight, relevant=relevant),
                "matches": [_match(e[3], e[4], e[5], e[6], e[7], e[1], e[2]) for e in evidence],
                "rules_version": self._lexicon.version,
            }
        )

    def _scan(self, name: Field_, original: str) -> tuple[_Field, list[_Hit]]:
        """One automaton pass over a field, then its locally valid, longest-first label hits.

        Every hit is collected in C (``list``); Python then looks only at hits of label
        terms (lexicon words wait until a proximity condition asks for them), using the
        key's precomputed data (see Lexicon.automaton).
        """
        norm = normalise(original)
        text = norm.text
        raw: list[_Raw] = list(self._iter(text))
        scanned = _Field(name, norm, raw)
        size = len(text)
        candidates: list[tuple[int, int, tuple[Term, ...]]] = []
        conditional: list[int] = []  # candidates with a term that has local conditions
        for last, (length, head, tail, terms, names, simple) in raw:
            if not terms and names:
                continue  # lexicon words only
            start, end = last - length + 1, last + 1
            # Whole words only: a letter/digit edge of the key must not touch another one.
            if head and start and text[start - 1].isalnum():
                continue
            if tail and end < size and text[end].isalnum():
                continue
            candidates.append((start, end, terms))  # label terms, or an `ignore` phrase
            if not simple:
                conditional.append(len(candidates) - 1)
        if conditional:
            candidates = _locally_alive(candidates, conditional, scanned, original)
        hits: list[_Hit] = []
        span = norm.original_span
        for start, end, terms in _longest_first(candidates, size):
            o_start, o_end = span(start, end)
            hits.append((name, o_start, o_end, original[o_start:o_end], terms))
        return scanned, hits


def _locally_alive(
    candidates: list[tuple[int, int, tuple[Term, ...]]],
    conditional: list[int],
    scanned: _Field,
    original: str,
) -> list[tuple[int, int, tuple[Term, ...]]]:
    """Keep the terms of the ``conditional`` candidates whose local conditions hold; drop a
    candidate whose terms all failed (a cancelled term must not shadow a shorter valid
    one)."""
    out = list(candidates)
    for index in reversed(conditional):
        start, end, terms = candidates[index]
        alive = tuple(
            t for t in terms if t.simple or _locally_valid(t, scanned, start, end, original)
        )
        if alive:
            out[index] = (start, end, alive)
        else:
            del out[index]
    return out


def _locally_valid(term: Term, scanned: _Field, start: int, end: int, original: str) -> bool:
    """Conditions that need only the hit and its field: case, field, proximity.

    all: every hit-level one holds; any: one holds (an item-level ``any`` list is left to
    the item phase); none: none holds.
    """
    if term.rule.match_case:
        o_start, o_end = scanned.norm.original_span(start, end)
        if normalise_term(original[o_start:o_end], fold_case=False) != term.cased:
            return False
    for check in term.local_all:
        if not _holds(check, scanned, start, end):
            return False
    if term.local_any and not any(_holds(c, scanned, start, end) for c in term.local_any):
        return False
    return not any(_holds(c, scanned, start, end) for c in term.local_none)


def _holds(check: LocalCheck, scanned: _Field, start: int, end: int) -> bool:
    lexicon, within, place = check
    if lexicon is None:
        return scanned.name == place
    return scanned.near(lexicon, start, end, within)


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


def _start(candidate: tuple[int, int, tuple[Term, ...]]) -> int:
    return candidate[0]


def _longest(candidate: tuple[int, int, tuple[Term, ...]]) -> tuple[int, int]:
    return candidate[0] - candidate[1], candidate[0]


def _longest_first(
    candidates: list[tuple[int, int, tuple[Term, ...]]], size: int
) -> list[tuple[int, int, tuple[Term, ...]]]:
    """Resolve overlaps: longer spans win, then the earlier one; return in text order.

    Only runs of mutually overlapping candidates need the contest (a candidate conflicts
    only with those it overlaps), so the rest pass straight through.
    """
    if len(candidates) < 2:
        return candidates
    ordered = sorted(candidates, key=_start)
    chosen: list[tuple[int, int, tuple[Term, ...]]] = []
    group = [ordered[0]]
    group_end = ordered[0][1]
    for cand in ordered[1:]:
        if cand[0] < group_end:
            group.append(cand)
            group_end = max(group_end, cand[1])
            continue
        chosen += group if len(group) == 1 else _contest(group)
        group = [cand]
        group_end = cand[1]
    chosen += group if len(group) == 1 else _contest(group)
    return chosen


def _contest(
    group: list[tuple[int, int, tuple[Term, ...]]],
) -> list[tuple[int, int, tuple[Term, ...]]]:
    """Longest first, then earliest; a candidate overlapping a winner loses."""
    won: list[tuple[int, int, tuple[Term, ...]]] = []
    for cand in sorted(group, key=_longest):
        start, end = cand[0], cand[1]
        if all(end <= w[0] or start >= w[1] for w in won):
            won.append(cand)
    return sorted(won, key=_start)


def _accept(hits: list[_Hit], fields: tuple[_Field, ...]) -> list[tuple[_Hit, Rule]]:
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
                return any(cond.lexicon in f.cues for f in fields)
            return None  # local: already decided in the scan

        return truth

    first: list[tuple[_Hit, Rule]] = []
    later: list[tuple[_Hit, Rule]] = []
    truth = item_truth(set())
    for hit in hits:
        for term in hit[4]:
            if term.needs_labels:
                later.append((hit, term.rule))
            elif not term.item_level or _item_ok(term.rule, truth):
                first.append((hit, term.rule))
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


def _evidence(accepted: Iterable[tuple[_Hit, Rule]]) -> Iterator[_Evidence]:
    """One piece of evidence per label a hit gives: the rule's own label, then what it
    implies."""
    for (f, start, end, text, _terms), rule in accepted:
        order = _FIELD_ORDER[f]
        yield order, start, end, rule.kind, rule.label, rule.id, text, f
        for kind, label in rule.implies:
            yield order, start, end, kind, label, rule.id, text, f


def _score(
    matches: list[_Evidence], weights: dict[str, float], title_weight: float, *, relevant: bool
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
    topic_matches = [m for m in matches if m[3] == "topic"]
    topics = {m[4] for m in topic_matches}
    title_topics = {m[4] for m in topic_matches if m[0] == 0}
    title_hits = len({(m[1], m[2]) for m in matches if m[0] == 0})
    hit_weight = sum(weights.get(m[5], 1.0) for m in topic_matches[:30])
    strength = (
        len(topics)
        + (title_weight - 1.0) * len(title_topics)
        + 0.15 * hit_weight
        + 0.3 * min(title_hits, 5)
    )
    if relevant:
        squashed = 1.0 - math.exp(-strength / 4.0)
        return round(RELEVANT_FLOOR + (1.0 - RELEVANT_FLOOR) * squashed * 0.999, 4)
    others = len({(m[3], m[4]) for m in matches if m[3] != "topic"})
    squashed = 1.0 - math.exp(-(strength + 0.2 * min(others, 10)) / 4.0)
    return round(IRRELEVANT_CEILING * squashed, 4)
