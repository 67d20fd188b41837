"""The compiled engine (classifier/compiled.pyx) against the Python engine: the same Labels
(every field, every piece of evidence) on the shipped rules, on rules that exercise every
grammar feature, on non-ASCII terms, and on wild text; and how ``Classifier`` chooses."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import classifier.engine as engine_module
from classifier.engine import Classifier, EngineUnavailable
from classifier.lexicon import Lexicon, load_lexicon
from tests.classifier.conftest import require_compiled
from tests.classifier.test_rules import BASE

DATA = Path(__file__).resolve().parents[1] / "data"
SEEDS = Path(__file__).resolve().parents[2] / "seeds"

# A rules file whose terms normalise to non-ASCII keys (Khmer, Lao, Greek, "ß" → "ss",
# the ligature "ﬁ" → "fi"), with a proximity condition over a non-ASCII lexicon.
UNICODE_RULES = """\
version: "u1"
lexicons:
  lao_army: [ກອງທັບ, armée]
topics:
  border_security:
    rules:
      khmer: [ព្រំដែន]
      greek: [σύνορα]
      strasse: [Grenzstraße]
      fire: [ﬁre line]
      near_army:
        terms: [ຊາຍແດນ]
        all: [{near: lao_army, within: 2}]
officials:
  hun_manet:
    rules:
      name: [ហ៊ុន ម៉ាណែត, Hun Manet]
countries:
  cambodia:
    rules:
      name: [កម្ពុជា, Cambodge]
  laos:
    rules:
      name: [ລາວ, Laos]
organisations:
  asean:
    rules:
      name: [ASEAN, Ασεαν]
"""


@pytest.fixture(scope="module")
def shipped() -> Lexicon:
    return load_lexicon()


def _pair(lexicon: Lexicon) -> tuple[Classifier, Classifier]:
    require_compiled()
    python = Classifier(lexicon, "python")
    compiled = Classifier(lexicon, "compiled")
    assert (python.engine, compiled.engine) == ("python", "compiled")
    return python, compiled


def _same(pair: tuple[Classifier, Classifier], title: str, text: str) -> None:
    python, compiled = pair
    expected = python.classify(title, text)
    got = compiled.classify(title, text)
    assert got == expected
    assert got.model_dump_json() == expected.model_dump_json()
    assert got.model_fields_set == expected.model_fields_set
    for match in got.matches:
        assert (
            match.model_fields_set
            == type(match).model_validate(match.model_dump()).model_fields_set
        )


def test_dev_set_holdout_and_seeds_classify_the_same(shipped: Lexicon) -> None:
    pair = _pair(shipped)
    rows = [
        json.loads(line)
        for name in ("dev.jsonl", "holdout.jsonl", "blind.jsonl")
        for line in (DATA / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(rows) >= 150
    for row in rows:
        _same(pair, row.get("title") or "", row.get("content") or "")
        _same(pair, "", f"{row.get('title')}\n\n{row.get('content')}")
    for seed in sorted(SEEDS.glob("*.txt")):
        text = seed.read_text(encoding="utf-8")
        _same(pair, text.splitlines()[0], text)


# Fragments that make hits likely — names, conditional terms and their cues, overlaps —
# mixed with arbitrary Unicode so the text is still wild.
_FRAGMENTS = st.sampled_from(
    [" ", "\n\n", "-", "–", "—", "’s", "'", "Laos", "Lao", "Cambodia", "Cambodian", "Manet",
     "Hun ", "Hun Manet", "Hun Sen", "border", "border security", "troops", "soldiers",
     "army", "drill", "drills", "exercise", "joint exercise", "US", "us", "IT", "floods",
     "market", "training", "military", "mine clearance", "gold mine", "painter", "ASEAN",
     "ADMM+", "ﬁ", "İ", "é", "ß", "\u00ad", "\u200b", "Lao People’s Army", "RCAF", "…",
     "ព្រំដែន", "ລາວ", "𝔘𝔖", "\x00", "\r\n", "\t", ",", "."]
)  # fmt: skip
_WILD = st.lists(_FRAGMENTS | st.text(max_size=5), max_size=80).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=_WILD, text=_WILD)
def test_wild_text_classifies_the_same(shipped: Lexicon, title: str, text: str) -> None:
    _same(_pair(shipped), title, text)


# BASE plus item-level proximity ("near" anywhere in the item), alone and beside a
# hit-level test, in all / any / none.
GRAMMAR = BASE.replace('"@khmer_words"', "Khmer").replace(
    """      title_only:""",
    """      anywhere:
        terms: [manoeuvres]
        all: [{near: military}]
        none: [{near: art}]
      either:
        terms: [parade]
        any: [{near: military}, {near: art}]
        none: [{near: art, within: 1}]
      title_only:""",
)
_BASE_WORDS = st.sampled_from(
    ["Cambodia", "Khmer", "Laos", "Hun Manet", "Manet", "painter", "museum", "drill", "drills",
     "army", "soldiers", "troops", "fire", "wargame", "border security", "RCAF", "the forces",
     "manoeuvres", "parade", "the", "a", "and", ",", ".", "\n"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.lists(_BASE_WORDS, max_size=8), text=st.lists(_BASE_WORDS, max_size=40))
def test_every_grammar_feature_classifies_the_same(
    tmp_path_factory: pytest.TempPathFactory, title: list[str], text: list[str]
) -> None:
    """GRAMMAR has proximity in the field and anywhere in the item, none, any, field,
    context, label/kind conditions and a lexicon reference; the words are theirs, so the
    conditions are hit both ways."""
    lexicon = _rules(tmp_path_factory, GRAMMAR)
    _same(_pair(lexicon), " ".join(title), " ".join(text))


_UNICODE_WORDS = st.sampled_from(
    ["ព្រំដែន", "σύνορα", "ΣΎΝΟΡΑ", "Grenzstraße", "GRENZSTRASSE", "ﬁre line", "fire line",
     "ຊາຍແດນ", "ກອງທັບ", "armée", "ARMEE", "កម្ពុជា", "Cambodge", "ລາວ", "Laos", "x", "–",
     ",", "\u00ad", "ហ៊ុន ម៉ាណែត", "ασεαν"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(_UNICODE_WORDS, max_size=30))
def test_non_ascii_terms_classify_the_same(
    tmp_path_factory: pytest.TempPathFactory, words: list[str]
) -> None:
    _same(_pair(_rules(tmp_path_factory, UNICODE_RULES)), "", " ".join(words))


def test_item_level_proximity_decides_per_item(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The compiled engine caches a hit's item-level decisions per key, live terms and the
    lexicons present: the same key must still decide each item on its own."""
    python, compiled = _pair(_rules(tmp_path_factory, GRAMMAR))
    cases = [
        ("", "manoeuvres near the army", ["joint_exercise"]),
        ("", "manoeuvres", []),
        ("", "manoeuvres by the army at the museum", []),
        ("army", "manoeuvres", ["joint_exercise"]),
        ("", "the parade", []),
        ("", "a painter at the parade", ["joint_exercise"]),
        ("", "painter parade", []),
        ("soldiers", "parade", ["joint_exercise"]),
    ]
    for title, text, topics in cases * 2:  # twice: the second round from the cache
        labels = compiled.classify(title, text)
        assert labels == python.classify(title, text)
        assert labels.topics == topics, (title, text)


