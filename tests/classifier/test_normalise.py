"""Normalisation keeps matching forms canonical and every character traceable."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifier.normalise import normalise, normalise_term


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Laos-Cambodia", "laos cambodia"),
        ("Laos–Cambodia border", "laos cambodia border"),
        ("Laos — Cambodia", "laos cambodia"),
        ("Hun\nManet", "hun manet"),
        ("Hun \r\n\t  Manet", "hun manet"),
        ("Hun\u00a0Manet", "hun manet"),
        ("Édouard Manet’s", "edouard manet's"),
        ("Lao People’s Army", "lao people's army"),
        ("“quoted”", '"quoted"'),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("İstanbul", "istanbul"),
        ("co\u00adoperation", "cooperation"),
        ("Laos\u200bCambodia", "laos cambodia"),
        ("ﬁeld", "field"),
        ("Covid-19", "covid 19"),
    ],
)
def test_normalised_text(original: str, expected: str) -> None:
    assert normalise(original).text == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("  Cross-border crime ", "cross border crime"),
        ("Asean Defence Ministers' Meeting", "asean defence ministers' meeting"),
        ("ADMM+", "admm+"),
    ],
)
def test_normalise_term(term: str, expected: str) -> None:
    assert normalise_term(term) == expected


def test_fold_case_off_keeps_capitals() -> None:
    assert normalise_term("IT–security", fold_case=False) == "IT security"


def test_offsets_point_back_at_the_original() -> None:
    original = "The Lao\n People’s  Army"
    norm = normalise(original)
    at = norm.text.index("people's army")
    start, end = norm.original_span(at, at + len("people's army"))
    assert original[start:end] == "People’s  Army"


def test_a_whitespace_run_maps_to_the_whole_run() -> None:
    norm = normalise("a \n\t b")
    assert norm.text == "a b"
    assert norm.original_span(1, 2) == (1, 5)


@given(st.text())
def test_offset_map_is_consistent(original: str) -> None:
    norm = normalise(original)
    assert len(norm.starts) == len(norm.ends) == len(norm.text)
    spans = list(zip(norm.starts, norm.ends, strict=True))
    for start, end in spans:
        assert 0 <= start < end <= len(original)
    for (start, end), (next_start, next_end) in itertools.pairwise(spans):
        # Either both characters come from the same original character, or they follow it.
        assert (next_start, next_end) == (start, end) or next_start >= end
    assert "  " not in norm.text


@given(st.text())
def test_normalising_twice_changes_nothing(original: str) -> None:
    once = normalise(original).text
    assert normalise(once).text == once


@given(st.text(), st.data())
def test_spans_map_back_alike_one_by_one_or_all_at_once(original: str, data: st.DataObject) -> None:
    norm = normalise(original)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(norm.text)))) | {0, len(norm.text)})
    spans = [(start, end) for start, end in itertools.pairwise(cuts) if start < end]
    expected = [norm.original_span(start, end) for start, end in spans]
    assert norm.original_spans(spans) == expected
    assert expected == [(norm.starts[start], norm.ends[end - 1]) for start, end in spans]
