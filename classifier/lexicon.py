"""The classifier's rules: load, validate and compile the rules file (grammar: RULES.md).

Owns: the rules file format, its validation with errors that name the file, the line and
the rule id, the rules version (declared version + a hash of the file's bytes), and the
single Aho-Corasick automaton compiled over every normalised term and lexicon word.

Must not: classify text (that is engine.py), read anything but the rules file it is given,
or hold mutable state after loading (hot reload builds a new Lexicon: see watcher.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, cast

import ahocorasick
import yaml

from classifier.normalise import normalise_term
from core.models import Field_, LabelKind

# YAML section → the label kind it defines (also the order labels are validated in).
SECTIONS: Final[Mapping[str, LabelKind]] = {
    "topics": "topic",
    "officials": "official",
    "countries": "country",
    "organisations": "organisation",
}
_KIND_TO_SECTION: Final[Mapping[LabelKind, str]] = {v: k for k, v in SECTIONS.items()}
_TOP_LEVEL: Final = frozenset({"version", "ignore", "lexicons", "scoring", "relevance", *SECTIONS})
_LABEL_KEYS: Final = frozenset({"rules", "implies"})
_RULE_KEYS: Final = frozenset(
    {"terms", "context", "unless_near", "match_case", "implies", "all", "any", "none", "weight"}
)
_COND_KEYS: Final = frozenset({"near", "terms", "within", "label", "kind", "field"})
_SCORING_KEYS: Final = frozenset({"title_weight"})
# `unless_near` is shorthand for `none: [{terms: [...], within: UNLESS_NEAR_WORDS}]`.
UNLESS_NEAR_WORDS: Final = 8
CondKind = Literal["near", "label", "kind", "field"]


class LexiconError(ValueError):
    """The rules file is missing, unreadable or invalid; the message names file, line, rule."""

    def __init__(self, message: str, *, line: int | None = None, rule: str | None = None) -> None:
        self.message = message
        self.line = line
        self.rule = rule
        self.file: str | None = None
        super().__init__(self._render())

    def located(self, file: str) -> LexiconError:
        self.file = file
        self.args = (self._render(),)
        return self

    def _render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        elif self.line:
            where = f"line {self.line}: "
        rule = f"rule {self.rule}: " if self.rule and self.rule not in self.message else ""
        return f"{where}{rule}{self.message}"


@dataclass(frozen=True, slots=True)
class Condition:
    """One test in a rule's (or relevance's) ``all`` / ``any`` / ``none`` list.

    - ``near``: a word of lexicon ``lexicon`` occurs within ``within`` words of the hit
      (same field), or anywhere in the item when ``within`` is None.
    - ``label``: the item has label ``label`` (kind, id).
    - ``kind``: the item has at least one label of kind ``label_kind``.
    - ``field``: the hit is in ``field`` (``title`` or ``text``).
    """

    kind: CondKind
    lexicon: str = ""
    within: int | None = None
    label: tuple[LabelKind, str] | None = None
    label_kind: LabelKind | None = None
    field: Field_ | None = None

    @property
    def item_level(self) -> bool:
        return self.kind in ("label", "kind")


@dataclass(frozen=True, slots=True)
class Rule:
    """One named group of terms for one label, and the conditions under which it fires."""

    id: str
    kind: LabelKind
    label: str
    # Further labels every hit of this rule also gives (an official → its country).
    implies: tuple[tuple[LabelKind, str], ...] = ()
    # None: no context requirement. A tuple: fires only if the item also has this label
    # from a rule without label conditions, or one of these countries (possibly none).
    context: tuple[str, ...] | None = None
    match_case: bool = False
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    none: tuple[Condition, ...] = ()
    weight: float = 1.0
    line: int = 0

    @property
    def needs_labels(self) -> bool:
        """True when the rule looks at the item's other labels (evaluated in phase two)."""
        conds = (*self.all, *self.any, *self.none)
        return self.context is not None or any(c.item_level for c in conds)


