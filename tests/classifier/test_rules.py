"""The rules grammar (RULES.md): every feature, table-driven, plus validation and reload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.engine import Classifier, EngineChoice
from classifier.lexicon import LexiconError, load_lexicon
from classifier.watcher import RulesWatcher

BASE = """\
version: "t1"
lexicons:
  military: [army, soldiers, troops]
  art: [painter, museum]
topics:
  joint_exercise:
    rules:
      drill:
        terms: [drill, drills]
        all: [{near: military, within: 3}]
        none: [{terms: [fire], within: 2}]
      title_only:
        terms: [wargame]
        all: [{field: title}]
  border_security:
    rules:
      plain: [border security]
officials:
  hun_manet:
    implies: {countries: [cambodia]}
    rules:
      full_name: [Hun Manet]
      short_name:
        terms: [Manet]
        context: [cambodia, laos]
        none: [{near: art, within: 8}]
countries:
  cambodia:
    rules:
      name: [Cambodia, "@khmer_words"]
  laos:
    rules:
      name: [Laos]
organisations:
  rcaf:
    rules:
      name: [RCAF]
      needs_army:
        terms: [the forces]
        any: [{label: country.cambodia}, {kind: official}]
"""


def _load(tmp_path: Path, engine: EngineChoice, text: str = BASE) -> Classifier:
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace('"@khmer_words"', "Khmer"), encoding="utf-8")
    return Classifier(load_lexicon(path), engine)


@pytest.mark.parametrize(
    ("title", "text", "topics", "officials", "orgs"),
    [
        ("", "The army held a drill in Laos.", ["joint_exercise"], [], []),  # within 3 words
        ("", "The army, after a long and tiring week, held a drill.", [], [], []),  # too far
        ("", "Army fire drill.", [], [], []),  # none: fire within 2 words
        ("Wargame season", "", ["joint_exercise"], [], []),  # field: title
        ("", "A wargame was held.", [], [], []),  # not in the title
        ("", "Manet spoke in Laos.", [], ["hun_manet"], []),  # context: a country
        ("", "Manet the painter, shown in a Laos museum.", [], [], []),  # negative context
        ("", "Manet spoke.", [], [], []),  # no context
        ("", "In Cambodia, the forces paraded.", [], [], ["rcaf"]),  # any: a label
        ("", "Hun Manet reviewed the forces.", [], ["hun_manet"], ["rcaf"]),  # any: a kind
        ("", "The forces paraded.", [], [], []),  # any: none holds
    ],
)
def test_rule_features(
    tmp_path: Path,
    engine: EngineChoice,
    title: str,
    text: str,
    topics: list[str],
    officials: list[str],
    orgs: list[str],
) -> None:
    labels = _load(tmp_path, engine).classify(title, text)
    assert (labels.topics, labels.officials, labels.organisations) == (topics, officials, orgs)


def test_relevance_follows_the_rules_file(tmp_path: Path, engine: EngineChoice) -> None:
    default = _load(tmp_path, engine)
    assert default.classify("", "Cambodia and Laos: border security.").relevant
    assert not default.classify("", "Cambodia: border security.").relevant
    custom = _load(tmp_path, engine, BASE + "relevance:\n  all: [{label: country.cambodia}]\n")
    assert custom.classify("", "Cambodia alone.").relevant


def test_title_weight_raises_the_score(tmp_path: Path, engine: EngineChoice) -> None:
    heavy = _load(tmp_path, engine, BASE + "scoring: {title_weight: 4}\n")
    light = _load(tmp_path, engine, BASE + "scoring: {title_weight: 1}\n")
    args = ("Border security", "Cambodia and Laos.")
    assert heavy.classify(*args).score > light.classify(*args).score


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("        all: [{near: military, within: 3}]", "        all: [{near: navy}]",
         "unknown lexicon 'navy'"),
        ("        all: [{field: title}]", "        all: [{field: body}]", "field is title or text"),
        ("        all: [{field: title}]", "        all: [{field: title, within: 2}]",
         "'within' applies"),
        ("        any: [{label: country.cambodia}, {kind: official}]",
         "        any: [{label: country.mars}]", "not a known"),
        ("      plain: [border security]",
         "      plain: [border security]\n      plain: [x]", "duplicate key 'plain'"),
        ("        terms: [drill, drills]",
         "        terms: [drill, drills]\n        colour: red", "unknown keys"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_rule(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BASE
    path = tmp_path / "rules.yaml"
    path.write_text(BASE.replace(old, new).replace('"@khmer_words"', "Khmer"), encoding="utf-8")
    with pytest.raises(LexiconError) as caught:
        load_lexicon(path)
    text = str(caught.value)
    assert message in text
    assert text.startswith(f"{path}:")
    source = path.read_text().splitlines()
    first_new = next(i for i, row in enumerate(source, 1) if row == new.splitlines()[-1])
    assert caught.value.line is not None and abs(caught.value.line - first_new) <= 1, text


def test_an_error_names_the_rule_id(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BASE.replace("[Hun Manet]", "[' -- ']").replace('"@khmer_words"', "K"))
    with pytest.raises(LexiconError, match=r"rules.yaml:\d+: .*official.hun_manet.full_name"):
        load_lexicon(path)


def test_lexicon_references_expand(tmp_path: Path, engine: EngineChoice) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        BASE.replace(
            "art: [painter, museum]", "art: [painter, museum]\n  khmer_words: [Khmer, Kampuchea]"
        )
    )
    assert Classifier(load_lexicon(path), engine).classify("", "Kampuchea").countries == [
        "cambodia"
    ]


def test_rules_version_is_declared_version_and_hash(tmp_path: Path, engine: EngineChoice) -> None:
    classifier = _load(tmp_path, engine)
    digest = hashlib.sha256((tmp_path / "rules.yaml").read_bytes()).hexdigest()[:12]
    assert classifier.classify("", "x").rules_version == f"t1+{digest}"


def test_watcher_reloads_a_changed_file_and_keeps_good_rules(tmp_path: Path) -> None:
    _load(tmp_path, "python")
    path = tmp_path / "rules.yaml"
    now = [0.0]
    watcher = RulesWatcher(path, interval_s=5, clock=lambda: now[0])
    before = watcher.lexicon.version
    assert watcher.check() is None  # nothing changed
    path.write_text(path.read_text().replace('"t1"', '"t2"') + "\n")
    assert watcher.check() is None  # not yet: checks at most every interval
    now[0] = 10.0
    fresh = watcher.check()
    assert fresh is not None and fresh.version.startswith("t2+") and fresh.version != before
    path.write_text("version: [")  # broken: logged, previous rules stay
    now[0] = 20.0
    assert watcher.check() is None
    assert watcher.lexicon is fresh


# --- property tests on the shipped rules ---------------------------------------------------
_WORDS = st.sampled_from(
    ["Cambodia", "Laos", "Hun Manet", "border security", "joint exercise", "troops", "drill",
     "army", "Manet", "painter", "trafficking", "smugglers", "frontier", "the", "and", ",", "."]
)  # fmt: skip
_TEXT = st.lists(_WORDS, max_size=40)


@pytest.fixture(scope="module")
def shipped(engine: EngineChoice) -> Classifier:
    return Classifier(load_lexicon(), engine)


def _key(c: Classifier, title: str, text: str) -> tuple[object, ...]:
    labels = c.classify(title, text)
    return (
        labels.topics,
        labels.officials,
        labels.countries,
        labels.organisations,
        labels.relevant,
    )


@settings(max_examples=150, deadline=None)
@given(
    title=_TEXT, text=_TEXT, seps=st.lists(st.sampled_from([" ", "\n", "  ", "\t \n"]), min_size=1)
)
def test_labels_survive_reflowed_whitespace(
    shipped: Classifier, title: list[str], text: list[str], seps: list[str]
) -> None:
    def flow(words: list[str]) -> str:
        return "".join(w + seps[i % len(seps)] for i, w in enumerate(words))

    assert _key(shipped, " ".join(title), " ".join(text)) == _key(shipped, flow(title), flow(text))


@settings(max_examples=150, deadline=None)
@given(title=_TEXT, text=_TEXT)
def test_labels_survive_lower_case(shipped: Classifier, title: list[str], text: list[str]) -> None:
    # Only terms marked match_case (US, PRC, IT security) depend on case; none are drawn here.
    a, b = " ".join(title), " ".join(text)
    assert _key(shipped, a, b) == _key(shipped, a.lower(), b.lower())
    assert _key(shipped, a, b) == _key(shipped, a.upper(), b.upper())


@settings(max_examples=200, deadline=None)
@given(title=st.text(), text=st.text())
def test_no_input_raises_and_spans_slice(shipped: Classifier, title: str, text: str) -> None:
    labels = shipped.classify(title, text)
    fields = {"title": title, "text": text}
    for m in labels.matches:
        assert fields[m.field][m.start : m.end] == m.text
