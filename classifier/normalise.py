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
    starts: list[int]
    ends: list[int]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a non-empty normalised span ``[start, end)`` to a span of the original."""
        return self.starts[start], self.ends[end - 1]


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
