"""``/v1/feeds``: the feeds polled, with their health; add, change, remove, poll now.

Reads need the ``read`` scope, changes ``admin``. Polling is never done in the request:
``POST /v1/feeds/{id}/poll`` makes the feed due (see ``api.feedstore``) and answers 202.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.deps import AdminKey, ClockDep, ReadKey, RedisDep
from api.feedstore import FeedStore
from api.problems import ApiProblem
from api.schemas import FEED_ID, FeedIn, FeedList, FeedOut, FeedPatch, PollQueued, Problem

router = APIRouter(prefix="/v1/feeds", tags=["feeds"])

FeedId = Annotated[str, Path(pattern=FEED_ID, max_length=64, examples=["khmer-times"])]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}
_404: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    404: {"model": Problem, "description": "No feed has this id."},
}


def _missing(feed_id: str) -> ApiProblem:
    return ApiProblem(404, "Not found", f"no feed with id {feed_id}")


@router.get("", response_model=FeedList, responses=_AUTH)
async def list_feeds(redis: RedisDep, _key: ReadKey) -> FeedList:
    return FeedList(feeds=await FeedStore(redis).all())


@router.post(
    "",
    response_model=FeedOut,
    status_code=201,
    responses={**_AUTH, 409: {"model": Problem, "description": "The id is taken."}},
)
async def add_feed(
    feed: FeedIn, redis: RedisDep, clock: ClockDep, _key: AdminKey, response: Response
) -> FeedOut:
    added = await FeedStore(redis).add(feed, now=clock())
    if added is None:
        raise ApiProblem(409, "Conflict", "a feed with this id exists", field="id")
    response.headers["Location"] = f"/v1/feeds/{added.id}"
    return added


@router.get("/{feed_id}", response_model=FeedOut, responses=_404)
async def get_feed(feed_id: FeedId, redis: RedisDep, _key: ReadKey) -> FeedOut:
    feed = await FeedStore(redis).get(feed_id)
    if feed is None:
        raise _missing(feed_id)
    return feed


@router.patch("/{feed_id}", response_model=FeedOut, responses=_404)
async def patch_feed(
    feed_id: FeedId, patch: FeedPatch, redis: RedisDep, clock: ClockDep, _key: AdminKey
) -> FeedOut:
    feed = await FeedStore(redis).update(feed_id, patch, now=clock())
    if feed is None:
        raise _missing(feed_id)
    return feed


@router.delete("/{feed_id}", status_code=204, response_class=Response, responses=_404)
async def delete_feed(feed_id: FeedId, redis: RedisDep, _key: AdminKey) -> Response:
    if not await FeedStore(redis).remove(feed_id):
        raise _missing(feed_id)
    return Response(status_code=204)


@router.post(
    "/{feed_id}/poll",
    response_model=PollQueued,
    status_code=202,
    responses={**_404, 409: {"model": Problem, "description": "The feed is gone (410)."}},
)
async def poll_feed(
    feed_id: FeedId, redis: RedisDep, clock: ClockDep, _key: AdminKey
) -> PollQueued:
    feeds = FeedStore(redis)
    if await feeds.get(feed_id) is None:
        raise _missing(feed_id)
    now = clock()
    if not await feeds.poll_now(feed_id, now=now):
        raise ApiProblem(409, "Conflict", "the feed is gone (410) and is not polled any more")
    return PollQueued(feed_id=feed_id, due_at=now)