# A rule condition the engine decides from the hit alone: (lexicon, within, field) — a
# proximity test when ``lexicon`` is set, else "the hit is in ``field``".
LocalCheck = tuple[str | None, int, Field_ | None]


def local_checks(conds: tuple[Condition, ...]) -> tuple[LocalCheck, ...]:
    """The hit-level conditions among ``conds`` (item-level ones are decided later)."""
    out: list[LocalCheck] = []
    for cond in conds:
        if cond.kind == "field":
            out.append((None, 0, cond.field))
        elif cond.kind == "near" and cond.within is not None:
            out.append((cond.lexicon, cond.within, None))
    return tuple(out)


# One label a hit of a rule gives, as the engine reports it: (kind, label, rule id, the
# rule's weight). A rule gives its own label, then each it implies.
Evidence = tuple[LabelKind, str, str, float]


@dataclass(frozen=True, slots=True)
class Term:
    """One written form of a rule, as the automaton knows it."""

    key: str  # normalised form: the automaton key
    written: str  # as written in the rules file
    cased: str  # normalised without case folding, for match_case rules
    rule: Rule
    # Precomputed for the engine, from the rule. `plain`: every hit counts (no case, no
    # conditions, no context requirement). `local`: a hit needs a test of its own (case,
    # proximity, field). `item_level`: the rule has conditions decided per item (label,
    # kind, near without within). `needs_labels`: the rule's (phase two).
    plain: bool = True
    local: bool = False
    item_level: bool = False
    needs_labels: bool = False
    # The rule's hit-level conditions, precompiled (see local_checks).
    local_all: tuple[LocalCheck, ...] = ()
    local_any: tuple[LocalCheck, ...] = ()
    local_none: tuple[LocalCheck, ...] = ()
    # What a hit gives when the rule fires, sorted, without repeats.
    evidence: tuple[Evidence, ...] = ()


class KeyData(NamedTuple):
    """What the engine needs to know of one automaton key, precomputed so that its hot loop
    only unpacks it. ``head``/``tail``: the key's first/last character is a letter or digit,
    so the whole-word test must look at the text beside it. ``contends``: the key takes part
    in the longest-match contest (it has label terms, or is an ``ignore`` phrase). ``plain``:
    the evidence of its plain terms (see ``Term.plain``), sorted; ``conditional``: its other
    terms; ``local``: one of those needs a test of the hit (``Term.local``). ``names``: the
    lexicons the key is a word of, among those that conditions ask about."""

    length: int
    head: bool
    tail: bool
    contends: bool
    plain: tuple[Evidence, ...]
    conditional: tuple[Term, ...]
    local: bool
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Relevance:
    """Item-level conditions that make an item relevant (label and kind conditions)."""

    all: tuple[Condition, ...]
    any: tuple[Condition, ...]
    none: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Lexicon:
    """A validated, compiled rules file.

    ``automaton`` maps every normalised term and lexicon word to its :class:`KeyData`.
    ``version`` is ``<declared>+<12 hex of the file's SHA-256>`` when loaded from a file.
    """

    version: str
    labels: Mapping[LabelKind, tuple[str, ...]]
    rules: tuple[Rule, ...]
    terms: tuple[Term, ...]
    ignored: tuple[str, ...]
    automaton: Any  # ahocorasick.Automaton (untyped C extension)
    lexicons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    relevance: Relevance = Relevance((), (), ())
    title_weight: float = 2.0
    declared_version: str = ""
    digest: str = ""
    source: Path | None = None


# Without a `relevance` section: the taxonomy's definition (both countries and a topic).
DEFAULT_RELEVANCE: Final = Relevance(
    all=(
        Condition("label", label=("country", "cambodia")),
        Condition("label", label=("country", "laos")),
    ),
    any=(Condition("kind", label_kind="topic"),),
    none=(),
)


