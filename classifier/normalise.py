"""Text normalisation for matching, with a map back to the original character offsets.

Owns: turning a field or a lexicon term into the canonical form the automaton matches on
(casefolded, diacritics stripped, curly quotes straightened, dashes and whitespace runs
collapsed to one space) and remembering, for every normalised character, the span of
original characters it came from, so evidence can point into the text the user sees.

Must not: do I/O, know about labels or the lexicon, or drop characters that carry meaning
for word boundaries (punctuation stays, so "Laos, Cambodia" does not become a phrase).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Apostrophes and quotes in their typographic forms; U+02BC is a *letter* to Unicode
# (isalpha() is True), so it must be mapped before the alphanumeric boundary test sees it.
_QUOTES = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
}
# Separators that Unicode files under "format" (Cf) but that split words in practice.
_WORD_SEPARATORS = frozenset({"\u200b", "\u2028", "\u2029"})
_MINUS = frozenset({"\u2212", "\ufe63", "\uff0d"})


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised string and, per character, the original span ``[starts[i], ends[i])``."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a non-empty normalised span ``[start, end)`` to a span of the original."""
        starts = self.starts
        if type(starts) is _Segments:
            return starts.span(start, end)
        return starts[start], self.ends[end - 1]


class _Segments(Sequence[int]):
    """Offsets of an ASCII fast-path result without a list per character: the normalised
    text is the original except where a run of spaces/dashes became one space, so an offset
    is found by bisecting those runs (``shift`` is 0 for starts, 1 for ends)."""

    __slots__ = ("_at", "_n", "_orig", "_run_end", "_shift")

    def __init__(
        self, at: list[int], orig: list[int], run_end: list[int], n: int, shift: int
    ) -> None:
        self._at, self._orig, self._run_end, self._n, self._shift = at, orig, run_end, n, shift

    def __len__(self) -> int:
        return self._n

    def span(self, start: int, end: int) -> tuple[int, int]:
        """``(starts[start], ends[end - 1])`` for a valid span, in one call (hot path)."""
        at = self._at
        k = bisect_right(at, start) - 1
        if k < 0:
            o_start = start
        elif start == at[k]:
            o_start = self._orig[k]
        else:
            o_start = self._run_end[k] + (start - at[k] - 1)
        last = end - 1
        k = bisect_right(at, last) - 1
        if k < 0:
            return o_start, last + 1
        if last == at[k]:
            return o_start, self._run_end[k]
        return o_start, self._run_end[k] + (last - at[k] - 1) + 1

    def __getitem__(self, index: object) -> object:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if not isinstance(index, int):
            raise TypeError(index)
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        k = bisect_right(self._at, index) - 1
        if k < 0:
            return index + self._shift
        if index == self._at[k]:  # the collapsed space itself
            return self._run_end[k] if self._shift else self._orig[k]
        return self._run_end[k] + (index - self._at[k] - 1) + self._shift


# ASCII characters that normalise to something else: runs of whitespace and dashes (one
# space), and the backtick (an apostrophe). Everything else in ASCII is only lower-cased.
# A lone " " is already its own normal form and is most of a text's whitespace, so runs
# are found from their seeds, which are rare: a whitespace character other than " ", a
# dash, or two spaces. (One regex for all three tries a match at every space: 5× slower.)
_RUN_SEED = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f\-]")
_RUN_CHARS = frozenset(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f-")


def _ascii_runs(text: str) -> list[tuple[int, int]]:
    """Maximal runs of whitespace/dashes in ASCII ``text`` other than a single " "."""
    seeds = [m.start() for m in _RUN_SEED.finditer(text)]
    at = text.find("  ")
    if at >= 0:
        while at >= 0:
            seeds.append(at)
            at = text.find("  ", at + 2)
        seeds.sort()
    runs: list[tuple[int, int]] = []
    size = len(text)
    run_end = -1
    for seed in seeds:
        if seed < run_end:
            continue  # inside the previous run
        start, end = seed, seed + 1
        while start > 0 and text[start - 1] in _RUN_CHARS:
            start -= 1
        while end < size and text[end] in _RUN_CHARS:
            end += 1
        runs.append((start, end))
        run_end = end
    return runs


def _normalise_ascii(text: str) -> Normalised:
    lowered = text.lower().replace("`", "'")
    runs = _ascii_runs(lowered)
    if not runs:
        n = len(lowered)
        return Normalised(lowered, range(n), range(1, n + 1))
    at: list[int] = []
    orig: list[int] = []
    run_end: list[int] = []
    pieces: list[str] = []
    last = 0
    removed = 0
    for start, end in runs:
        pieces.append(lowered[last:start])
        pieces.append(" ")
        at.append(start - removed)
        orig.append(start)
        run_end.append(end)
        removed += end - start - 1
        last = end
    pieces.append(lowered[last:])
    out = "".join(pieces)
    n = len(out)
    return Normalised(out, _Segments(at, orig, run_end, n, 0), _Segments(at, orig, run_end, n, 1))


def _is_space_like(ch: str) -> bool:
    return ch.isspace() or ch in _WORD_SEPARATORS or ch in _MINUS or _category(ch) == "Pd"


@lru_cache(maxsize=4096)
def _category(ch: str) -> str:
    return unicodedata.category(ch)


@lru_cache(maxsize=8192)
def _fold(ch: str, fold_case: bool) -> str:
    """One original character → its normalised characters ('' when it vanishes)."""
    if ch in _QUOTES:
        return _QUOTES[ch]
    if _is_space_like(ch):
        return " "
    if _category(ch) == "Cf":  # soft hyphen, zero-width joiners, BOM: invisible
        return ""
    decomposed = unicodedata.normalize("NFKD", ch)
    if fold_case:
        # casefold can reintroduce combining marks (e.g. "İ" → "i̇"), so decompose again.
        decomposed = unicodedata.normalize("NFKD", decomposed.casefold())
    out = []
    for piece in decomposed:
        if unicodedata.combining(piece) or _category(piece) == "Mn":
            continue
        if piece in _QUOTES:
            out.append(_QUOTES[piece])
        elif _is_space_like(piece):
            out.append(" ")
        else:
            out.append(piece)
    return "".join(out)


def normalise(text: str, *, fold_case: bool = True) -> Normalised:
    """Normalise ``text`` for matching and keep the offset map back to it.

    Runs of whitespace, line breaks and dashes become one space, so "Laos–Cambodia" reads
    "laos cambodia" and a name broken across lines still matches. Possessive "’s" becomes
    "'s", which is a word boundary, so "Manet’s" still contains the word "manet".
    """
    if fold_case and text.isascii():
        return _normalise_ascii(text)
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for index, ch in enumerate(text):
        for piece in _fold(ch, fold_case):
            if piece == " " and chars and chars[-1] == " ":
                ends[-1] = index + 1  # extend the run instead of emitting another space
                continue
            chars.append(piece)
            starts.append(index)
            ends.append(index + 1)
    return Normalised("".join(chars), starts, ends)


def normalise_term(term: str, *, fold_case: bool = True) -> str:
    """The automaton key for a lexicon term: normalised, without edge spaces."""
    return normalise(term, fold_case=fold_case).text.strip()
