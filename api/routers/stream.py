"""``GET /v1/stream``: Server-Sent Events of newly classified items and of alerts, with the
filters of ``/v1/items``.

Two kinds of event, read with one XREAD from two streams:

- ``event: item``, ``data: <ItemOut JSON>`` for each ``item.classified`` on
  ``nm:stream:classified`` (the labels are those of that classification);
- ``event: alert``, ``data: <AlertEventOut JSON>`` for each ``alert.created``,
  ``alert.delivered`` and ``alert.failed`` on ``nm:stream:alert-events``: the event's type,
  time, channel kind, status and attempts, and the alert as stored when it is sent. An alert
  passes the filters when its item (with the item's labels and story, as in the store) does;
  with any filter set, alerts without an item in the store (digests, test alerts) are left
  out. ``?alerts=false`` leaves every alert out.

The ``id:`` of every event is ``<classified entry id>,<alert entry id>``: the position
reached in each stream, so a client reconnecting with ``Last-Event-ID`` (or
``?last_event_id=``) resumes both right after what it last received: every item and alert
published meanwhile and matching the filters is sent, as long as the streams still hold it
(``NEWSMON_STREAM_MAXLEN``); with ``alerts=false`` the alert part stays where the connection
started. For compatibility an id of the old form (one entry id) is the
position in ``nm:stream:classified``; alerts then start from the connection. Anything else is
refused with 422 naming ``Last-Event-ID``. Without one, the positions are fixed when the
connection opens (the ``: connected`` comment follows), so nothing published after that is
missed. Entries of the two streams are sent in the order Redis added them (entry ids start
with the server's clock). A comment (``: ping``) every ``sse_keepalive_s`` seconds keeps
proxies from closing an idle stream.

Reads use XREAD (no consumer group: each client has its own position) and never write.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import AlertsDep, ReadKey, RedisDep, StoreDep
from api.filters import FILTER_OPENAPI, Filters, item_filters
from api.problems import ApiProblem, invalid
from api.schemas import AlertEventOut, AlertOut, ItemOut, Problem
from core import keys
from core.alerts import AlertStore
from core.errors import EventError
from core.events import AlertEvent, ItemClassified, decode
from core.store import ItemStore, story_of

router = APIRouter(tags=["stream"])

_ENTRY = r"(\d{1,20})-(\d{1,20})"
_EVENT_ID = re.compile(rf"^{_ENTRY}(?:,{_ENTRY})?$")
_MAX_PART = 2**64 - 1  # a stream entry id is two unsigned 64-bit numbers
NO_FILTERS = Filters()
BATCH = 100
RETRY_AFTER_S = 5  # a refused live stream: try again after this
STREAMS = (keys.STREAM_CLASSIFIED, keys.STREAM_ALERT_EVENTS)

Entry = tuple[str, str, dict[str, str]]  # stream, entry id, fields


def parse_event_id(value: str) -> tuple[str, str | None]:
    """The (classified, alerts) positions of a ``Last-Event-ID``; alerts is None for the old
    one-part form. ``ValueError`` when this API cannot have sent it."""
    match = _EVENT_ID.match(value)
    if match is None or any(int(p) > _MAX_PART for p in match.groups() if p is not None):
        raise ValueError(value)
    first, _, second = value.partition(",")
    return first, second or None


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def in_order(reply: list[Any], batch: int) -> list[Entry]:
    """The entries of one multi-stream XREAD, oldest first across the streams. A stream that
    filled its batch may hold more entries after its last one: the other streams' entries
    newer than that are left for the next read (which starts from the positions reached)."""
    rows: list[tuple[tuple[int, int], Entry]] = []
    horizon: tuple[int, int] | None = None
    for stream, entries in reply:
        rows += [(_order(msg_id), (stream, msg_id, fields)) for msg_id, fields in entries]
        if len(entries) >= batch:
            last = _order(entries[-1][0])
            horizon = last if horizon is None else min(horizon, last)
    rows.sort(key=lambda row: row[0])  # stable: on a tie, the reply's (STREAMS') order
    return [entry for key, entry in rows if horizon is None or key <= horizon]


async def _newest(redis: Any, stream: str) -> str:
    newest = await redis.xrevrange(stream, count=1)
    return str(newest[0][0]) if newest else "0-0"


async def _start(redis: Any, resume: tuple[str, str | None] | None) -> dict[str, str]:
    classified, alerts = resume if resume is not None else (None, None)
    return {
        keys.STREAM_CLASSIFIED: classified or await _newest(redis, keys.STREAM_CLASSIFIED),
        keys.STREAM_ALERT_EVENTS: alerts or await _newest(redis, keys.STREAM_ALERT_EVENTS),
    }


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True)
class _Reader:
    """One client's view: its filters and whether it wants alerts."""

    store: ItemStore
    alerts: AlertStore
    filters: Filters
    with_alerts: bool

    async def render(self, fields: dict[str, str]) -> tuple[str, str] | None:
        """The (event name, data) to send for a stream entry; None when not for this client."""
        try:
            event = decode(fields)
        except EventError:
            return None  # not ours to judge: the consumers dead-letter it
        if isinstance(event, ItemClassified):
            item = await self._item(event)
            return None if item is None else ("item", item)
        if isinstance(event, AlertEvent) and self.with_alerts:
            alert = await self._alert(event)
            return None if alert is None else ("alert", alert)
        return None

    async def _item(self, event: ItemClassified) -> str | None:
        stored = await self.store.get(event.item_id)
        if stored is None:
            return None
        story = story_of(event.labels) or await self.store.story_of_item(event.item_id)
        if not self.filters.matches(stored.item, event.labels, story):
            return None
        shown = stored.model_copy(update={"labels": event.labels})
        return _dumps(ItemOut.of(shown).model_dump(mode="json"))

    async def _alert(self, event: AlertEvent) -> str | None:
        if not await self._alert_passes(event):
            return None
        alert = await self.alerts.get(event.alert_id)
        if alert is None:
            return None
        out = AlertEventOut(
            type=event.TYPE,
            at=event.occurred_at,
            channel=event.channel,
            status=event.status,
            attempts=event.attempts,
            alert=AlertOut.of(alert),
        )
        return _dumps(out.model_dump(mode="json"))

    async def _alert_passes(self, event: AlertEvent) -> bool:
        """An alert passes the filters when its item, as stored now, does."""
        if self.filters == NO_FILTERS:
            return True
        if event.item_id is None:
            return False
        stored = await self.store.get(event.item_id)
        if stored is None or stored.labels is None:
            return False
        story = story_of(stored.labels) or await self.store.story_of_item(event.item_id)
        return self.filters.matches(stored.item, stored.labels, story)