def test_non_ascii_terms_are_found(tmp_path_factory: pytest.TempPathFactory) -> None:
    python, compiled = _pair(_rules(tmp_path_factory, UNICODE_RULES))
    text = "ព្រំដែន កម្ពុជា ລາວ: ກອງທັບ ຊາຍແດນ; GRENZSTRASSE and the ﬁre line"
    labels = compiled.classify("", text)
    assert labels == python.classify("", text)
    assert labels.countries == ["cambodia", "laos"]
    found = {m.rule.rsplit(".", 1)[1]: m.text for m in labels.matches if m.kind == "topic"}
    assert found == {
        "khmer": "ព្រំដែន",
        "near_army": "ຊາຍແດນ",
        "strasse": "GRENZSTRASSE",
        "fire": "ﬁre line",
    }
    assert labels.relevant


_RULES_CACHE: dict[str, Lexicon] = {}


def _rules(tmp_path_factory: pytest.TempPathFactory, text: str) -> Lexicon:
    if text not in _RULES_CACHE:
        path = tmp_path_factory.mktemp("rules") / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        _RULES_CACHE[text] = load_lexicon(path)
    return _RULES_CACHE[text]


# --- choosing the engine -------------------------------------------------------------------


def test_auto_takes_the_compiled_engine_when_built(shipped: Lexicon) -> None:
    require_compiled()
    assert Classifier(shipped).engine == "compiled"
    assert Classifier(shipped, "python").engine == "python"


def test_an_unknown_engine_is_refused(shipped: Lexicon) -> None:
    with pytest.raises(ValueError, match="unknown classifier engine 'fast'"):
        Classifier(shipped, "fast")


def test_without_the_compiled_module_auto_falls_back(
    shipped: Lexicon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_compiled_module", lambda: None)
    assert Classifier(shipped).engine == "python"
    with pytest.raises(EngineUnavailable, match="not built"):
        Classifier(shipped, "compiled")


def test_a_lexicon_too_big_for_the_table_is_left_to_python(
    shipped: Lexicon, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_compiled()
    from classifier import compiled

    with pytest.raises(MemoryError, match="over the table's limit of 1,000 entries"):
        compiled.Engine(shipped, max_table=1_000)
    small = SimpleNamespace(Engine=lambda lexicon: compiled.Engine(lexicon, max_table=1_000))
    monkeypatch.setattr(engine_module, "_compiled_module", lambda: small)
    fallback = Classifier(shipped)
    assert fallback.engine == "python"
    assert fallback.classify("", "Cambodia and Laos: border security.").relevant
    with pytest.raises(EngineUnavailable, match="over the table's limit"):
        Classifier(shipped, "compiled")
