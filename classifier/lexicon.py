"""The classifier's rules: load, validate and compile the packaged lexicon.

Owns: the lexicon file format (see the header of lexicon.yaml), its validation with errors
that name the bad entry, and the single Aho-Corasick automaton compiled over every
normalised term.

Must not: classify text (that is engine.py), read anything but the lexicon file it is given,
or hold mutable state after loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import ahocorasick
import yaml

from classifier.normalise import normalise_term
from core.models import LabelKind

# YAML section → the label kind it defines (also the order labels are validated in).
SECTIONS: Final[Mapping[str, LabelKind]] = {
    "topics": "topic",
    "officials": "official",
    "countries": "country",
    "organisations": "organisation",
}
_KIND_TO_SECTION: Final[Mapping[LabelKind, str]] = {v: k for k, v in SECTIONS.items()}
_TOP_LEVEL: Final = frozenset({"version", "ignore", *SECTIONS})
_LABEL_KEYS: Final = frozenset({"rules", "implies"})
_RULE_KEYS: Final = frozenset({"terms", "context", "unless_near", "match_case", "implies"})


class LexiconError(ValueError):
    """The lexicon file is missing, unreadable or invalid; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One named group of terms for one label, and the conditions under which it fires."""

    id: str
    kind: LabelKind
    label: str
    # Further labels every hit of this rule also gives (an official → its country).
    implies: tuple[tuple[LabelKind, str], ...] = ()
    # None: fires on its own. A tuple: fires only if the item also has this label from an
    # unconditional rule, or one of these countries (possibly none) is detected.
    context: tuple[str, ...] | None = None
    # Normalised words that, within NEAR_WINDOW characters of a hit, cancel it.
    unless_near: tuple[str, ...] = ()
    match_case: bool = False


@dataclass(frozen=True, slots=True)
class Term:
    """One written form of a rule, as the automaton knows it."""

    key: str  # normalised form: the automaton key
    written: str  # as written in the lexicon
    cased: str  # normalised without case folding, for match_case rules
    rule: Rule


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A validated, compiled lexicon. ``automaton`` maps key → (key, tuple of Terms)."""

    version: str
    labels: Mapping[LabelKind, tuple[str, ...]]
    rules: tuple[Rule, ...]
    terms: tuple[Term, ...]
    ignored: tuple[str, ...]
    automaton: Any  # ahocorasick.Automaton (untyped C extension)


def default_path() -> Path:
    """The lexicon shipped inside the package."""
    return Path(__file__).with_name("lexicon.yaml")


def load_lexicon(path: Path | None = None) -> Lexicon:
    """Read, validate and compile the lexicon at ``path`` (default: the packaged one)."""
    source = path or default_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise LexiconError(f"cannot read lexicon {source}: {e}") from e
    except yaml.YAMLError as e:
        raise LexiconError(f"lexicon {source} is not valid YAML: {e}") from e
    try:
        return build_lexicon(raw)
    except LexiconError as e:
        raise LexiconError(f"{source}: {e}") from e


def build_lexicon(raw: object) -> Lexicon:
    """Validate an already-parsed lexicon document and compile it."""
    doc = _mapping(raw, "the lexicon")
    unknown = sorted(set(doc) - _TOP_LEVEL)
    if unknown:
        raise LexiconError(f"unknown top-level keys {unknown}; expected {sorted(_TOP_LEVEL)}")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise LexiconError("'version' must be a non-empty string")
    labels = _label_ids(doc)
    rules: list[Rule] = []
    terms: list[Term] = []
    for section, kind in SECTIONS.items():
        for label, body in _mapping(doc[section], section).items():
            where = f"{section}.{label}"
            entry = _mapping(body, where)
            _check_keys(entry, _LABEL_KEYS, where)
            implied = _implies(entry.get("implies"), labels, f"{where}.implies")
            for name, rule_body in _mapping(entry.get("rules"), f"{where}.rules").items():
                rule, written = _rule(kind, label, str(name), rule_body, implied, labels)
                rules.append(rule)
                terms.extend(_terms(rule, written, f"{where}.rules.{name}"))
    ignored = _ignored(doc.get("ignore", []))
    _check_duplicates(terms, ignored)
    return Lexicon(
        version=version.strip(),
        labels=labels,
        rules=tuple(rules),
        terms=tuple(terms),
        ignored=ignored,
        automaton=_compile(terms, ignored),
    )


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise LexiconError(f"{where} must be a non-empty mapping")
    for key in value:
        if not isinstance(key, str):
            raise LexiconError(f"{where} has a non-string key {key!r}")
    return cast(dict[str, Any], value)


