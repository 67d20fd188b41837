"""``/v1/stream`` over a real uvicorn server on 127.0.0.1: an item classified after the
client connected arrives; a reconnect with Last-Event-ID resumes with no gap."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from tests.api.conftest import make_item, make_labels
from tests.conftest import eventually


@pytest.fixture
async def server(app) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))

    async def started() -> bool:
        return srv.started

    await eventually(started)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    await task


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


async def test_bad_last_event_id_is_422(client):
    resp = await client.get("/v1/stream", headers={"Last-Event-ID": "nope"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "Last-Event-ID"
