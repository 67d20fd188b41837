"""The rule engine against the taxonomy's worked examples, hard negatives and invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.engine import Classifier, EngineChoice
from classifier.lexicon import Lexicon, LexiconError, load_lexicon
from classifier.verdict import IRRELEVANT_CEILING, RELEVANT_FLOOR
from core.models import Labels

SEEDS = Path(__file__).resolve().parents[2] / "seeds"

TOPICS = {
    "border_security", "transnational_crime", "drug_trafficking", "human_trafficking",
    "terrorism", "disaster_relief", "training_exchange", "joint_exercise",
    "defence_diplomacy", "demining", "health_cooperation", "regional_security",
    "cyber_security",
}  # fmt: skip
OFFICIALS = {
    "hun_manet", "hun_sen", "tea_seiha", "tea_banh", "vong_pisen", "mao_sophan",
    "khamliang_outhakaysone", "chansamone_chanyalath", "thongloun_sisoulith",
    "sonexay_siphandone",
}  # fmt: skip
COUNTRIES = {
    "cambodia", "laos", "vietnam", "thailand", "myanmar", "china", "russia",
    "united_states", "australia", "japan", "india", "south_korea", "new_zealand",
    "singapore", "indonesia", "philippines", "malaysia",
}  # fmt: skip

# The worked examples of ../shared/taxonomy.md: seed prefix → (relevant, topics, officials).
SEED_EXPECTATIONS = {
    "000": (
        True,
        {"border_security", "disaster_relief", "training_exchange", "drug_trafficking",
         "transnational_crime", "defence_diplomacy"},
        {"hun_manet", "khamliang_outhakaysone", "thongloun_sisoulith", "hun_sen"},
    ),
    "001": (
        True,
        {"training_exchange", "defence_diplomacy", "border_security", "transnational_crime"},
        {"hun_manet", "khamliang_outhakaysone"},
    ),
    "002": (
        True,
        {"defence_diplomacy", "border_security", "transnational_crime", "health_cooperation"},
        {"vong_pisen", "khamliang_outhakaysone", "sonexay_siphandone"},
    ),
    "003": (
        True,
        {"transnational_crime", "terrorism", "drug_trafficking", "human_trafficking",
         "disaster_relief", "border_security", "training_exchange", "joint_exercise",
         "defence_diplomacy", "regional_security"},
        {"vong_pisen", "khamliang_outhakaysone"},
    ),
    "004": (
        True,
        {"defence_diplomacy", "regional_security", "demining", "disaster_relief",
         "cyber_security", "drug_trafficking", "human_trafficking", "transnational_crime"},
        {"tea_seiha", "chansamone_chanyalath", "hun_manet", "hun_sen", "tea_banh"},
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon()


@pytest.fixture(scope="module")
def classifier(lexicon: Lexicon, engine: EngineChoice) -> Classifier:
    classifier = Classifier(lexicon, engine)
    assert classifier.engine == engine
    return classifier


def _seed_file(prefix: str) -> Path:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path


def _split_furniture(raw: str) -> tuple[str, str]:
    """(article, furniture): furniture starts at the line beginning "Follow us"."""
    at = raw.find("\nFollow us")
    return (raw, "") if at < 0 else (raw[:at], raw[at:])


def _assert_spans(labels: Labels, title: str, text: str) -> None:
    fields = {"title": title, "text": text}
    for match in labels.matches:
        assert fields[match.field][match.start : match.end] == match.text


# --- the worked examples ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", sorted(SEED_EXPECTATIONS))
def test_seed_labels_match_the_taxonomy(classifier: Classifier, prefix: str) -> None:
    relevant, topics, officials = SEED_EXPECTATIONS[prefix]
    text, _ = _split_furniture(_seed_file(prefix).read_text(encoding="utf-8"))
    labels = classifier.classify("", text)
    assert labels.relevant is relevant
    assert set(labels.topics) == topics
    assert set(labels.officials) == officials
    assert {"cambodia", "laos"} <= set(labels.countries)
    assert labels.score >= RELEVANT_FLOOR
    _assert_spans(labels, "", text)


def test_seed_items_as_loaded_keep_their_labels(classifier: Classifier) -> None:
    from ingestor.seeds import load_seed_items

    for item in load_seed_items(SEEDS):
        assert item.guid is not None
        relevant, topics, officials = SEED_EXPECTATIONS[item.guid.split(":")[1][:3]]
        labels = classifier.classify(item.title, item.text)
        assert (labels.relevant, set(labels.topics), set(labels.officials)) == (
            relevant,
            topics,
            officials,
        )
        _assert_spans(labels, item.title, item.text)


def test_seed_004_furniture_gives_no_countries(classifier: Classifier) -> None:
    article, furniture = _split_furniture(_seed_file("004").read_text(encoding="utf-8"))
    named_by_furniture = {"singapore", "indonesia", "philippines", "thailand"}
    # The trailer's headlines do name these countries (so the test has teeth)…
    assert named_by_furniture <= set(classifier.classify("", furniture).countries)
    # …but once it is cut off, none of them reaches the article's labels.
    labels = classifier.classify("", article)
    assert not named_by_furniture & set(labels.countries)
    assert set(labels.countries) == {
        "cambodia", "laos", "china", "australia", "russia", "united_states", "india",
        "japan", "new_zealand", "south_korea",
    }  # fmt: skip


def test_analysts_are_not_officials(classifier: Classifier) -> None:
    text = "Yang Peou, Kin Phea and Thong Mengdavid discussed Cambodia and Laos border security."
    assert classifier.classify("", text).officials == []


# --- hard negatives and near misses ---------------------------------------------------------

ART_REVIEW = (
    "Édouard Manet's Olympia returns to the Musée d'Orsay. Manet painted it in 1863; "
    "critics still debate Manet’s brushwork and his debt to Titian."
)


@pytest.mark.parametrize(
    ("title", "text", "absent_topics", "absent_officials", "relevant"),
    [
        pytest.param("Manet at the Orsay", ART_REVIEW, set(), {"hun_manet"}, False, id="painter"),
        pytest.param(
            "",
            "The company expects its new gold mine to start mining copper and bauxite next year.",
            {"demining"},
            set(),
            False,
            id="gold-mine",
        ),
        pytest.param(
            "",
            "Pharmaceutical drug prices rose in Cambodia and Laos as the drug regulator "
            "approved new medicines.",
            {"drug_trafficking"},
            set(),
            False,
            id="drug-prices",
        ),
        pytest.param(
            "",
            "Regular exercise improves fitness: Cambodian and Lao runners exercise daily "
            "and drill their sprint starts.",
            {"joint_exercise"},
            set(),
            False,
            id="fitness",
        ),
        pytest.param(
            "",
            "Cambodia and Laos opened a trade fair in Vientiane; exporters from Phnom Penh "
            "showed rice and silk, and commerce ministers agreed to cut tariffs at the "
            "border crossing to boost tourism.",
            TOPICS,
            set(),
            False,
            id="trade-fair",
        ),
        pytest.param(
            "",
            "Hun Sen welcomed the leaders of the region; the economy faced a disaster, and "
            "the border between policy and politics blurred.",
            {"disaster_relief", "border_security"},
            set(),
            False,
            id="figurative",
        ),
        pytest.param(
            "",
            "A Lao restaurant in Phnom Penh serves banh mi; Sen. Smith and Sophan ate there.",
            TOPICS,
            {"tea_banh", "hun_sen", "mao_sophan"},
            False,
            id="short-names",
        ),
        pytest.param(
            "",
            "Follow us for news about Laos and Cambodia. Contact us.",
            TOPICS,
            set(),
            False,
            id="us-pronoun",
        ),
    ],
)
def test_hard_negatives(
    classifier: Classifier,
    title: str,
    text: str,
    absent_topics: set[str],
    absent_officials: set[str],
    relevant: bool,
) -> None:
    labels = classifier.classify(title, text)
    assert not set(labels.topics) & absent_topics
    assert not set(labels.officials) & absent_officials
    assert labels.relevant is relevant
    assert labels.score <= IRRELEVANT_CEILING
    assert "united_states" not in labels.countries


def test_cambodia_thailand_border_clash_is_border_security_but_not_relevant(
    classifier: Classifier,
) -> None:
    labels = classifier.classify(
        "Border clash near Preah Vihear",
        "Cambodian and Thai troops exchanged fire in a border clash near the temple.",
    )
    assert labels.topics == ["border_security"]
    assert labels.countries == ["cambodia", "thailand"]
    assert not labels.relevant
    assert 0 < labels.score <= IRRELEVANT_CEILING


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("Cambodia and Laos held joint exercises.", {"joint_exercise"}),
        ("Cambodian and Lao troops staged military drills.", {"joint_exercise"}),
        ("A field training exercise for Cambodia and Laos.", {"joint_exercise"}),
        ("Landmine and UXO clearance in Cambodia and Laos.", {"demining"}),
        ("Cambodia and Laos step up demining.", {"demining"}),
        # Drug and human trafficking are transnational crime too (implied).
        ("Narcotics seized on the Cambodia-Laos frontier.",
         {"drug_trafficking", "transnational_crime"}),
        ("Cambodia and Laos fight human and drug trafficking.",
         {"drug_trafficking", "human_trafficking", "transnational_crime"}),
        ("Cambodia and Laos fight drug and human trafficking.",
         {"drug_trafficking", "human_trafficking", "transnational_crime"}),
        ("CMAC and UXO Lao met.", {"demining"}),
        ("Cambodia and Laos discuss ADMM-Plus.", {"regional_security"}),
        ("Cambodia and Laos train on IT security.", {"cyber_security"}),
        ("Cambodia and Laos: it security is fine.", set()),
    ],
)  # fmt: skip
def test_positive_terms(classifier: Classifier, text: str, topics: set[str]) -> None:
    labels = classifier.classify("", text)
    assert set(labels.topics) == topics
    assert labels.relevant is bool(topics)


def test_floods_are_cancelled_by_market_context(classifier: Classifier) -> None:
    literal = classifier.classify("", "Floods hit Cambodia and Laos; troops sent.")
    figurative = classifier.classify("", "Cheap imports: floods of goods hit the market.")
    assert literal.topics == ["disaster_relief"]
    assert figurative.topics == []


# --- officials and their context --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "officials"),
    [
        ("Manet spoke.", set()),
        ("Manet spoke in Phnom Penh.", {"hun_manet"}),
        ("Manet’s visit to Vientiane.", {"hun_manet"}),
        ("Hun\nManet spoke; later Manet left.", {"hun_manet"}),
        ("Sophan spoke in Phnom Penh.", set()),
        ("Mao Sophan spoke; Sophan then left.", {"mao_sophan"}),
        ("Khamliang and Khamlieng met in Laos.", {"khamliang_outhakaysone"}),
        ("Gen Khamlieng Outhakaysone.", {"khamliang_outhakaysone"}),
        ("Khamtai Siphandone in Laos.", set()),
    ],
)
def test_officials(classifier: Classifier, text: str, officials: set[str]) -> None:
    assert set(classifier.classify("", text).officials) == officials


def test_officials_and_armed_forces_imply_their_country(classifier: Classifier) -> None:
    labels = classifier.classify("", "Hun Manet met the Lao People's Army chief.")
    assert labels.countries == ["cambodia", "laos"]
    assert labels.organisations == ["lao_peoples_army"]
    assert classifier.classify("", "The RCAF said so.").countries == ["cambodia"]


# --- matching mechanics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("Laotian officials", ["laos"]),
        ("Laosxyz and xyzLaos", []),
        ("Laos-Cambodia", ["cambodia", "laos"]),
        ("LAOS", ["laos"]),
        ("the US and the U.S.", ["united_states"]),
        ("tell us", []),
        ("Phnom\nPenh and Vientiane", ["cambodia", "laos"]),
    ],
)
def test_whole_words_only(classifier: Classifier, text: str, countries: list[str]) -> None:
    assert classifier.classify("", text).countries == countries


def test_longest_match_wins(classifier: Classifier) -> None:
    labels = classifier.classify("", "The Royal Cambodian Armed Forces and Laos.")
    rcaf = [m for m in labels.matches if m.start == 4]
    assert {m.text for m in rcaf} == {"Royal Cambodian Armed Forces"}
    assert {(m.kind, m.label) for m in rcaf} == {("organisation", "rcaf"), ("country", "cambodia")}


# Terms that overlap each other in every way (nested, chained, same start, same end); the
# longest, "b c d e", is cancelled by an "f" next to it, and must then not shadow others.
_OVERLAPS = """\
version: "o1"
lexicons:
  f: [f]
