"""The rule engine: one item's title and text in, labels and their evidence out.

This is the Python engine: the reference, and the fallback where the compiled one
(``classifier/compiled.pyx``, the same algorithm in C) is not built. ``Classifier`` picks one;
what both share (item-level decisions, relevance, score, Labels) is ``classifier.verdict``.

Owns: finding rule terms and lexicon words in a field (one Aho-Corasick pass per field over
the normalised text, whole words only, longest match wins among label terms), evaluating
each rule's conditions (case, proximity, field, negative context, context requirements,
other labels), deriving implied labels, relevance (the rules file's ``relevance``) and the
score (through ``classifier.verdict``).

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

import importlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Literal

from classifier.lexicon import (
    Evidence,
    KeyData,
    Lexicon,
    LocalCheck,
    Term,
)
from classifier.normalise import Normalised, normalise, normalise_term
from classifier.verdict import Verdict, decide_terms, new_found
from core.models import Field_, LabelKind, Labels, Match

# A whole-word occurrence of a key that takes part in the longest-match contest, in
# normalised offsets: (start, end, evidence of its plain terms, its conditional terms).
# Once its conditional terms are decided (``_decide``): (start, end, all its evidence, ()).
_Contender = tuple[int, int, tuple[Evidence, ...], tuple[Term, ...]]
# Stands in for a contender whose terms all failed their hit-level tests.
_DEAD: _Contender = (-1, -1, (), ())
# A whole-word occurrence of a lexicon word: (start, end, the lexicons it is a word of).
_Cue = tuple[int, int, tuple[str, ...]]
_MATCH_FIELDS = frozenset(Match.model_fields)
_new = object.__new__
_set = object.__setattr__


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


# Which engine classifies: the compiled one (classifier/compiled.pyx, built by setup.py when
# a C compiler is present) or this module's; "auto" takes the compiled one when it is built
# and can hold the lexicon (see ``Classifier``).
EngineChoice = Literal["auto", "python", "compiled"]
ENGINES: tuple[EngineChoice, ...] = ("auto", "python", "compiled")


class EngineUnavailable(RuntimeError):
    """The compiled engine was asked for and cannot run (not built, or the lexicon too big)."""


def _compiled_module() -> ModuleType | None:
    try:
        return importlib.import_module("classifier.compiled")
    except ImportError:
        return None


class Classifier:
    """Labels items with a compiled :class:`Lexicon`. Thread-safe: it holds no state.

    ``classify(title, text)`` gives the same Labels whichever engine runs (tests compare the
    two); ``engine`` says which one: "compiled" (C, several times faster) or "python".
    """

    classify: Callable[[str, str], Labels]

    def __init__(self, lexicon: Lexicon, engine: EngineChoice = "auto") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown classifier engine {engine!r}: choose one of {ENGINES}")
        self._lexicon = lexicon
        self._iter = lexicon.automaton.iter
        self._verdict = Verdict(lexicon)
        self.choice: EngineChoice = engine
        self.engine = "python"
        self.classify = self._classify
        if engine == "python":
            return
        compiled = _compiled_module()
        try:
            if compiled is None:
                raise EngineUnavailable(
                    "the compiled classifier engine is not built (classifier/compiled.pyx "
                    "needs Cython and a C compiler at install time)"
                )
            try:
                self.classify = compiled.Engine(lexicon).classify
            except MemoryError as e:
                raise EngineUnavailable(f"the compiled classifier engine: {e}") from e
            self.engine = "compiled"
        except EngineUnavailable:
            if engine == "compiled":
                raise

    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    @property
    def rules_version(self) -> str:
        return self._lexicon.version

    def _classify(self, title: str, text: str) -> Labels:
        """Classify one item from its title and body text (the Python engine)."""
        fields = (self._scan("title", title), self._scan("text", text))
        _decide(fields)
        found = new_found()
        weights: list[float] = []
        matches = [*_matches(fields[0], found, weights), *_matches(fields[1], found, weights)]
        title_evidence = [hit[2] for hit in fields[0].won if hit[2]]
        return self._verdict.labels(found, weights, matches, title_evidence)

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
    """Decide the winning hits' conditional terms (``decide_terms``), so each hit holds the
    evidence it gives."""
    pending = [
        (scanned.won, i) for scanned in fields for i, hit in enumerate(scanned.won) if hit[3]
    ]
    if not pending:
        return

    def plain_present() -> set[tuple[LabelKind, str]]:
        return {(ev[0], ev[1]) for f in fields for hit in f.won if not hit[3] for ev in hit[2]}

    def has_cue(lexicon: str) -> bool:
        return any(f.cues(lexicon) for f in fields)

    decided = decide_terms([won[i][2:] for won, i in pending], plain_present, has_cue)
    for (won, i), evidence in zip(pending, decided, strict=True):
        start, end, _plain, _alive = won[i]
        won[i] = (start, end, evidence, ())


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
