"""The seed corpus loads as five stable Items and its files stay untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from core.models import item_id_for
from ingestor.seeds import SUMMARY_LIMIT, clean_seed_text, load_seed_items, seed_date, summarise

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
SHARED_SEEDS = Path("/work/shared/seeds")

FURNITURE_004 = [
    "Follow us",
    "WhatsApp",
    "Next In Aseanplus News",
    "JPJ issues summonses",
    "King Charles",
    "serious concerns",
    "Japan plane crash",
    "Anwar",
    "Asean News Headlines",
    "Tampines",
    "Thai November exports",
    "Christmas clemency",
    "inflation settling",
    "Others Also Read",
]


def _raw(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def _sha256s(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.txt")}


def test_five_items_with_stable_ids() -> None:
    items = load_seed_items(SEEDS)
    again = load_seed_items(SEEDS)
    assert len(items) == 5
    assert [i.id for i in items] == [i.id for i in again]
    assert items == again
    for item in items:
        assert item.feed_id == "seeds"
        assert item.guid is not None
        assert item.guid.startswith("newsmon-seed:")
        assert item.id == item_id_for(guid=item.guid)
        assert item.url is None
        assert item.language == "en"
        assert item.title
        assert item.text
        assert 0 < len(item.summary) <= SUMMARY_LIMIT
        assert item.text.startswith(item.summary.rstrip("…")[:50])
    assert len({i.id for i in items}) == 5


def test_metadata_drives_titles_outlets_and_dates() -> None:
    entries = json.loads((SEEDS / "metadata.json").read_text(encoding="utf-8"))
    by_stem = {Path(e["file"]).stem: e for e in entries}
    for item in load_seed_items(SEEDS):
        assert item.guid is not None
        entry = by_stem[item.guid.removeprefix("newsmon-seed:")]
        assert item.title == entry["title"]
        assert item.outlet == entry["outlet"]
        assert item.published.date().isoformat() == entry["published"][:10]
        if entry["outlet"] is None:
            assert entry.get("note")
        if seed_date(_raw(entry["file"][:3])) is None:
            assert entry.get("date_note")


def test_seed_000_date_stamp_is_metadata_not_text() -> None:
    raw = _raw("000")
    assert seed_date(raw) is not None
    assert seed_date(raw).isoformat() == "2022-09-01"
    cleaned = clean_seed_text(raw)
    assert cleaned.startswith("Military personnel from the two countries")
    assert "2022-09-01" not in cleaned


def test_seed_004_loses_its_furniture_and_headline() -> None:
    raw = _raw("004")
    headline = raw.splitlines()[0]
    cleaned = clean_seed_text(raw)
    for fragment in FURNITURE_004:
        assert fragment in raw
        assert fragment not in cleaned
    assert not cleaned.startswith(headline)
    assert cleaned.startswith("Cambodian Defence Minister Tea Seiha (left)")  # image caption kept
    assert cleaned.endswith("said Phea. - Phnom Penh Post/ANN")


def test_seed_001_is_only_whitespace_trimmed() -> None:
    raw = _raw("001")
    cleaned = clean_seed_text(raw)
    assert cleaned.split() == raw.split()
    assert cleaned == cleaned.strip()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Body one.\n\nRelated: other story\nmore", "Body one."),
        ("Body one.\nNext In World News\nheadline", "Body one."),
        ("Body one.\n\n\n\nBody two.  \n", "Body one.\n\nBody two."),
        ("A Headline Without A Stop\n\nBody one.", "Body one."),
        ("A sentence that ends.\n\nBody one.", "A sentence that ends.\n\nBody one."),
        (" date 2024-01-02 Lead paragraph.\n\nBody.", "Lead paragraph.\n\nBody."),
    ],
)
def test_clean_seed_text_rules(raw: str, expected: str) -> None:
    assert clean_seed_text(raw) == expected


def test_clean_drops_a_first_line_equal_to_the_title() -> None:
    assert clean_seed_text("Big news.\nBody one.", title="Big news.") == "Body one."


def test_summary_is_cut_at_a_word() -> None:
    text = ("word " * 100).strip() + "\n\nSecond paragraph."
    summary = summarise(text)
    assert len(summary) <= SUMMARY_LIMIT
    assert summary.endswith("word…")
    assert summarise("Short.\n\nMore.") == "Short."


def test_seed_files_are_unchanged() -> None:
    if not SHARED_SEEDS.is_dir():
        pytest.skip(f"{SHARED_SEEDS} is not available")
    before = _sha256s(SEEDS)
    load_seed_items(SEEDS)
    assert _sha256s(SEEDS) == before == _sha256s(SHARED_SEEDS)


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    for path in target.iterdir():
        path.chmod(0o644)  # the originals are read-only
    return target


def _edit_metadata(seeds_dir: Path, edit: object) -> None:
    path = seeds_dir / "metadata.json"
    entries = json.loads(path.read_text(encoding="utf-8"))
    assert callable(edit)
    path.write_text(json.dumps(edit(entries)), encoding="utf-8")


def test_file_without_metadata_is_named(seeds_copy: Path) -> None:
    _edit_metadata(seeds_copy, lambda entries: [e for e in entries if e["file"][:3] != "002"])
    with pytest.raises(ValueError, match=r"002_a68666acfb7afb26\.txt has no entry"):
        load_seed_items(seeds_copy)


def test_metadata_without_file_is_named(seeds_copy: Path) -> None:
    (missing,) = seeds_copy.glob("003_*.txt")
    missing.unlink()
    with pytest.raises(ValueError, match=r"lists 003_c99f3d3bdbb295b1\.txt but .* does not exist"):
        load_seed_items(seeds_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda es: [{k: v for k, v in e.items() if k != "title"} for e in es], "missing keys"),
        (lambda es: [*es, es[0]], "listed twice"),
        (lambda es: [{**e, "published": "yesterday"} for e in es], "not an ISO 8601 date"),
        (lambda es: [{**e, "published": "2020-01-01"} for e in es], "text is dated 2022-09-01"),
        (lambda es: {"not": "a list"}, "must hold a JSON list"),
        (lambda es: [{**e, "colour": "red"} for e in es], "unknown keys"),
    ],
)
def test_tampered_metadata_raises_a_clear_error(
    seeds_copy: Path, edit: object, message: str
) -> None:
    _edit_metadata(seeds_copy, edit)
    with pytest.raises(ValueError, match=message):
        load_seed_items(seeds_copy)
