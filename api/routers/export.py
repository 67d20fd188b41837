"""``GET /v1/feeds/export.atom``: the items of ``/v1/items`` (same filters) as Atom."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api import atom
from api.deps import ClockDep, ReadKey, StoreDep
from api.filters import FILTER_OPENAPI, Filters, item_filters
from api.routers.items import Cursor, max_scan
from api.schemas import Problem

router = APIRouter(tags=["feeds"])
MEDIA_TYPE = "application/atom+xml"


@router.get(
    "/v1/feeds/export.atom",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "An Atom 1.0 feed, newest first."},
        400: {"model": Problem, "description": "A cursor this API did not issue."},
        401: {"model": Problem, "description": "An API key is needed."},
        403: {"model": Problem, "description": "The key lacks the scope."},
        422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
    },
    openapi_extra=FILTER_OPENAPI,
)
async def export_atom(
    request: Request,
    store: StoreDep,
    clock: ClockDep,
    _key: ReadKey,
    filters: Annotated[Filters, Depends(item_filters)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = await store.query(filters.query(limit=limit, cursor=cursor, max_scan=max_scan(request)))
    base = request.url.remove_query_params("cursor")
    next_url = str(base.include_query_params(cursor=page.next_cursor)) if page.next_cursor else None
    # One feed id per filter set (not per page), so a reader sees one subscription.
    digest = hashlib.sha256(str(base.query).encode()).hexdigest()[:16]
    body = atom.render(
        page.items,
        feed_id=f"urn:newsmon:export:{digest}",
        title="newsmon: tagged items",
        self_url=str(request.url),
        next_url=next_url,
        now=clock(),
    )
    return Response(body, media_type=MEDIA_TYPE)
