"""From what a scan found to the item's Labels: the decisions both engines share.

Owns: deciding the conditional terms of winning hits (item-level conditions, context
requirements: ``decide_terms``), relevance (the rules file's ``relevance``), the score, and
building the Labels. ``classifier.engine`` (Python) and ``classifier.compiled`` (C) both
call these, so the two engines cannot drift apart here.

Must not: do I/O or keep state between items (a ``Verdict`` is per lexicon, read-only).

Speed: this runs once per item (and ``decide_terms`` per item with conditional hits), so it
is written as loops without generators or closures on the common path. (Compiling it with
Cython as it is was measured: no gain worth a second extension.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from classifier.lexicon import Condition, Evidence, Lexicon, Rule, Term
from core.models import LabelKind, Labels, Match

# Relevant items score in [RELEVANT_FLOOR, 1); others in [0, IRRELEVANT_CEILING].
RELEVANT_FLOOR = 0.5
IRRELEVANT_CEILING = 0.45
# The Labels fields the engine sets (story_id, None here, is left to the story index).
_LABELS_SET = frozenset(Labels.model_fields) - {"story_id"}
_new = object.__new__
_set = object.__setattr__
# A condition's truth for one hit: None when the condition is decided in another phase.
_Truth = Callable[[Condition], bool | None]
# A relevance condition, compiled: (kind, label) — the item has that label — or (kind, None)
# — it has a label of that kind; None: a condition relevance cannot hold (always false).
_Test = tuple[LabelKind, str | None] | None


def new_found() -> dict[LabelKind, set[str]]:
    """The labels found so far, by kind (filled by the engines' match builders)."""
    return {"topic": set(), "official": set(), "country": set(), "organisation": set()}


def decide_terms(
    pending: list[tuple[tuple[Evidence, ...], tuple[Term, ...]]],
    plain_present: Callable[[], set[tuple[LabelKind, str]]],
    has_cue: Callable[[str], bool],
) -> list[tuple[Evidence, ...]]:
    """The evidence of each winning hit that has conditional terms: its plain evidence and
    that of its terms whose rules fire. ``pending``: (plain evidence, live conditional
    terms) per such hit, in text order; ``plain_present``: the labels of the other winning
    hits; ``has_cue(lexicon)``: a word of it is in the item.

    Item-level conditions come in two phases: rules that do not look at other labels fire
    first; rules that do (context requirements, label/kind conditions) then see the labels
    of phase one (so no rule depends on another conditional rule).
    """
    decided: list[list[Evidence]] = []
    later: list[tuple[list[Evidence], Term]] = []
    item_ok: Callable[[Rule], bool] | None = None
    for plain, alive in pending:
        evidence = list(plain)
        for term in alive:
            if term.needs_labels:
                later.append((evidence, term))
            elif not term.item_level:
                evidence += term.evidence
            else:
                if item_ok is None:
                    item_ok = _item_test(set(), has_cue)
                if item_ok(term.rule):
                    evidence += term.evidence
        decided.append(evidence)
    if later:
        present = plain_present()
        for evidence in decided:
            for ev in evidence:
                present.add((ev[0], ev[1]))
        _second_phase(later, present, has_cue)
    return [tuple(sorted(set(evidence))) for evidence in decided]


def _second_phase(
    later: list[tuple[list[Evidence], Term]],
    present: set[tuple[LabelKind, str]],
    has_cue: Callable[[str], bool],
) -> None:
    """Add the evidence of the terms whose rules look at the labels of phase one
    (``present``)."""
    countries = {label for kind, label in present if kind == "country"}
    item_ok = _item_test(present, has_cue)
    for evidence, term in later:
        rule = term.rule
        if (
            rule.context is None
            or (rule.kind, rule.label) in present
            or not countries.isdisjoint(rule.context)
        ) and item_ok(rule):
            evidence += term.evidence


def _item_test(
    present: set[tuple[LabelKind, str]], has_cue: Callable[[str], bool]
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
            return has_cue(cond.lexicon)
        return None  # local: already decided in the scan

    memo: dict[str, bool] = {}

    def item_ok(rule: Rule) -> bool:
        ok = memo.get(rule.id)
        if ok is None:
            ok = not (rule.all or rule.any or rule.none) or conditions_hold(
                rule, truth, local_only=True
            )
            memo[rule.id] = ok
        return ok

    return item_ok


def conditions_hold(rule: Rule, truth: _Truth, *, local_only: bool = False) -> bool:
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


class Verdict:
    """Labels from what a scan found, for one lexicon: relevance (the rules file's
    ``relevance``, compiled once), the score and the Labels."""

    __slots__ = ("_all", "_any", "_none", "_title_weight", "_version")

    def __init__(self, lexicon: Lexicon) -> None:
        relevance = lexicon.relevance
        self._all = _tests(relevance.all)
        self._any = _tests(relevance.any)
        self._none = _tests(relevance.none)
        self._title_weight = lexicon.title_weight
        self._version = lexicon.version

    def relevant(self, found: dict[LabelKind, set[str]]) -> bool:
        """all: every test holds; any: one does (or none listed); none: none does."""
        for test in self._all:
            if not _holds(test, found):
                return False
        if self._any:
            for test in self._any:
                if _holds(test, found):
                    break
            else:
                return False
        for test in self._none:  # noqa: SIM110 (a loop: no generator on the hot path)
            if _holds(test, found):
                return False
        return True

    def labels(
        self,
        found: dict[LabelKind, set[str]],
        weights: list[float],
        matches: list[Match],
        title_evidence: list[tuple[Evidence, ...]],
    ) -> Labels:
        """The item's Labels: ``found`` by kind, the weights of its topic evidence in text
        order, its matches, and the evidence of its title's hits (for the score)."""
        relevant = self.relevant(found)
        topics = found["topic"]
        officials = found["official"]
        countries = found["country"]
        organisations = found["organisation"]
        return _labels(
            {
                "topics": sorted(topics) if topics else [],
                "officials": sorted(officials) if officials else [],
                "countries": sorted(countries) if countries else [],
                "organisations": sorted(organisations) if organisations else [],
                "relevant": relevant,
                "score": score(
                    title_evidence, found, weights, self._title_weight, relevant=relevant
                ),
                "matches": matches,
                "rules_version": self._version,
                "story_id": None,
            }
        )


def _tests(conds: tuple[Condition, ...]) -> tuple[_Test, ...]:
    out: list[_Test] = []
    for cond in conds:
        if cond.kind == "label" and cond.label is not None:
            out.append(cond.label)
        elif cond.kind == "kind" and cond.label_kind is not None:
            out.append((cond.label_kind, None))
        else:
            out.append(None)
    return tuple(out)


def _holds(test: _Test, found: dict[LabelKind, set[str]]) -> bool:
    if test is None:
        return False
    kind, label = test
    return bool(found[kind]) if label is None else label in found[kind]


def _labels(values: dict[str, object]) -> Labels:
    """Labels from the engine's own values (every field), without validation: what
    ``Labels.model_construct`` does for a model without defaults, aliases, extras or private
    attributes, at a fraction of its cost (tests compare these with validated Labels); the
    score is in [0, 1] by construction (see ``score``)."""
    labels = _new(Labels)
    _set(labels, "__dict__", values)
    _set(labels, "__pydantic_fields_set__", set(_LABELS_SET))
    _set(labels, "__pydantic_extra__", None)
    _set(labels, "__pydantic_private__", None)
    return labels


def score(
    title_evidence: list[tuple[Evidence, ...]],
    found: dict[LabelKind, set[str]],
    weights: list[float],
    title_weight: float,
    *,
    relevant: bool,
) -> float:
    """``score_of`` from what the Python engine collects: the evidence of the title's hits,
    the labels found by kind and the weights of the topic evidence in text order."""
    title_topics = set()
    for evidence in title_evidence:
        for ev in evidence:
            if ev[0] == "topic":
                title_topics.add(ev[1])
    return score_of(
        len(found["topic"]),
        len(found["official"]) + len(found["country"]) + len(found["organisation"]),
        len(title_topics),
        weights[:30],
        len(title_evidence),
        title_weight,
        relevant,
    )


def score_of(
    topics: int,
    others: int,
    title_topics: int,
    weights: list[float],
    title_hits: int,
    title_weight: float,
    relevant: bool,
) -> float:
    """Deterministic confidence in [0, 1], from counts (shared by both engines).

    Each distinct topic (``topics``) counts 1, ``title_weight`` when the title carries it
    (``title_topics`` of them); each topic hit adds 0.15 × its rule's weight (``weights``: the
    first 30 topic hits' in text order); each title hit with evidence 0.3 (``title_hits``,
    capped at 5); irrelevant items also earn a little for their countries, officials and
    organisations (``others``). The sum is squashed with 1 - exp(-x/4), then placed in
    [0.5, 1) for relevant items and [0, 0.45] for the rest, so any relevant item outranks
    any irrelevant one.
    """
    if not (topics or others):
        return 0.0
    strength = (
        topics
        + (title_weight - 1.0) * title_topics
        + 0.15 * sum(weights[:30])
        + 0.3 * min(title_hits, 5)
    )
    if relevant:
        squashed = 1.0 - math.exp(-strength / 4.0)
        return round(RELEVANT_FLOOR + (1.0 - RELEVANT_FLOOR) * squashed * 0.999, 4)
    squashed = 1.0 - math.exp(-(strength + 0.2 * min(others, 10)) / 4.0)
    return round(IRRELEVANT_CEILING * squashed, 4)