def _check_keys(entry: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise LexiconError(f"{where} has unknown keys {unknown}; allowed: {sorted(allowed)}")


def _label_ids(doc: Mapping[str, Any]) -> dict[LabelKind, tuple[str, ...]]:
    labels: dict[LabelKind, tuple[str, ...]] = {}
    for section, kind in SECTIONS.items():
        ids = tuple(_mapping(doc.get(section), section))
        for label in ids:
            if not label.isidentifier() or label != label.lower():
                raise LexiconError(f"{section}.{label}: ids are lower_snake_case")
        labels[kind] = ids
    return labels


def _string_list(value: object, where: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise LexiconError(f"{where} must be a {'' if allow_empty else 'non-empty '}list")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise LexiconError(f"{where} holds {item!r}, which is not a non-empty string")
    return cast(list[str], value)


def _implies(
    value: object, labels: Mapping[LabelKind, tuple[str, ...]], where: str
) -> tuple[tuple[LabelKind, str], ...]:
    if value is None:
        return ()
    implied: list[tuple[LabelKind, str]] = []
    for section, ids in _mapping(value, where).items():
        if section not in SECTIONS:
            raise LexiconError(f"{where}: unknown section {section!r}")
        kind = SECTIONS[section]
        for label in _string_list(ids, f"{where}.{section}"):
            if label not in labels[kind]:
                raise LexiconError(f"{where}: {section} has no label {label!r}")
            implied.append((kind, label))
    return tuple(implied)


def _rule(
    kind: LabelKind,
    label: str,
    name: str,
    body: object,
    label_implies: tuple[tuple[LabelKind, str], ...],
    labels: Mapping[LabelKind, tuple[str, ...]],
) -> tuple[Rule, list[str]]:
    where = f"{_KIND_TO_SECTION[kind]}.{label}.rules.{name}"
    if not name.isidentifier():
        raise LexiconError(f"{where}: rule names are identifiers")
    rule_id = f"{kind}.{label}.{name}"
    if isinstance(body, list):
        return Rule(rule_id, kind, label, implies=label_implies), _string_list(body, where)
    spec = _mapping(body, where)
    _check_keys(spec, _RULE_KEYS, where)
    written = _string_list(spec.get("terms"), f"{where}.terms")
    context: tuple[str, ...] | None = None
    if "context" in spec:
        context = tuple(_string_list(spec["context"], f"{where}.context", allow_empty=True))
        for country in context:
            if country not in labels["country"]:
                raise LexiconError(f"{where}.context: no country {country!r}")
    unless = tuple(
        normalise_term(w)
        for w in _string_list(spec.get("unless_near", []), f"{where}.unless_near", allow_empty=True)
    )
    match_case = spec.get("match_case", False)
    if not isinstance(match_case, bool):
        raise LexiconError(f"{where}.match_case must be true or false")
    extra = _implies(spec.get("implies"), labels, f"{where}.implies")
    rule = Rule(
        rule_id,
        kind,
        label,
        implies=label_implies + extra,
        context=context,
        unless_near=unless,
        match_case=match_case,
    )
    return rule, written


def _terms(rule: Rule, written: list[str], where: str) -> list[Term]:
    out = []
    for text in written:
        key = normalise_term(text)
        if not any(ch.isalnum() for ch in key):
            raise LexiconError(f"{where}: term {text!r} has no letters or digits")
        out.append(Term(key, text, normalise_term(text, fold_case=False), rule))
    return out


def _ignored(value: object) -> tuple[str, ...]:
    return tuple(normalise_term(text) for text in _string_list(value, "ignore", allow_empty=True))


def _check_duplicates(terms: list[Term], ignored: tuple[str, ...]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for term in terms:
        key = (term.rule.kind, term.rule.label, term.key)
        if key in seen:
            raise LexiconError(
                f"{term.rule.id}: term {term.written!r} duplicates one in {seen[key]}"
            )
        seen[key] = term.rule.id
    shadowed = sorted({term.key for term in terms} & set(ignored))
    if shadowed:
        raise LexiconError(f"ignore: {shadowed} are also label terms")


def _compile(terms: list[Term], ignored: tuple[str, ...]) -> Any:
    by_key: dict[str, list[Term]] = {key: [] for key in ignored}
    for term in terms:
        by_key.setdefault(term.key, []).append(term)
    automaton = ahocorasick.Automaton()
    for key, group in by_key.items():
        automaton.add_word(key, (key, tuple(group)))
    automaton.make_automaton()
    return automaton
