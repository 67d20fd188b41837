"""Text normalisation for matching, with a map back to the original character offsets.

Owns: turning a field or a lexicon term into the canonical form the automaton matches on
(casefolded, diacritics stripped, curly quotes straightened, dashes and whitespace runs
collapsed to one space) and remembering, for every normalised character, the span of
original characters it came from, so evidence can point into the text the user sees.

Must not: do I/O, know about labels or the lexicon, or drop characters that carry meaning
for word boundaries (punctuation stays, so "Laos, Cambodia" does not become a phrase).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right
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

    def original_spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``original_span`` of each of ``spans``, in one call."""
        starts = self.starts
        if type(starts) is range:  # nothing collapsed: the offsets are the same
            return spans
        if type(starts) is _Segments:
            return starts.spans(spans)
        ends = self.ends
        return [(starts[start], ends[end - 1]) for start, end in spans]


class _Segments(Sequence[int]):
    """Offsets of an ASCII fast-path result without a list per character: the normalised
    text is the original except where a run of spaces/dashes became one space. ``at``: where
    those spaces are in the normalised text; ``removed[k]``: how many characters the first
    ``k`` runs lost. A character after ``k`` runs is ``removed[k]`` further on in the
    original; a run's space starts where its run does and ends where it ends (``shift`` is
    0 for starts, 1 for ends)."""

    __slots__ = ("_at", "_n", "_removed", "_shift")

    def __init__(self, at: list[int], removed: list[int], n: int, shift: int) -> None:
        self._at, self._removed, self._n, self._shift = at, removed, n, shift

    def __len__(self) -> int:
        return self._n

    def span(self, start: int, end: int) -> tuple[int, int]:
        """``(starts[start], ends[end - 1])`` for a valid span, in one call."""
        at, removed = self._at, self._removed
        return start + removed[bisect_left(at, start)], end + removed[bisect_right(at, end - 1)]

    def spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``span`` of each of ``spans`` (hot path: one list comprehension)."""
        at, removed = self._at, self._removed
        return [
            (start + removed[bisect_left(at, start)], end + removed[bisect_right(at, end - 1)])
            for start, end in spans
        ]

    def __getitem__(self, index: object) -> object:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if not isinstance(index, int):
            raise TypeError(index)
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        if self._shift:
            return index + 1 + self._removed[bisect_right(self._at, index)]
        return index + self._removed[bisect_left(self._at, index)]


# ASCII characters that normalise to something else: capitals (lower-cased), whitespace and
# dashes (a space; runs of them then collapse to one), and the backtick (an apostrophe). One
# ``bytes.translate`` maps them all (5× faster than ``str.translate``, 10× a regex scan);
# the runs left to collapse are then only the places with two spaces in a row (mostly
# paragraph breaks), found with ``str.find``.
_ASCII_SPACES = b"\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f-"
_ASCII_MAP = bytes.maketrans(
    bytes(range(65, 91)) + _ASCII_SPACES + b"`",
    bytes(range(97, 123)) + b" " * len(_ASCII_SPACES) + b"'",
)


def _normalise_ascii(text: str) -> Normalised:
    spaced = text.encode("ascii").translate(_ASCII_MAP).decode("ascii")
    run = spaced.find("  ")
    if run < 0:
        n = len(spaced)
        return Normalised(spaced, range(n), range(1, n + 1))
    # Each run of spaces becomes one: note where it lands (``at``) and what it lost.
    at: list[int] = []
    removed = [0]
    pieces: list[str] = []
    size = len(spaced)
    last = 0
    while run >= 0:
        end = run + 2
        while end < size and spaced[end] == " ":
            end += 1
        pieces.append(spaced[last : run + 1])
        at.append(run - removed[-1])
        removed.append(removed[-1] + end - run - 1)
        last = end
        run = spaced.find("  ", end)
    pieces.append(spaced[last:])
    out = "".join(pieces)
    n = len(out)
    return Normalised(out, _Segments(at, removed, n, 0), _Segments(at, removed, n, 1))


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
