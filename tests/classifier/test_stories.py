"""Stories: seeds 000 and 001 (one visit, two outlets) share a story; the others do not."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

from classifier import stories
from classifier.story_index import StoryIndex, band_key, item_key, story_key
from ingestor.seeds import load_seed_items

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def _seeds() -> dict[str, Any]:
    return {i.guid.rsplit(":", 1)[1][:3]: i for i in load_seed_items(SEEDS)}


def test_signatures_are_stable_and_similarity_separates_the_seeds() -> None:
    seeds = _seeds()
    sig = {k: stories.fingerprint(i.title, i.text) for k, i in seeds.items()}
    assert sig["000"] == stories.fingerprint(seeds["000"].title, seeds["000"].text)
    assert stories.similarity(sig["000"], sig["001"]) >= stories.THRESHOLD
    for a, b in itertools.combinations(sorted(sig), 2):
        if {a, b} != {"000", "001"}:
            assert stories.similarity(sig[a], sig[b]) < stories.THRESHOLD, (a, b)


def test_choose_story_respects_the_window() -> None:
    seeds = _seeds()
    a, b = seeds["000"], seeds["001"]
    sig_a = stories.fingerprint(a.title, a.text)
    sig_b = stories.fingerprint(b.title, b.text)
    cand = [stories.Candidate(a.id, "s1", sig_a, a.published)]
    assert stories.choose_story(sig_b, b.published, cand) == "s1"
    late = b.published + timedelta(days=30)
    assert stories.choose_story(sig_b, late, cand) is None
    assert stories.choose_story((), b.published, cand) is None


async def test_story_index_groups_seeds(r: Any) -> None:
    index = StoryIndex(r)
    seeds = _seeds()
    got = {
        k: await index.assign(i.id, i.title, i.text, i.published) for k, i in sorted(seeds.items())
    }
    assert got["000"] == got["001"] == seeds["000"].id
    assert len({got[k] for k in ("000", "002", "003", "004")}) == 4
    assert await index.items_of(got["000"]) == sorted([seeds["000"].id, seeds["001"].id])
    assert await index.story_of(seeds["001"].id) == got["000"]
    # idempotent: a second assignment (redelivery, update) keeps the story
    again = await index.assign(
        seeds["001"].id, "other", "entirely different words", seeds["001"].published
    )
    assert again == got["000"]
    # band buckets and story signatures expire; the item → story record does not
    some_band = stories.band_keys(stories.fingerprint(seeds["000"].title, seeds["000"].text))[0]
    assert await r.ttl(band_key(some_band)) > 0
    assert await r.ttl(story_key(got["000"])) > 0
    assert await r.ttl(item_key(seeds["000"].id)) == -1