async def _events(
    request: Request,
    redis: Any,
    reader: _Reader,
    positions: dict[str, str],
    keepalive_s: float,
) -> AsyncIterator[str]:
    metrics = request.app.state.metrics
    metrics.sse_open += 1
    streams = STREAMS if reader.with_alerts else STREAMS[:1]
    try:
        yield f": connected at {_event_id(positions)}\nretry: 2000\n\n"
        while not await request.is_disconnected():
            reply = await redis.xread(
                {s: positions[s] for s in streams}, count=BATCH, block=int(keepalive_s * 1000)
            )
            if not reply:
                yield ": ping\n\n"
                continue
            for stream, msg_id, fields in in_order(reply, BATCH):
                positions[stream] = msg_id
                shown = await reader.render(fields)
                if shown is not None:
                    name, data = shown
                    yield f"id: {_event_id(positions)}\nevent: {name}\ndata: {data}\n\n"
    finally:
        metrics.sse_open -= 1


def _event_id(positions: dict[str, str]) -> str:
    return ",".join(positions[s] for s in STREAMS)


_EXAMPLE = (
    ": connected at 1717200000000-0,1717200000000-0\nretry: 2000\n\n"
    'id: 1717200000100-0,1717200000000-0\nevent: item\ndata: {"id":"9f2c…","labels":{…},…}\n\n'
    "id: 1717200000100-0,1717200000105-0\nevent: alert\n"
    'data: {"type":"alert.created","at":"2024-06-01T00:00:00.105Z","channel":"webhook",'
    '"status":"pending","attempts":0,"alert":{"id":"al_…",…}}\n\n'
    ": ping\n\n"
)
_ID_DOC = (
    "Resume after this event id (as `Last-Event-ID`): `<classified entry id>,<alert entry "
    "id>`, e.g. `1717200000000-0,1717200000123-0`. A single entry id (the form sent before "
    "alerts were on the stream) resumes the items; alerts then start from now."
)


@router.get(
    "/v1/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _EXAMPLE}},
            "description": "A never-ending stream of `item` events (`data`: an `ItemOut`) and "
            "`alert` events (`data`: an `AlertEventOut`), each with `id: <classified entry "
            "id>,<alert entry id>` to resume from with `Last-Event-ID`.",
        },
        401: {"model": Problem, "description": "An API key is needed."},
        403: {"model": Problem, "description": "The key lacks the scope."},
        422: {
            "model": Problem,
            "description": "A parameter is invalid (named in `errors`), e.g. a "
            "`Last-Event-ID` this API did not send.",
        },
        503: {
            "model": Problem,
            "description": "This API process already serves `NEWSMON_API_MAX_STREAMS` live "
            "streams (each holds a Redis connection); try again after `Retry-After`.",
        },
    },
    openapi_extra=FILTER_OPENAPI,
)
async def stream(
    request: Request,
    redis: RedisDep,
    store: StoreDep,
    alert_store: AlertsDep,
    _key: ReadKey,
    filters: Annotated[Filters, Depends(item_filters)],
    alerts: Annotated[
        bool,
        Query(
            description="Send `alert` events (alerts created, delivered or failed whose item "
            "passes the filters; with no filter, every alert). `false`: items only."
        ),
    ] = True,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=100, description=_ID_DOC)
    ] = None,
    last_event_id: Annotated[str | None, Query(max_length=100, description=_ID_DOC)] = None,
) -> StreamingResponse:
    """Items as they are classified and alerts as they are created and delivered, live
    (Server-Sent Events). Reconnecting with `Last-Event-ID` resumes without gaps."""
    raw = last_event_id_header or last_event_id
    try:
        resume = None if raw is None else parse_event_id(raw)
    except ValueError:
        raise invalid("Last-Event-ID", "not an event id this API sent") from None
    settings = request.app.state.settings
    keepalive = float(getattr(settings, "sse_keepalive_s", 15.0))
    limit = int(getattr(settings, "api_max_streams", 100))
    if request.app.state.metrics.sse_open >= limit:  # each holds a Redis connection
        raise ApiProblem(
            503,
            "Too many live streams",
            f"this API process serves at most {limit} live streams at once",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    positions = await _start(redis, resume)
    reader = _Reader(store, alert_store, filters, alerts)
    return StreamingResponse(
        _events(request, redis, reader, positions, keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