def default_path() -> Path:
    """The rules file shipped inside the package."""
    return Path(__file__).with_name("lexicon.yaml")


# -- YAML with line numbers --------------------------------------------------------------
class _LineDict(dict[Any, Any]):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise LexiconError(f"a key must be a scalar, not {key!r}", line=out.line)
        if key in out:
            line = key_node.start_mark.line + 1
            raise LexiconError(
                f"duplicate key {key!r} (first on line {out.key_lines[key]})", line=line
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line(value: object, key: object = None) -> int | None:
    if isinstance(value, _LineDict):
        return value.key_lines.get(key, value.line) if key is not None else value.line
    if isinstance(value, _LineList):
        return value.line
    return None


def parse_rules(content: bytes) -> object:
    """Parse the rules file's bytes into plain data whose mappings and lists know their
    lines (raises LexiconError on bad YAML)."""
    try:
        return yaml.load(content.decode("utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except UnicodeDecodeError as e:
        raise LexiconError(f"is not UTF-8: {e}") from e
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise LexiconError(f"not valid YAML: {e.problem}", line=line) from e
    except yaml.YAMLError as e:
        raise LexiconError(f"not valid YAML: {e}") from e


def load_lexicon(path: Path | None = None) -> Lexicon:
    """Read, validate and compile the rules file at ``path`` (default: the packaged one)."""
    source = path or default_path()
    try:
        content = source.read_bytes()
    except OSError as e:
        raise LexiconError(f"cannot read lexicon {source}: {e}") from e
    try:
        lexicon = build_lexicon(parse_rules(content))
    except LexiconError as e:
        if e.message.startswith("not valid YAML"):
            e.message = f"lexicon {source} is {e.message}"
        raise e.located(str(source)) from None
    digest = hashlib.sha256(content).hexdigest()
    return Lexicon(
        **{
            **{f: getattr(lexicon, f) for f in lexicon.__dataclass_fields__},
            "version": f"{lexicon.declared_version}+{digest[:12]}",
            "digest": digest,
            "source": source,
        }
    )


def build_lexicon(raw: object) -> Lexicon:
    """Validate an already-parsed rules document and compile it."""
    doc = _mapping(raw, "the lexicon")
    unknown = sorted(set(doc) - _TOP_LEVEL)
    if unknown:
        raise LexiconError(
            f"unknown top-level keys {unknown}; expected {sorted(_TOP_LEVEL)}",
            line=_line(doc, unknown[0]),
        )
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise LexiconError("'version' must be a non-empty string", line=_line(doc, "version"))
    labels = _label_ids(doc)
    builder = _Builder(labels, _lexicons(doc.get("lexicons")))
    for section, kind in SECTIONS.items():
        for label, body in _mapping(doc[section], section).items():
            where = f"{section}.{label}"
            entry = _mapping(body, where, line=_line(doc[section], label))
            _check_keys(entry, _LABEL_KEYS, where)
            implied = _implies(entry.get("implies"), labels, f"{where}.implies")
            rules = _mapping(entry.get("rules"), f"{where}.rules", line=_line(entry, "rules"))
            for name, rule_body in rules.items():
                builder.rule(kind, label, str(name), rule_body, implied, _line(rules, name))
    ignored = _ignored(doc.get("ignore", []))
    _check_duplicates(builder.terms, ignored)
    relevance = _relevance(doc["relevance"], builder) if "relevance" in doc else DEFAULT_RELEVANCE
    title_weight = _scoring(doc.get("scoring"))
    return Lexicon(
        version=version.strip(),
        labels=labels,
        rules=tuple(builder.rules),
        terms=tuple(builder.terms),
        ignored=ignored,
        automaton=_compile(builder.terms, ignored, builder.lexicons, _watched(builder.rules)),
        lexicons=builder.lexicons,
        relevance=relevance,
        title_weight=title_weight,
        declared_version=version.strip(),
    )


# -- shape checks ------------------------------------------------------------------------------
def _mapping(value: object, where: str, *, line: int | None = None) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise LexiconError(f"{where} must be a non-empty mapping", line=_line(value) or line)
    for key in value:
        if not isinstance(key, str):
            raise LexiconError(f"{where} has a non-string key {key!r}", line=_line(value, key))
    return cast(dict[str, Any], value)


def _check_keys(
    entry: Mapping[str, Any], allowed: frozenset[str], where: str, rule: str | None = None
) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise LexiconError(
            f"{where} has unknown keys {unknown}; allowed: {sorted(allowed)}",
            line=_line(entry, unknown[0]),
            rule=rule,
        )


def _label_ids(doc: Mapping[str, Any]) -> dict[LabelKind, tuple[str, ...]]:
    labels: dict[LabelKind, tuple[str, ...]] = {}
    for section, kind in SECTIONS.items():
        body = _mapping(doc.get(section), section, line=_line(doc, section))
        for label in body:
            if not label.isidentifier() or label != label.lower():
                raise LexiconError(
                    f"{section}.{label}: ids are lower_snake_case", line=_line(body, label)
                )
        labels[kind] = tuple(body)
    return labels


def _string_list(
    value: object, where: str, *, allow_empty: bool = False, rule: str | None = None
) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise LexiconError(
            f"{where} must be a {'' if allow_empty else 'non-empty '}list",
            line=_line(value),
            rule=rule,
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            line = value.item_lines[i] if isinstance(value, _LineList) else None
            raise LexiconError(
                f"{where} holds {item!r}, which is not a non-empty string", line=line, rule=rule
            )
    return cast(list[str], value)


def _implies(
    value: object, labels: Mapping[LabelKind, tuple[str, ...]], where: str, rule: str | None = None
) -> tuple[tuple[LabelKind, str], ...]:
    if value is None:
        return ()
    implied: list[tuple[LabelKind, str]] = []
    body = _mapping(value, where)
    for section, ids in body.items():
        if section not in SECTIONS:
            raise LexiconError(
                f"{where}: unknown section {section!r}", line=_line(body, section), rule=rule
            )
        kind = SECTIONS[section]
        for label in _string_list(ids, f"{where}.{section}", rule=rule):
            if label not in labels[kind]:
                raise LexiconError(
                    f"{where}: {section} has no label {label!r}",
                    line=_line(body, section),
                    rule=rule,
                )
            implied.append((kind, label))
    return tuple(implied)


def _lexicons(value: object) -> dict[str, list[str]]:
    """Named word lists (``lexicons:``); entries may include another list as ``@name``."""
    if value is None:
        return {}
    body = _mapping(value, "lexicons")
    raw = {
        name: _string_list(words, f"lexicons.{name}", rule=f"lexicons.{name}")
        for name, words in body.items()
    }
    out: dict[str, list[str]] = {}
    for name, words in raw.items():
        if not name.isidentifier():
            raise LexiconError(f"lexicons.{name}: names are identifiers", line=_line(body, name))
        expanded: list[str] = []
        for word in words:
            if word.startswith("@"):
                ref = word[1:]
                if ref not in raw or ref == name:
                    raise LexiconError(
                        f"lexicons.{name}: unknown lexicon {word!r}", line=_line(body, name)
                    )
                expanded.extend(w for w in raw[ref] if not w.startswith("@"))
            else:
                expanded.append(word)
        out[name] = expanded
    return out


class _Builder:
    """Accumulates rules and terms; owns the lexicon table (named + inline lists)."""

    def __init__(
        self, labels: Mapping[LabelKind, tuple[str, ...]], lexicons: dict[str, list[str]]
    ) -> None:
        self.labels = labels
        self.written = lexicons
        self.lexicons: dict[str, tuple[str, ...]] = {}
        for name, words in lexicons.items():
            self.lexicons[name] = self._keys(words, f"lexicons.{name}", f"lexicons.{name}")
        self.rules: list[Rule] = []
        self.terms: list[Term] = []

    def _keys(self, words: list[str], where: str, rule: str) -> tuple[str, ...]:
        keys = []
        for word in words:
            key = normalise_term(word)
            if not any(ch.isalnum() for ch in key):
                raise LexiconError(f"{where}: term {word!r} has no letters or digits", rule=rule)
            keys.append(key)
        return tuple(dict.fromkeys(keys))

    def expand(self, written: list[str], where: str, rule: str) -> list[str]:
        """Replace ``@name`` entries by that lexicon's words."""
        out: list[str] = []
        for word in written:
            if word.startswith("@"):
                if word[1:] not in self.written:
                    raise LexiconError(f"{where}: unknown lexicon {word!r}", rule=rule)
                out.extend(self.written[word[1:]])
            else:
                out.append(word)
        return out

    def rule(
        self,
        kind: LabelKind,
        label: str,
        name: str,
        body: object,
        label_implies: tuple[tuple[LabelKind, str], ...],
        line: int | None,
    ) -> None:
        where = f"{_KIND_TO_SECTION[kind]}.{label}.rules.{name}"
        rule_id = f"{kind}.{label}.{name}"
        try:
            rule, written = self._rule(kind, label, name, body, label_implies, where, rule_id)
            rule = Rule(
                **{**{f: getattr(rule, f) for f in rule.__dataclass_fields__}, "line": line or 0}
            )
            self.rules.append(rule)
            self.terms.extend(_terms(rule, self.expand(written, where, rule_id), where))
        except LexiconError as e:
            e.rule = e.rule or rule_id
            e.line = e.line or line
            e.args = (e._render(),)
            raise

    def _rule(
        self,
        kind: LabelKind,
        label: str,
        name: str,
        body: object,
        label_implies: tuple[tuple[LabelKind, str], ...],
        where: str,
        rule_id: str,
    ) -> tuple[Rule, list[str]]:
        if not name.isidentifier():
            raise LexiconError(f"{where}: rule names are identifiers")
        if isinstance(body, list):
            return Rule(rule_id, kind, label, implies=label_implies), _string_list(body, where)
        spec = _mapping(body, where)
        _check_keys(spec, _RULE_KEYS, where, rule_id)
        written = _string_list(spec.get("terms"), f"{where}.terms")
        context: tuple[str, ...] | None = None
        if "context" in spec:
            context = tuple(_string_list(spec["context"], f"{where}.context", allow_empty=True))
            for country in context:
                if country not in self.labels["country"]:
                    raise LexiconError(
                        f"{where}.context: no country {country!r}", line=_line(spec, "context")
                    )
        match_case = spec.get("match_case", False)
        if not isinstance(match_case, bool):
            raise LexiconError(
                f"{where}.match_case must be true or false", line=_line(spec, "match_case")
            )
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise LexiconError(f"{where}.weight must be a number ≥ 0", line=_line(spec, "weight"))
        conds = {
            group: self.conditions(spec.get(group, []), f"{where}.{group}", rule_id)
            for group in ("all", "any", "none")
        }
        unless = spec.get("unless_near")
        if unless is not None:
            words = _string_list(unless, f"{where}.unless_near", allow_empty=True)
            if words:
                name_ = self.inline(words, f"{rule_id}#unless", f"{where}.unless_near", rule_id)
                conds["none"] += (Condition("near", lexicon=name_, within=UNLESS_NEAR_WORDS),)
        extra = _implies(spec.get("implies"), self.labels, f"{where}.implies", rule_id)
        rule = Rule(
            rule_id,
            kind,
            label,
            implies=label_implies + extra,
            context=context,
            match_case=match_case,
            all=conds["all"],
            any=conds["any"],
            none=conds["none"],
            weight=float(weight),
        )
        return rule, written

    def inline(self, words: list[str], name: str, where: str, rule: str) -> str:
        self.lexicons[name] = self._keys(self.expand(words, where, rule), where, rule)
        return name

    def conditions(self, value: object, where: str, rule: str) -> tuple[Condition, ...]:
        if not isinstance(value, list):
            raise LexiconError(
                f"{where} must be a list of conditions", line=_line(value), rule=rule
            )
        out = tuple(self.condition(item, f"{where}[{i}]", rule) for i, item in enumerate(value))
        if where.endswith(".any") and len({_is_local(c) for c in out}) > 1:
            raise LexiconError(
                f"{where}: one 'any' list cannot mix hit conditions (near … within, field) "
                "with item conditions (label, kind, near without within)",
                line=_line(value),
                rule=rule,
            )
        return out

    def condition(self, value: object, where: str, rule: str) -> Condition:
        spec = _mapping(value, where)
        _check_keys(spec, _COND_KEYS, where, rule)
        line = _line(spec)
        tests = [k for k in ("near", "terms", "label", "kind", "field") if k in spec]
        if len(tests) != 1:
            raise LexiconError(
                f"{where}: a condition has exactly one of near, terms, label, kind, field "
                f"(got {tests})",
                line=line,
                rule=rule,
            )
        test = tests[0]
        within = spec.get("within")
        if within is not None:
            if test not in ("near", "terms"):
                raise LexiconError(f"{where}: 'within' applies to near/terms", line=line, rule=rule)
            if isinstance(within, bool) or not isinstance(within, int) or within < 0:
                raise LexiconError(f"{where}.within must be an integer ≥ 0", line=line, rule=rule)
        if test == "near":
            name = spec["near"]
            if not isinstance(name, str) or name.lstrip("@") not in self.written:
                raise LexiconError(f"{where}: unknown lexicon {name!r}", line=line, rule=rule)
            return Condition("near", lexicon=name.lstrip("@"), within=within)
        if test == "terms":
            words = _string_list(spec["terms"], f"{where}.terms", rule=rule)
            name = self.inline(words, f"{rule}#{where.rsplit('.', 1)[-1]}", where, rule)
            return Condition("near", lexicon=name, within=within)
        if test == "label":
            return Condition("label", label=self.label_ref(spec["label"], where, rule, line))
        if test == "kind":
            kind = spec["kind"]
            if kind not in _KIND_TO_SECTION:
                raise LexiconError(f"{where}: unknown kind {kind!r}", line=line, rule=rule)
            return Condition("kind", label_kind=kind)
        place = spec["field"]
        if place not in ("title", "text"):
            raise LexiconError(f"{where}: field is title or text", line=line, rule=rule)
        return Condition("field", field=place)

    def label_ref(
        self, value: object, where: str, rule: str, line: int | None
    ) -> tuple[LabelKind, str]:
        if isinstance(value, str) and value.count(".") == 1:
            kind_name, label = value.split(".")
            if kind_name in _KIND_TO_SECTION:
                kind = cast(LabelKind, kind_name)
                if label in self.labels[kind]:
                    return kind, label
        raise LexiconError(
            f"{where}: {value!r} is not a known '<kind>.<label>' (e.g. country.laos)",
            line=line,
            rule=rule,
        )


def _is_local(cond: Condition) -> bool:
    """Decided from the hit and its field alone (during the scan)."""
    return cond.kind == "field" or (cond.kind == "near" and cond.within is not None)


def _relevance(value: object, builder: _Builder) -> Relevance:
    spec = _mapping(value, "relevance")
    _check_keys(spec, frozenset({"all", "any", "none"}), "relevance", "relevance")
    groups = {
        g: builder.conditions(spec.get(g, []), f"relevance.{g}", "relevance")
        for g in ("all", "any", "none")
    }
    for cond in (*groups["all"], *groups["any"], *groups["none"]):
        if not cond.item_level:
            raise LexiconError(
                "relevance: only label and kind conditions apply to an item",
                line=_line(spec),
                rule="relevance",
            )
    return Relevance(groups["all"], groups["any"], groups["none"])


def _scoring(value: object) -> float:
    if value is None:
        return 2.0
    spec = _mapping(value, "scoring")
    _check_keys(spec, _SCORING_KEYS, "scoring")
    weight = spec.get("title_weight", 2.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 1:
        raise LexiconError(
            "scoring.title_weight must be a number ≥ 1", line=_line(spec, "title_weight")
        )
    return float(weight)


def _terms(rule: Rule, written: list[str], where: str) -> list[Term]:
    out = []
    for text in written:
        key = normalise_term(text)
        if not any(ch.isalnum() for ch in key):
            raise LexiconError(f"{where}: term {text!r} has no letters or digits", rule=rule.id)
        conds = (*rule.all, *rule.any, *rule.none)
        checks = local_checks(rule.all), local_checks(rule.any), local_checks(rule.none)
        evidence = [(rule.kind, rule.label, rule.id, rule.weight)]
        evidence += ((kind, label, rule.id, rule.weight) for kind, label in rule.implies)
        out.append(
            Term(
                key,
                text,
                normalise_term(text, fold_case=False),
                rule,
                plain=not (rule.match_case or conds or rule.needs_labels),
                local=rule.match_case or any(checks),
                item_level=any(not _is_local(c) for c in conds),
                needs_labels=rule.needs_labels,
                local_all=checks[0],
                local_any=checks[1],
                local_none=checks[2],
                evidence=tuple(sorted(set(evidence))),
            )
        )
    return out


def _ignored(value: object) -> tuple[str, ...]:
    return tuple(normalise_term(text) for text in _string_list(value, "ignore", allow_empty=True))


def _check_duplicates(terms: list[Term], ignored: tuple[str, ...]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for term in terms:
        key = (term.rule.kind, term.rule.label, term.key)
        if key in seen:
            raise LexiconError(
                f"{term.rule.id}: term {term.written!r} duplicates one in {seen[key]}",
                line=term.rule.line or None,
                rule=term.rule.id,
            )
        seen[key] = term.rule.id
    shadowed = sorted({term.key for term in terms} & set(ignored))
    if shadowed:
        raise LexiconError(f"ignore: {shadowed} are also label terms")


def _watched(rules: list[Rule]) -> frozenset[str]:
    """The lexicons that conditions ask about (the others are only lists of terms)."""
    return frozenset(
        c.lexicon for r in rules for c in (*r.all, *r.any, *r.none) if c.kind == "near"
    )


def _compile(
    terms: list[Term],
    ignored: tuple[str, ...],
    lexicons: Mapping[str, tuple[str, ...]],
    watched: frozenset[str],
) -> Any:
    """The automaton over every term and lexicon word, each key with its KeyData. A key's
    ``names`` are its ``watched`` lexicons only, so the engine notes no words that no
    condition asks about."""
    by_key: dict[str, list[Term]] = {key: [] for key in ignored}
    for term in terms:
        by_key.setdefault(term.key, []).append(term)
    cues: dict[str, list[str]] = {}
    for name, words in lexicons.items():
        for word in words:
            cues.setdefault(word, []).append(name)
    automaton = ahocorasick.Automaton()
    for key in sorted({*by_key, *cues}):
        found = by_key.get(key, [])
        names = tuple(name for name in cues.get(key, ()) if name in watched)
        # An `ignore` phrase has no terms; a lexicon word with no terms never contends.
        contends = bool(found) or key not in cues
        if not (contends or names):
            continue  # only a word of lexicons that nothing asks about
        conditional = tuple(term for term in found if not term.plain)
        info = KeyData(
            len(key),
            key[0].isalnum(),
            key[-1].isalnum(),
            contends,
            tuple(sorted({ev for term in found if term.plain for ev in term.evidence})),
            conditional,
            any(term.local for term in conditional),
            names,
        )
        automaton.add_word(key, info)
    automaton.make_automaton()
    return automaton
