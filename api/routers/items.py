"""``/v1/items``: tagged items, newest first, filtered and paginated by cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import StoreDep
from api.schemas import ItemDetail, ItemOut, ItemPage, Problem
from core.store import ItemQuery

router = APIRouter(prefix="/v1/items", tags=["items"])

_ID = r"^[a-z0-9_]{1,64}$"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No item has this id."}
}


@router.get(
    "", response_model=ItemPage, responses={400: {"model": Problem}, 422: {"model": Problem}}
)
async def list_items(
    store: StoreDep,
    topic: Annotated[str | None, Query(pattern=_ID, examples=["border_security"])] = None,
    official: Annotated[str | None, Query(pattern=_ID, examples=["hun_manet"])] = None,
    country: Annotated[str | None, Query(pattern=_ID, examples=["laos"])] = None,
    feed: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] = None,
    relevant: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ItemPage:
    page = await store.query(
        ItemQuery(
            topic=topic,
            official=official,
            country=country,
            feed=feed,
            relevant=relevant,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    )
    return ItemPage(items=[ItemOut.of(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/{item_id}", response_model=ItemDetail, responses=_NOT_FOUND)
async def get_item(
    store: StoreDep, item_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
) -> ItemDetail:
    stored = await store.get(item_id)
    if stored is None:
        raise HTTPException(404, f"no item with id {item_id}")
    return ItemDetail.detail(stored)
