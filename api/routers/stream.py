"""``GET /v1/stream``: Server-Sent Events of newly classified items, with the filters of
``/v1/items``.

Each event is ``event: item``, ``id: <entry id in nm:stream:classified>``, ``data: <ItemOut
JSON>`` (the labels are those of that classification). The stream position is fixed when the
connection opens (the ``: connected`` comment follows), so nothing published after that is
missed. A client reconnecting with ``Last-Event-ID`` (or ``?last_event_id=``) resumes right
after that entry: every item classified meanwhile and matching the filters is sent, in
order, as long as the stream still holds it (``NEWSMON_STREAM_MAXLEN``). A comment
(``: ping``) every ``sse_keepalive_s`` seconds keeps proxies from closing an idle stream.

Reads use XREAD (no consumer group: each client has its own position) and never write.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import ReadKey, RedisDep, StoreDep
from api.filters import Filters, item_filters
from api.problems import invalid
from api.schemas import ItemOut, Problem
from core import keys
from core.errors import EventError
from core.events import ItemClassified, decode
from core.store import ItemStore, story_of

router = APIRouter(tags=["stream"])

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
BATCH = 100


async def _start(redis: Any, last_event_id: str | None) -> str:
    if last_event_id is not None:
        return last_event_id
    newest = await redis.xrevrange(keys.STREAM_CLASSIFIED, count=1)
    return str(newest[0][0]) if newest else "0-0"


def _frame(msg_id: str, body: str) -> str:
    return f"id: {msg_id}\nevent: item\ndata: {body}\n\n"


async def _events(
    request: Request, redis: Any, store: ItemStore, filters: Filters, last: str, keepalive_s: float
) -> AsyncIterator[str]:
    metrics = request.app.state.metrics
    metrics.sse_clients.inc()
    try:
        yield f": connected at {last}\nretry: 2000\n\n"
        while not await request.is_disconnected():
            reply = await redis.xread(
                {keys.STREAM_CLASSIFIED: last}, count=BATCH, block=int(keepalive_s * 1000)
            )
            if not reply:
                yield ": ping\n\n"
                continue
            for msg_id, fields in reply[0][1]:
                last = msg_id
                frame = await _render(store, filters, msg_id, fields)
                if frame is not None:
                    yield frame
    finally:
        metrics.sse_clients.dec()


async def _render(
    store: ItemStore, filters: Filters, msg_id: str, fields: dict[str, str]
) -> str | None:
    try:
        event = decode(fields)
    except EventError:
        return None  # not ours to judge: the consumers dead-letter it
    if not isinstance(event, ItemClassified):
        return None
    stored = await store.get(event.item_id)
    if stored is None:
        return None
    story = story_of(event.labels) or await store.story_of_item(event.item_id)
    if not filters.matches(stored.item, event.labels, story):
        return None
    shown = stored.model_copy(update={"labels": event.labels})
    out = ItemOut.of(shown)
    return _frame(msg_id, json.dumps(out.model_dump(mode="json"), separators=(",", ":")))


@router.get(
    "/v1/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A never-ending stream of `item` events.",
        },
        401: {"model": Problem, "description": "An API key is needed."},
        403: {"model": Problem, "description": "The key lacks the scope."},
        422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
    },
)
async def stream(
    request: Request,
    redis: RedisDep,
    store: StoreDep,
    _key: ReadKey,
    filters: Annotated[Filters, Depends(item_filters)],
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=50)
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=50, description="Resume after this event id (as Last-Event-ID)."),
    ] = None,
) -> StreamingResponse:
    resume = last_event_id_header or last_event_id
    if resume is not None and not _ENTRY_ID.match(resume):
        raise invalid("Last-Event-ID", "not an event id this API sent")
    keepalive = float(getattr(request.app.state.settings, "sse_keepalive_s", 15.0))
    last = await _start(redis, resume)
    return StreamingResponse(
        _events(request, redis, store, filters, last, keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
