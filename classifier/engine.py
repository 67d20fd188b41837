"""The rule engine: one item's title and text in, labels and their evidence out.

Owns: finding rule terms and lexicon words in a field (one Aho-Corasick pass per field over
the normalised text, whole words only, longest match wins among label terms), evaluating
each rule's conditions (case, proximity, field, negative context, context requirements,
other labels), deriving implied labels, relevance (the rules file's ``relevance``) and the
score.

Must not: do any I/O (the rules arrive already loaded), keep state between calls, or
depend on anything but its arguments: the same rules and input give the same Labels.

Speed (``make bench`` measures it against a bare automaton scan of the same text): the
lexicon precomputes per key what a hit gives (``KeyData``), so a hit of a plain term costs
an unpack, a whole-word test and an append; only hits with conditions are looked at
further, and only runs of overlapping hits hold a contest. In CPython each bytecode counts:
the hot paths use loops and C calls (``sorted``, ``bisect``, ``str.count``) rather than
small functions and generators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from classifier.lexicon import (
    Condition,
    Evidence,
    KeyData,
    Lexicon,
    LocalCheck,
    Relevance,
    Rule,
    Term,
)
from classifier.normalise import Normalised, normalise, normalise_term
from core.models import Field_, LabelKind, Labels, Match

# Relevant items score in [RELEVANT_FLOOR, 1); others in [0, IRRELEVANT_CEILING].
RELEVANT_FLOOR = 0.5
IRRELEVANT_CEILING = 0.45
# A condition's truth for one hit: None when the condition is decided in another phase.
_Truth = Callable[[Condition], bool | None]
# A whole-word occurrence of a key that takes part in the longest-match contest, in
# normalised offsets: (start, end, evidence of its plain terms, its conditional terms).
# Once its conditional terms are decided (``_decide``): (start, end, all its evidence, ()).
_Contender = tuple[int, int, tuple[Evidence, ...], tuple[Term, ...]]
# Stands in for a contender whose terms all failed their hit-level tests.
_DEAD: _Contender = (-1, -1, (), ())
# A whole-word occurrence of a lexicon word: (start, end, the lexicons it is a word of).
_Cue = tuple[int, int, tuple[str, ...]]
_MATCH_FIELDS = frozenset(Match.model_fields)
# The Labels fields the engine sets (story_id is left to the story index).
_LABELS_SET = frozenset(Labels.model_fields) - {"story_id"}
_new = object.__new__
_set = object.__setattr__


def _labels(values: dict[str, object]) -> Labels:
    """Labels from the engine's own values (``_LABELS_SET``), without validation: as
    ``_matches``; the score is in [0, 1] by construction (see ``_score``)."""
    labels = _new(Labels)
    _set(labels, "__dict__", {**values, "story_id": None})
    _set(labels, "__pydantic_fields_set__", set(_LABELS_SET))
    _set(labels, "__pydantic_extra__", None)
    _set(labels, "__pydantic_private__", None)
    return labels


# Letters and digits among ASCII characters, as a bytes.translate table (1 = yes).
_ASCII_WORD = bytes(1 if chr(i).isalnum() else 0 for i in range(128)) + bytes(128)


def _word_chars(text: str) -> bytes:
    """1 for each letter or digit of ``text``, else 0, with a 0 before and after: so
    ``chars[i]`` says whether ``text[i - 1]`` is one, and the ends need no test."""
    if text.isascii():
        return b"\0%b\0" % text.encode("ascii").translate(_ASCII_WORD)
    return bytes([0, *map(str.isalnum, text), 0])


class _Field:
    """One scanned field: its text, original and normalised, the lexicon words found in it,
    and (once scanned) the contenders that won, in text order."""

    __slots__ = ("_cues", "cue_hits", "name", "norm", "order", "original", "text", "won")

    def __init__(self, name: Field_, original: str, norm: Normalised) -> None:
        self.name = name
        self.order = 0 if name == "title" else 1
        self.original = original
        self.norm = norm
        self.text = norm.text
        self.cue_hits: list[_Cue] = []
        self.won: list[_Contender] = []
        self._cues: dict[str, list[tuple[int, int]]] | None = None

    def cues(self, lexicon: str) -> list[tuple[int, int]]:
        """Spans of the whole-word occurrences of ``lexicon``'s words, in order of their
        ends (indexed on first use)."""
        if self._cues is None:
            cues: dict[str, list[tuple[int, int]]] = {}
            for start, end, names in self.cue_hits:
                for name in names:
                    if name in cues:
                        cues[name].append((start, end))
                    else:
                        cues[name] = [(start, end)]
            self._cues = cues
        return self._cues.get(lexicon, [])

    def passes(self, term: Term, start: int, end: int) -> bool:
        """The term's hit-level conditions for a hit at ``[start, end)``: case, field,
        proximity. all: every one holds; none: none holds; any: one holds (an item-level
        ``any`` list is left to the item phase). (Loops, not ``any(<generator>)``: this runs
        for most items, and a generator costs more than the tests.)"""
        if term.rule.match_case and not self._same_case(term, start, end):
            return False
        holds = self.holds
        for check in term.local_all:
            if not holds(check, start, end):
                return False
        for check in term.local_none:
            if holds(check, start, end):
                return False
        if not term.local_any:
            return True
        for check in term.local_any:  # noqa: SIM110 (see above)
            if holds(check, start, end):
                return True
        return False

    def holds(self, check: LocalCheck, start: int, end: int) -> bool:
        """One hit-level condition: the hit is in the field, or a word of the lexicon is
        within so many words of ``[start, end)`` (not inside it). Words are separated by
        one space after normalisation, so the gap in words between two spans is the
        number of spaces between them."""
        lexicon, within, place = check
        if lexicon is None:
            return self.name == place
        count = self.text.count
        for c_start, c_end in self.cues(lexicon):
            if c_start >= end:
                if count(" ", end, c_start + 1) <= within:
                    return True
            elif c_end <= start:
                if count(" ", c_end, start + 1) <= within:
                    return True
            elif c_start < start or c_end > end:
                return True  # it overlaps the hit without being inside it: no gap
        return False

    def _same_case(self, term: Term, start: int, end: int) -> bool:
        o_start, o_end = self.norm.original_span(start, end)
        return normalise_term(self.original[o_start:o_end], fold_case=False) == term.cased


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
        fields = (self._scan("title", title), self._scan("text", text))
        _decide(fields)
        found: dict[LabelKind, set[str]] = {
            "topic": set(),
            "official": set(),
            "country": set(),
            "organisation": set(),
        }
        weights: list[float] = []
        matches = [*_matches(fields[0], found, weights), *_matches(fields[1], found, weights)]
        relevant = _relevant(self._lexicon.relevance, found)
        return _labels(
            {
                "topics": sorted(found["topic"]),
                "officials": sorted(found["official"]),
                "countries": sorted(found["country"]),
                "organisations": sorted(found["organisation"]),
                "relevant": relevant,
                "score": _score(
                    fields[0], found, weights, self._lexicon.title_weight, relevant=relevant
                ),
                "matches": matches,
                "rules_version": self._lexicon.version,
            }
        )

    def _scan(self, name: Field_, original: str) -> _Field:
        """One automaton pass over a field; its label hits that pass their hit-level tests
        and win their longest-match contests."""
        norm = normalise(original)
        scanned = _Field(name, original, norm)
        contenders, tested, joins = _whole_words(scanned, self._iter(norm.text))
        groups = _groups(contenders, joins) if joins else []
        died = _locally_alive(contenders, tested, scanned) if tested else False
        won = _longest_first(contenders, groups) if groups else contenders
        scanned.won = [c for c in won if c is not _DEAD] if died else won
        return scanned


def _whole_words(
    scanned: _Field, raw: Iterable[tuple[int, KeyData]]
) -> tuple[list[_Contender], list[int], list[int]]:
    """Sort the automaton's hits (in order of their ends): whole-word ones only, into
    contenders (label terms and ``ignore`` phrases) and lexicon words (``cue_hits``).

    Returns the contenders, the indexes of those with terms to test against the hit, and
    the indexes of those that overlap the contender before them (every overlapping pair
    includes such a one: ends only grow).
    """
    word = _word_chars(scanned.text)
    contenders: list[_Contender] = []
    tested: list[int] = []
    joins: list[int] = []
    cues = scanned.cue_hits
    previous_end = 0
    for last, (length, head, tail, contends, plain, conditional, local, names) in raw:
        start = last - length + 1
        # Whole words only: a letter/digit edge of the key must not touch another one.
        if (head and word[start]) or (tail and word[last + 2]):
            continue
        if names:
            cues.append((start, last + 1, names))
        if contends:
            if local:
                tested.append(len(contenders))
            if start < previous_end:
                joins.append(len(contenders))
            previous_end = last + 1
            contenders.append((start, last + 1, plain, conditional))
    return contenders, tested, joins


def _locally_alive(contenders: list[_Contender], tested: list[int], scanned: _Field) -> bool:
    """Keep the conditional terms of the ``tested`` contenders whose hit-level tests pass;
    a contender left with no terms dies (``_DEAD``: a cancelled term must not shadow a
    shorter valid one). Returns whether one died."""
    passes = scanned.passes
    died = False
    for index in tested:
        start, end, plain, conditional = contenders[index]
        alive = [t for t in conditional if not t.local or passes(t, start, end)]
        if alive or plain:
            contenders[index] = (start, end, plain, tuple(alive))
        else:
            contenders[index] = _DEAD
            died = True
    return died


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


def _groups(contenders: list[_Contender], joins: list[int]) -> list[list[int]]:
    """The runs of overlapping contenders, as ``[first, after)`` index ranges, from the
    ``joins`` (see ``_whole_words``; contenders come in order of their ends, so a run is
    contiguous): a join belongs with the contender before it, and with every one before
    that it overlaps, with their runs. (Needs the contenders before any died.)"""
    groups: list[list[int]] = []
    for index in joins:
        start = contenders[index][0]
        if groups and groups[-1][1] == index:
            group = groups[-1]
            group[1] = index + 1
        else:
            group = [index - 1, index + 1]
            groups.append(group)
        while group[0] and start < contenders[group[0] - 1][1]:
            if len(groups) > 1 and groups[-2][1] == group[0]:
                group[0] = groups.pop(-2)[0]
            else:
                group[0] -= 1
    return groups


def _longest_first(contenders: list[_Contender], groups: list[list[int]]) -> list[_Contender]:
    """Resolve overlaps: longer spans win, then the earlier one; return in text order.

    Only the ``groups`` of overlapping contenders hold a contest; the others pass as they
    are. A contender that died takes no part: the rest of its group may then fall apart,
    but a contest over disjoint runs decides each as if alone.
    """
    won: list[_Contender] = []
    done = 0
    for first, after in groups:
        won += contenders[done:first]
        won += _contest([c for c in contenders[first:after] if c is not _DEAD])
        done = after
    won += contenders[done:]
    return won


def _contest(group: list[_Contender]) -> list[_Contender]:
    """Longest first, then earliest; a contender overlapping a winner loses. (No two have
    the same span, so sorting never compares past it.)"""
    won: list[_Contender] = []
    for _length, start, end, contender in sorted([(c[0] - c[1], c[0], c[1], c) for c in group]):
        for w in won:
            if end > w[0] and start < w[1]:
                break
        else:
            won.append(contender)
    won.sort()
    return won


def _decide(fields: tuple[_Field, ...]) -> None:
    """Decide the winning hits' conditional terms, so each hit holds the evidence it gives.

    Item-level conditions come in two phases: rules that do not look at other labels fire
    first; rules that do (context requirements, label/kind conditions) then see the labels
    of phase one (so no rule depends on another conditional rule).
    """
    decided: list[tuple[list[_Contender], int, list[Evidence]]] = []
    later: list[tuple[list[Evidence], Term]] = []
    item_ok = _item_test(set(), fields)
    for scanned in fields:
        won = scanned.won
        for index in [i for i, hit in enumerate(won) if hit[3]]:
            plain, alive = won[index][2:]
            evidence = list(plain)
            for term in alive:
                if term.needs_labels:
                    later.append((evidence, term))
                elif not term.item_level or item_ok(term.rule):
                    evidence += term.evidence
            decided.append((won, index, evidence))
    if later:
        _second_phase(later, [evidence for _won, _index, evidence in decided], fields)
    for won, index, evidence in decided:
        start, end, _plain, _alive = won[index]
        won[index] = (start, end, tuple(sorted(set(evidence))), ())


def _second_phase(
    later: list[tuple[list[Evidence], Term]],
    decided: list[list[Evidence]],
    fields: tuple[_Field, ...],
) -> None:
    """Add the evidence of the terms whose rules look at the labels of phase one: those of
    the hits without conditional terms, and those ``decided`` so far of the others."""
    present = {(ev[0], ev[1]) for f in fields for hit in f.won if not hit[3] for ev in hit[2]}
    present.update((ev[0], ev[1]) for evidence in decided for ev in evidence)
    countries = {label for kind, label in present if kind == "country"}
    item_ok = _item_test(present, fields)
    for evidence, term in later:
        rule = term.rule
        if (
            rule.context is None
            or (rule.kind, rule.label) in present
            or not countries.isdisjoint(rule.context)
        ) and item_ok(rule):
            evidence += term.evidence


def _item_test(
    present: set[tuple[LabelKind, str]], fields: tuple[_Field, ...]
) -> Callable[[Rule], bool]:
    """A rule's item-level conditions, given the labels ``present`` (memoised per rule: they
    do not depend on the hit)."""
    kinds = {kind for kind, _ in present}

    def truth(cond: Condition) -> bool | None:
        if cond.kind == "label":
            return cond.label in present
        if cond.kind == "kind":
            return cond.label_kind in kinds
        if cond.kind == "near" and cond.within is None:
            return any(f.cues(cond.lexicon) for f in fields)
        return None  # local: already decided in the scan

    memo: dict[str, bool] = {}

    def item_ok(rule: Rule) -> bool:
        ok = memo.get(rule.id)
        if ok is None:
            ok = not (rule.all or rule.any or rule.none) or _conditions_hold(
                rule, truth, local_only=True
            )
            memo[rule.id] = ok
        return ok

    return item_ok


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


def _matches(
    scanned: _Field, found: dict[LabelKind, set[str]], weights: list[float]
) -> list[Match]:
    """One Match per piece of evidence of the field's hits; adds their labels to ``found``
    and the weights of their topic evidence to ``weights`` (for the score).

    Built without validation from the engine's own, well-typed values: what
    ``Match.model_construct`` does for a model without defaults, aliases, extras or private
    attributes, at a fraction of its cost (it and validation dominated classification;
    tests compare these with validated Matches).
    """
    won = scanned.won
    name = scanned.name
    original = scanned.original
    spans = scanned.norm.original_spans([(hit[0], hit[1]) for hit in won])
    out: list[Match] = []
    for (o_start, o_end), hit in zip(spans, won, strict=True):
        text = original[o_start:o_end]
        for kind, label, rule, weight in hit[2]:
            found[kind].add(label)
            if kind == "topic":
                weights.append(weight)
            match = _new(Match)
            _set(
                match,
                "__dict__",
                {"kind": kind, "label": label, "rule": rule, "text": text, "field": name,
                 "start": o_start, "end": o_end},
            )  # fmt: skip
            _set(match, "__pydantic_fields_set__", set(_MATCH_FIELDS))
            _set(match, "__pydantic_extra__", None)
            _set(match, "__pydantic_private__", None)
            out.append(match)
    return out


def _score(
    title: _Field,
    found: dict[LabelKind, set[str]],
    weights: list[float],
    title_weight: float,
    *,
    relevant: bool,
) -> float:
    """Deterministic confidence in [0, 1].

    Each distinct topic counts 1 (``title_weight`` when the title carries it), each topic
    hit adds 0.15 × its rule's weight (``weights``, in text order: the first 30 count), each
    title hit of any kind 0.3 (capped); irrelevant items also earn a little for countries,
    officials and organisations. The sum is squashed with 1 - exp(-x/4), then placed in
    [0.5, 1) for relevant items and [0, 0.45] for the rest, so any relevant item outranks
    any irrelevant one.
    """
    if not any(found.values()):
        return 0.0
    in_title = [hit[2] for hit in title.won if hit[2]]
    title_topics = {ev[1] for evidence in in_title for ev in evidence if ev[0] == "topic"}
    title_hits = len(in_title)
    strength = (
        len(found["topic"])
        + (title_weight - 1.0) * len(title_topics)
        + 0.15 * sum(weights[:30])
        + 0.3 * min(title_hits, 5)
    )
    if relevant:
        squashed = 1.0 - math.exp(-strength / 4.0)
        return round(RELEVANT_FLOOR + (1.0 - RELEVANT_FLOOR) * squashed * 0.999, 4)
    others = sum(len(labels) for kind, labels in found.items() if kind != "topic")
    squashed = 1.0 - math.exp(-(strength + 0.2 * min(others, 10)) / 4.0)
    return round(IRRELEVANT_CEILING * squashed, 4)
