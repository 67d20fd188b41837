"""``/readyz`` fails while Redis is unreachable and recovers when it is back; the app itself
keeps serving (``/healthz``) throughout. A real server is stopped and started again."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.app import create_app
from core.connection import make_client
from core.embedded import EmbeddedRedis
from core.settings import Settings


async def test_readyz_follows_redis_down_and_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    client = make_client(server.url)
    app = create_app(Settings(), client)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200
            server.stop()
            down = await http.get("/readyz")
            assert down.status_code == 503
            redis_check = next(c for c in down.json()["checks"] if c["name"] == "redis")
            assert redis_check["ok"] is False and redis_check["detail"]
            assert (await http.get("/healthz")).status_code == 200
            server.start()  # same data dir, same socket: the client reconnects by itself
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await client.aclose()
        server.stop()
