"""``/v1/stories``: items grouped into stories, with their sources.

An item belongs to a story when its stored record has a story id (``ItemStore.set_story``,
or ``Labels.story_id`` once the classifier gives one). Stories are listed newest first by
their newest item; the cursor is ``{ms}:{story id}`` of the last story of a page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import ReadKey, StoreDep
from api.filters import STORY
from api.problems import ApiProblem
from api.schemas import ItemOut, Problem, StoryDetail, StoryOut, StoryPage, StorySource
from core.models import StoredItem

router = APIRouter(prefix="/v1/stories", tags=["stories"])

_CURSOR = re.compile(r"^(\d{1,15}):([A-Za-z0-9_.:-]{1,128})$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A cursor this API did not issue."},
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}


def _story(story_id: str, items: list[StoredItem], count: int, latest_ms: int) -> StoryOut:
    return StoryOut(
        id=story_id,
        title=items[0].item.title if items else "",
        items=count,
        latest=datetime.fromtimestamp(latest_ms / 1000, UTC),
        sources=[
            StorySource(
                feed_id=s.item.feed_id, outlet=s.item.outlet, item_id=s.item.id, url=s.item.url
            )
            for s in items
        ],
    )


@router.get("", response_model=StoryPage, responses=_ERRORS)
async def list_stories(
    store: StoreDep,
    _key: ReadKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> StoryPage:
    before = None
    if cursor is not None:
        match = _CURSOR.match(cursor)
        if match is None:
            raise ApiProblem(
                400, "Invalid cursor", "cursor was not issued by this API", field="cursor"
            )
        before = (int(match.group(1)), match.group(2))
    rows = await store.stories(limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for story_id, ms, count in rows:
        out.append(_story(story_id, await store.story(story_id, limit=20), count, ms))
    last = rows[-1] if rows else None
    return StoryPage(stories=out, next_cursor=f"{last[1]}:{last[0]}" if more and last else None)


@router.get(
    "/{story_id}",
    response_model=StoryDetail,
    responses={**_ERRORS, 404: {"model": Problem, "description": "No story has this id."}},
)
async def get_story(
    store: StoreDep, _key: ReadKey, story_id: Annotated[str, Path(pattern=STORY)]
) -> StoryDetail:
    items = await store.story(story_id, limit=200)
    if not items:
        raise ApiProblem(404, "Not found", f"no story with id {story_id}")
    latest = max(int(s.item.published.timestamp() * 1000) for s in items)
    base = _story(story_id, items, len(items), latest)
    return StoryDetail(**base.model_dump(), item_list=[ItemOut.of(s) for s in items])