topics:
  t:
    rules:
      r: [a b, b c, a b c, c d, d, e a, c d e a b]
      cancelled:
        terms: [b c d e]
        none: [{near: f, within: 1}]
officials: {o: {rules: {r: [zz]}}}
countries: {c: {rules: {r: [yy]}}}
organisations: {g: {rules: {r: [xx]}}}
"""
_TERMS = ["a b", "b c", "a b c", "c d", "d", "e a", "c d e a b", "b c d e"]


def _contest_by_hand(words: list[str]) -> list[tuple[int, int]]:
    """Spans the longest-match rule gives for ``_OVERLAPS``, found the slow way: every
    occurrence of every term, longest first (then earliest), dropping overlaps."""
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    found = []
    for term in _TERMS:
        size = len(term.split())
        for i in range(len(words) - size + 1):
            if words[i : i + size] != term.split():
                continue
            if term == "b c d e" and "f" in words[max(i - 1, 0) : i + size + 1]:
                continue  # cancelled: an "f" within one word
            found.append((starts[i], starts[i] + len(term)))
    won: list[tuple[int, int]] = []
    for start, end in sorted(found, key=lambda span: (span[0] - span[1], span[0])):
        if all(end <= w_start or start >= w_end for w_start, w_end in won):
            won.append((start, end))
    return sorted(won)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from("abcdef"), max_size=30))
def test_longest_match_wins_in_any_overlap(tmp_path_factory, engine, words: list[str]) -> None:
    path = tmp_path_factory.mktemp("overlaps") / "rules.yaml"
    path.write_text(_OVERLAPS, encoding="utf-8")
    labels = Classifier(load_lexicon(path), engine).classify("", " ".join(words))
    assert sorted((m.start, m.end) for m in labels.matches) == _contest_by_hand(words)


def test_evidence_points_at_the_original_text(classifier: Classifier) -> None:
    title = "Cambodia–Laos border security talks"
    text = (
        "Gen.\n Vong   Pisen met Lao officials on “border\nsecurity” and human and drug "
        "trafficking."
    )
    labels = classifier.classify(title, text)
    _assert_spans(labels, title, text)
    by_text = {(m.field, m.text, m.label) for m in labels.matches}
    assert ("title", "border security", "border_security") in by_text
    assert ("text", "Vong   Pisen", "vong_pisen") in by_text
    assert ("text", "border\nsecurity", "border_security") in by_text
    assert ("text", "human and drug trafficking", "drug_trafficking") in by_text
    assert ("text", "human and drug trafficking", "human_trafficking") in by_text
    rules = {m.rule for m in labels.matches if m.label == "border_security"}
    assert rules == {"topic.border_security.border_security"}


def test_output_lists_are_sorted_and_unique(classifier: Classifier) -> None:
    text = _seed_file("004").read_text(encoding="utf-8")
    labels = classifier.classify("", _split_furniture(text)[0])
    for values in (labels.topics, labels.officials, labels.countries, labels.organisations):
        assert values == sorted(set(values))
    assert len(labels.matches) == len(set(labels.matches))


def test_nothing_matched_scores_zero(classifier: Classifier, lexicon: Lexicon) -> None:
    labels = classifier.classify("", "Nothing to see here.")
    assert labels == Labels(rules_version=lexicon.version)
    assert labels.rules_version


def test_title_hits_weigh_more(classifier: Classifier) -> None:
    sentence = "Cambodia and Laos agree on border security"
    in_title = classifier.classify(sentence, "")
    in_text = classifier.classify("", sentence)
    assert in_title.relevant
    assert in_text.relevant
    assert in_title.score > in_text.score


def test_more_topics_score_higher(classifier: Classifier) -> None:
    one = classifier.classify("", "Cambodia and Laos: border security.")
    two = classifier.classify("", "Cambodia and Laos: border security and joint exercises.")
    assert RELEVANT_FLOOR < one.score < two.score < 1.0


def test_classification_is_deterministic(lexicon: Lexicon, engine: EngineChoice) -> None:
    text = _split_furniture(_seed_file("003").read_text(encoding="utf-8"))[0]
    first = Classifier(lexicon, engine).classify("t", text)
    again = Classifier(load_lexicon(), engine).classify("t", text)
    assert first == again
    assert first.model_dump_json() == again.model_dump_json()


# Fragments that make hits likely, mixed with arbitrary Unicode so the text is still wild.
_FRAGMENTS = st.sampled_from(
    [" ", "\n", "-", "–", "’s", "Laos", "Cambodia", "Manet", "Hun ", "border security",
     "US", "mine clearance", "ﬁ", "İ", "é", "\u00ad", "Lao People’s Army", "ADMM+"]
)  # fmt: skip
_WILD_TEXT = st.lists(_FRAGMENTS | st.text(max_size=4), max_size=60).map("".join)


@settings(max_examples=200, deadline=None)
@given(title=_WILD_TEXT, text=_WILD_TEXT)
def test_classify_invariants(classifier: Classifier, title: str, text: str) -> None:
    labels = classifier.classify(title, text)
    assert 0.0 <= labels.score <= 1.0
    assert (labels.score == 0.0) is (not labels.matches)
    if labels.relevant:
        assert labels.score >= RELEVANT_FLOOR
    else:
        assert labels.score <= IRRELEVANT_CEILING
    _assert_spans(labels, title, text)


# --- the lexicon -----------------------------------------------------------------------------


def test_lexicon_covers_the_taxonomy(lexicon: Lexicon) -> None:
    assert set(lexicon.labels["topic"]) == TOPICS
    assert set(lexicon.labels["official"]) == OFFICIALS
    assert set(lexicon.labels["country"]) == COUNTRIES
    assert {"rcaf", "lao_peoples_army", "asean", "admm", "admm_plus", "cmac", "uxo_lao"} <= set(
        lexicon.labels["organisation"]
    )
    assert lexicon.version
    for rule in lexicon.rules:
        assert rule.id.startswith(f"{rule.kind}.{rule.label}.")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("version: '1'\ntopics: {}\n", "topics must be a non-empty mapping"),
        ("topics: {a: {rules: {r: [x]}}}\n", "'version'"),
        (
            "version: '1'\nsurprise: 1\n",
            "unknown top-level keys ['surprise']",
        ),
    ],
)
def test_bad_lexicon_documents_are_named(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(LexiconError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_lexicon(path)


def _minimal(extra_topic_rule: str) -> str:
    return (
        "version: '1'\n"
        "topics:\n  border_security:\n    rules:\n" + extra_topic_rule + "officials:\n"
        "  hun_manet:\n    rules:\n      full_name: [Hun Manet]\n"
        "countries:\n  cambodia:\n    rules:\n      name: [Cambodia]\n"
        "organisations:\n  rcaf:\n    rules:\n      name: [RCAF]\n"
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("      r: [border security, Border-Security]\n", "topic.border_security.r: term"),
        ("      r: {terms: [x], context: [atlantis]}\n", "border_security.rules.r.context"),
        ("      r: {terms: [x], colour: red}\n", "border_security.rules.r has unknown keys"),
        ("      r: [' -- ']\n", "has no letters or digits"),
        ("      r: {terms: [x], implies: {countries: [mars]}}\n", "no label 'mars'"),
    ],
)
def test_bad_rules_are_named(tmp_path: Path, rule: str, message: str) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(_minimal(rule), encoding="utf-8")
    with pytest.raises(LexiconError, match=message):
        load_lexicon(path)


def test_a_minimal_lexicon_loads(tmp_path: Path, engine: EngineChoice) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(_minimal("      r: [border security]\n"), encoding="utf-8")
    labels = Classifier(load_lexicon(path), engine).classify("", "Hun Manet: border security.")
    assert (labels.topics, labels.officials, labels.countries) == (
        ["border_security"],
        ["hun_manet"],
        [],
    )
    # declared version + the first 12 hex digits of the file's SHA-256
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert labels.rules_version == f"1+{digest}"


def test_unreadable_lexicon(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match="cannot read lexicon"):
        load_lexicon(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [", encoding="utf-8")
    with pytest.raises(LexiconError, match="not valid YAML"):
        load_lexicon(bad)


def test_matches_built_without_validation_equal_validated_ones(classifier: Classifier) -> None:
    """The engine builds Match objects without validation (speed); they must be exactly
    what validation would build."""
    from core.models import Match

    text = _split_furniture(_seed_file("003").read_text(encoding="utf-8"))[0]
    labels = classifier.classify("Cambodia–Laos border security talks", text)
    assert labels.matches
    for match in labels.matches:
        validated = Match.model_validate(match.model_dump())
        assert match == validated
        assert hash(match) == hash(validated)
        assert match.model_fields_set == validated.model_fields_set
        assert match.model_dump_json() == validated.model_dump_json()
    validated_labels = Labels.model_validate(labels.model_dump(exclude={"story_id"}))
    assert validated_labels == labels
    assert validated_labels.model_fields_set == labels.model_fields_set
    assert validated_labels.model_dump_json() == labels.model_dump_json()
    assert labels.model_copy(update={"story_id": "s1"}).story_id == "s1"
