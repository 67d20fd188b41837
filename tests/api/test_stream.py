"""``/v1/stream`` over a real uvicorn server on 127.0.0.1: an item classified or an alert made
after the client connected arrives; a reconnect with Last-Event-ID resumes both streams with
no gap and no repeat; the filters and ``alerts=false`` leave alerts out. Alerts are made by
the notifier's own routing and delivery (``NotifierWorker``, ``Deliverer``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.routers.stream import in_order, parse_event_id
from core import keys
from core.bus import Delivery
from core.events import decode
from core.subscriptions import SubscriptionStore, WebhookChannel, new_subscription
from notifier.channels.webhook import WebhookSender
from notifier.worker import Deliverer, NotifierWorker
from tests.api.conftest import NOW, World, make_item, make_labels
from tests.conftest import eventually
from tests.notifier.receiver import Receiver

Frames = AsyncIterator[dict[str, str] | str]


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))

    async def started() -> bool:
        return srv.started

    await eventually(started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await task


@pytest.fixture
async def server(app) -> AsyncIterator[str]:
    async with _serving(app) as url:
        yield url


async def _frames(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str] | str]:
    """SSE frames as dicts; comments as strings."""
    frame: dict[str, str] = {}
    async for line in lines:
        if line.startswith(":"):
            yield line
        elif line == "":
            if frame:
                yield frame
            frame = {}
        else:
            name, _, value = line.partition(": ")
            frame[name] = value


async def _next_item(frames: AsyncIterator[dict[str, str] | str]) -> dict[str, str]:
    async for frame in frames:
        if isinstance(frame, dict) and "event" in frame:  # not the bare `retry:` frame
            return frame
    raise AssertionError("stream ended")


async def test_live_items_and_resume_without_gaps(server, world):
    await world.add(make_item(1), make_labels("border_security"))  # before: not sent
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream?topic=border_security") as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        frames = _frames(resp.aiter_lines())
        first = await anext(frames)
        assert isinstance(first, str) and first.startswith(": connected")
        await world.add(make_item(2), make_labels("terrorism"))  # filtered out
        await world.add(make_item(3), make_labels("border_security"))
        got = await _next_item(frames)
        assert got["event"] == "item"
        assert json.loads(got["data"])["id"] == make_item(3).id
        last_id = got["id"]
    # disconnected: these arrive meanwhile
    for n in (4, 5, 6):
        await world.add(make_item(n), make_labels("border_security"))
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream(
            "GET", "/v1/stream?topic=border_security", headers={"Last-Event-ID": last_id}
        ) as resp,
    ):
        frames = _frames(resp.aiter_lines())
        ids = [json.loads((await _next_item(frames))["data"])["id"] for _ in range(3)]
    assert ids == [make_item(n).id for n in (4, 5, 6)]


async def _take(frames: Frames, n: int) -> list[tuple[str, str, str]]:
    """The next ``n`` events as (event id, name, the item id or ``<type> <alert id>``)."""
    got = []
    async with asyncio.timeout(10):
        for _ in range(n):
            frame = await _next_item(frames)
            data = json.loads(frame["data"])
            what = (
                data["id"] if frame["event"] == "item" else f"{data['type']} {data['alert']['id']}"
            )
            got.append((frame["id"], frame["event"], what))
    return got


class Notifier:
    """The notifier's routing and delivery, driven by the test: every alert goes to a webhook
    subscription matching everything, on a real receiver."""

    def __init__(self, r: Any, rx: Receiver, sender: WebhookSender) -> None:
        self.r = r
        self.worker = NotifierWorker(r, clock=lambda: NOW)
        self.deliverer = Deliverer(r, webhook=sender, clock=lambda: NOW + timedelta(seconds=1))
        self.rx = rx

    async def subscribe(self) -> None:
        sub = new_subscription(name="all", channel=WebhookChannel(url=self.rx.url), now=NOW)
        await SubscriptionStore(self.r).put(sub)
        self.rx.secrets.append(sub.secrets[0].value)

    async def route(self) -> None:
        """Route every ``item.classified`` so far (as its consumer would; done ones are not
        routed twice)."""
        for msg_id, fields in await self.r.xrange(keys.STREAM_CLASSIFIED):
            await self.worker.handle(decode(fields), Delivery(keys.STREAM_CLASSIFIED, msg_id, 1))

    async def alert_for(self, item_id: str) -> str:
        for alert in await self.worker.alerts.recent():
            if alert.item is not None and alert.item.id == item_id:
                return alert.id
        raise AssertionError(f"no alert for {item_id}")


@pytest.fixture
async def notifier(r) -> AsyncIterator[Notifier]:
    with Receiver([]) as rx:
        async with WebhookSender(transport=httpx.AsyncHTTPTransport(), timeout_s=5) as sender:
            n = Notifier(r, rx, sender)
            await n.subscribe()
            yield n


async def _classify(world: World, notifier: Notifier, n: int, topic: str) -> None:
    await world.add(make_item(n), make_labels(topic))
    await notifier.route()


def _positions(event_id: str) -> list[tuple[int, int]]:
    """The (classified, alerts) entry ids of an event id, comparable."""
    parts = [part.split("-") for part in event_id.split(",")]
    assert len(parts) == 2
    return [(int(ms), int(seq)) for ms, seq in parts]


async def test_alerts_arrive_live_and_resume_with_items_without_gaps(server, world, notifier):
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream") as resp,
    ):
        frames = _frames(resp.aiter_lines())
        assert str(await anext(frames)).startswith(": connected")
        await _classify(world, notifier, 1, "border_security")
        a1 = await notifier.alert_for(make_item(1).id)
        got = await _take(frames, 2)
        assert [g[1:] for g in got] == [
            ("item", make_item(1).id),
            ("alert", f"alert.created {a1}"),
        ]
        last_id = got[-1][0]
    # disconnected: an alert is delivered and two items are routed meanwhile
    assert await notifier.deliverer.step() == 1
    await _classify(world, notifier, 2, "terrorism")
    await _classify(world, notifier, 3, "border_security")
    a2, a3 = [await notifier.alert_for(make_item(n).id) for n in (2, 3)]
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream", headers={"Last-Event-ID": last_id}) as resp,
    ):
        got = await _take(_frames(resp.aiter_lines()), 5)
    assert [g[1:] for g in got] == [
        ("alert", f"alert.delivered {a1}"),
        ("item", make_item(2).id),
        ("alert", f"alert.created {a2}"),
        ("item", make_item(3).id),
        ("alert", f"alert.created {a3}"),
    ]
    positions = [_positions(last_id)] + [_positions(g[0]) for g in got]
    for before, after in itertools.pairwise(positions):  # each stream moves on, never back
        assert all(b <= a for b, a in zip(before, after, strict=True)) and before != after


async def test_alert_data_is_the_alert_as_stored(server, world, notifier):
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream?topic=border_security") as resp,
    ):
        frames = _frames(resp.aiter_lines())
        await anext(frames)
        await _classify(world, notifier, 1, "border_security")
        await _next_item(frames)
        frame = await _next_item(frames)
    assert frame["event"] == "alert"
    data = json.loads(frame["data"])
    assert (data["type"], data["channel"], data["status"], data["attempts"]) == (
        "alert.created",
        "webhook",
        "pending",
        0,
    )
    assert data["alert"]["item"]["id"] == make_item(1).id
    assert data["alert"]["labels"]["topics"] == ["border_security"]
    assert notifier.rx.url not in frame["data"]


async def test_filters_and_alerts_false_leave_alerts_out(server, world, notifier):
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream?topic=border_security") as filtered,
        client.stream("GET", "/v1/stream?alerts=false") as no_alerts,
    ):
        f_frames, n_frames = _frames(filtered.aiter_lines()), _frames(no_alerts.aiter_lines())
        await anext(f_frames)
        await anext(n_frames)
        await _classify(world, notifier, 1, "terrorism")  # item and alert: not this topic
        await _classify(world, notifier, 2, "border_security")
        a2 = await notifier.alert_for(make_item(2).id)
        assert [g[1:] for g in await _take(f_frames, 2)] == [
            ("item", make_item(2).id),
            ("alert", f"alert.created {a2}"),
        ]
        assert [g[1:] for g in await _take(n_frames, 2)] == [
            ("item", make_item(1).id),
            ("item", make_item(2).id),
        ]


async def test_an_old_single_id_resumes_items_and_starts_alerts_now(server, world, notifier):
    await _classify(world, notifier, 1, "border_security")
    [(first, _)] = await world.redis.xrange(keys.STREAM_CLASSIFIED)
    await _classify(world, notifier, 2, "border_security")  # its alert: before the connection
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/stream", headers={"Last-Event-ID": first}) as resp,
    ):
        frames = _frames(resp.aiter_lines())
        assert [g[1:] for g in await _take(frames, 1)] == [("item", make_item(2).id)]
        await _classify(world, notifier, 3, "border_security")
        a3 = await notifier.alert_for(make_item(3).id)
        assert [g[1:] for g in await _take(frames, 2)] == [
            ("item", make_item(3).id),
            ("alert", f"alert.created {a3}"),
        ]


@pytest.mark.parametrize(
    "value",
    [
        "nope",
        "1-0,",
        ",1-0",
        "1-0,2",
        "1-0,2-0,3-0",
        "1-0;2-0",
        " 1-0",
        "18446744073709551616-0",  # 2**64: no entry id is that large
        "1-0,1-18446744073709551616",
        "1" * 21 + "-0",
    ],
)
async def test_bad_last_event_id_is_422(client, value):
    resp = await client.get("/v1/stream", headers={"Last-Event-ID": value})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0]["field"] == "Last-Event-ID"
    resp = await client.get("/v1/stream", params={"last_event_id": value})
    assert resp.status_code == 422


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1-0", ("1-0", None)),
        ("1717200000000-3,0-0", ("1717200000000-3", "0-0")),
        (
            "18446744073709551615-18446744073709551615,1-1",
            ("18446744073709551615-18446744073709551615", "1-1"),
        ),
    ],
)
def test_event_ids_parse(value, expected):
    assert parse_event_id(value) == expected


def test_entries_of_two_streams_in_the_order_redis_added_them():
    c, a = keys.STREAM_CLASSIFIED, keys.STREAM_ALERT_EVENTS
    reply: list[Any] = [
        [c, [("5-0", {}), ("7-0", {})]],
        [a, [("5-0", {}), ("6-0", {}), ("9-0", {})]],
    ]
    assert [(s, m) for s, m, _ in in_order(reply, batch=100)] == [
        (c, "5-0"),
        (a, "5-0"),
        (a, "6-0"),
        (c, "7-0"),
        (a, "9-0"),
    ]
    # the classified batch is full: it may hold more up to 9-0, so 9-0 waits
    assert [(s, m) for s, m, _ in in_order(reply, batch=2)] == [
        (c, "5-0"),
        (a, "5-0"),
        (a, "6-0"),
        (c, "7-0"),
    ]


async def test_streams_past_the_limit_are_refused_and_the_rest_of_the_api_still_answers(
    settings, r, world
):
    """Each live stream holds a Redis connection (XREAD BLOCK): past ``api_max_streams`` a
    stream is refused with 503 and Retry-After, so streams cannot take every connection."""
    limited = settings.model_copy(update={"api_max_streams": 2, "sse_keepalive_s": 0.2})
    app = create_app(limited, r, clock=lambda: NOW)
    await world.add(make_item(1), make_labels("border_security"))
    async with _serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        async with contextlib.AsyncExitStack() as open_streams:
            for _ in range(2):
                resp = await open_streams.enter_async_context(http.stream("GET", "/v1/stream"))
                assert resp.status_code == 200
            refused = await http.get("/v1/stream")
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "5"
            assert "at most 2 live streams" in refused.json()["detail"]
            assert (await http.get("/v1/items")).status_code == 200
            assert (await http.get(f"/v1/items/{make_item(1).id}")).status_code == 200
        # Both closed: the server notices at their next keep-alive, then takes streams again.

        async def accepted() -> bool:
            async with http.stream("GET", "/v1/stream") as resp:
                return resp.status_code == 200

        await eventually(accepted)
