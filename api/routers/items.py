"""``/v1/items``: tagged items, newest first, filtered and paginated by cursor.

The cursor is the last item's index member (time and id), so pages stay correct while new
items arrive: newer items land before the first page, never inside a walk. A query examines
at most ``api_max_scan`` index members (default 50,000); past that a page may hold fewer than
``limit`` items while ``next_cursor`` is still set.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from api import listing
from api.deps import KeyGuard, ReadKey, StoreDep, bearer_token, check_key
from api.filters import PAGE_OPENAPI, page_params
from api.problems import ApiProblem
from api.schemas import ItemDetail, ItemPage, Problem
from core.store import ItemStore

router = APIRouter(prefix="/v1/items", tags=["items"])

ITEM_ID = r"^[0-9a-f]{16}$"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A cursor this API did not issue."},
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The `next_cursor` of the previous page."),
]


def max_scan(request: Request) -> int:
    return int(getattr(request.app.state.settings, "api_max_scan", 50_000))


@router.get("", response_model=ItemPage, responses=_ERRORS, openapi_extra=PAGE_OPENAPI)
async def list_items(request: Request) -> Response:
    """Items newest first, filtered; pages by ``next_cursor``. Each item's evidence
    (``labels.matches``) only with ``evidence=true``.

    The hot path of the API, so it reads its parameters and checks its key itself (FastAPI's
    per-parameter and dependency handling cost more than the rest of the request), and the
    key lookup rides in the page's round trip to Redis (``KeyGuard``; the page is not used
    unless the key passes). The parameters are documented by ``PAGE_OPENAPI``.
    """
    token = await bearer_token(request)
    try:
        filters, limit, cursor, evidence = page_params(request)
    except (RequestValidationError, ApiProblem):
        await check_key(request, "read", token)  # a refusal comes first, as on every route
        raise
    guard = KeyGuard(request, "read", token)
    store: ItemStore = request.app.state.store
    query = filters.query(limit=limit, cursor=cursor, max_scan=max_scan(request))
    page = await store.query_cards(query, guard=guard, evidence=evidence)
    missing = listing.needs_whole(page, evidence=evidence)
    fallback = {s.item.id: s for s in await store.get_many(missing)} if missing else {}
    # Assembled from stored JSON (see api/listing.py); the body is an ItemPage.
    body = listing.render(page, fallback, evidence=evidence)
    return Response(body, media_type="application/json")


@router.get(
    "/{item_id}",
    response_model=ItemDetail,
    responses={**_ERRORS, 404: {"model": Problem, "description": "No item has this id."}},
)
async def get_item(
    store: StoreDep, _key: ReadKey, item_id: Annotated[str, Path(pattern=ITEM_ID)]
) -> ItemDetail:
    stored = await store.get(item_id)
    if stored is None:
        raise ApiProblem(404, "Not found", f"no item with id {item_id}")
    story_id = await store.story_of_item(item_id)
    story = await store.story(story_id, limit=50) if story_id else []
    return ItemDetail.detail(stored, story_id, story)
