"""Stories: seeds 000 and 001 (one visit, two outlets) share a story; the others do not."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

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


async def test_candidates_are_the_stories_sharing_most_bands_ties_by_id(r: Any) -> None:
    """The Redis script picks what counting every bucket in Python picks: the
    ``MAX_CANDIDATES`` stories sharing the most of the item's bands, ties to the smaller id,
    with their signatures; a story whose record expired is left out."""
    import random
    from datetime import UTC, datetime

    from classifier.story_index import MAX_CANDIDATES

    rng = random.Random(5)
    bands = [f"{b}:{rng.getrandbits(64):016x}" for b in range(40)]
    when = datetime(2025, 1, 1, tzinfo=UTC)
    membership: dict[str, list[str]] = {}
    for n in range(150):
        story = f"s{rng.randrange(10**6):06d}-{n}"  # unique, in random order
        shared = rng.sample(bands, rng.choice([1, 1, 2, 3, 3, 5, 8]))  # many ties
        membership[story] = shared
        for band in shared:
            await r.sadd(band_key(band), story)
        if n % 17:  # every 17th story's record has expired
            sig = stories.encode_signature((n, n + 1))
            await r.hset(story_key(story), mapping={"sig": sig, "published": when.isoformat()})
    counts = {story: len(shared) for story, shared in membership.items()}
    expected_ids = sorted(counts, key=lambda s: (-counts[s], s))[:MAX_CANDIDATES]
    expected = [s for s in expected_ids if await r.exists(story_key(s))]

    found = await StoryIndex(r)._candidates("new-item", bands)
    assert [c.story_id for c in found] == expected
    assert all(c.published == when and len(c.signature) == 2 for c in found)
    assert len(expected) < MAX_CANDIDATES  # the expired records were in the top ones
    assert await StoryIndex(r)._candidates("new-item", []) == []


@given(st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), max_size=300))
def test_the_signature_equals_the_pure_python_minhash(hashes: list[int]) -> None:
    """numpy's wrapping uint64 arithmetic gives exactly ``min((a·x + b) & (2⁶⁴ - 1))``."""
    mask = (1 << 64) - 1
    expected = (
        tuple(min((a * x + b) & mask for x in hashes) for a, b in stories._PERMS) if hashes else ()
    )
    assert stories.signature(hashes) == expected


def test_a_signature_over_more_shingles_than_one_block_is_exact() -> None:
    import random

    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(stories._CHUNK * 2 + 17)]
    mask = (1 << 64) - 1
    expected = tuple(min((a * x + b) & mask for x in hashes) for a, b in stories._PERMS)
    assert stories.signature(hashes) == expected
    assert stories.signature(iter(hashes)) == expected  # any iterable


@given(st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), max_size=200))
def test_a_stored_signature_reads_back_the_same(sig: list[int]) -> None:
    raw = stories.encode_signature(tuple(sig))
    assert "," not in raw and len(raw) == 16 * len(sig)
    assert stories.decode_signature(raw) == tuple(sig)


def test_signatures_stored_in_the_earlier_comma_separated_form_still_read() -> None:
    sig = stories.fingerprint("Cambodia and Laos hold border talks", "Officials met in Vientiane.")
    earlier = ",".join(f"{x:x}" for x in sig)  # how records were written before
    assert stories.decode_signature(earlier) == sig
    assert stories.decode_signature("1f") == (0x1F,)  # one short value, no comma
    assert stories.decode_signature("") == stories.decode_signature(None) == ()
