"""``GET /v1/items`` answered before the framework, when nothing is unusual about it.

A list page is most of the API's traffic, and by the time FastAPI has matched the route,
built the request and solved its dependencies, a third of the request's CPU is gone. This
ASGI middleware answers the common case itself, with the route's own parts (``page_params``,
``KeyGuard``, ``ItemStore.query_cards``, ``listing.render``): valid parameters, a key that
passes, and a page Redis assembled. Anything else (a parameter error, a missing or refused
key, a cursor not ours, a page Redis declined, Redis unreachable) goes on to the app, whose
route gives the answer and the error it documents: the fast path never answers differently,
it only answers sooner (``tests/api/test_fastlist.py`` compares the two).

Owns: that shortcut. Must not: answer anything the route would answer differently.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api import listing
from api.deps import KeyGuard, bearer_token
from api.filters import page_params
from api.problems import ApiProblem
from api.routers.items import max_scan
from core.errors import BadCursor
from core.store import ItemStore

PATH = "/v1/items"
_HEADERS = [(b"content-type", b"application/json")]


class FastListMiddleware:
    """Answers ``GET /v1/items`` (see the module doc); ``route`` is the app's route for
    it, set in the scope as the router would (the latency metric is labelled by it)."""

    def __init__(self, app: ASGIApp, route: Any) -> None:
        self.app = app
        self.route = route
        self.answered = 0  # pages answered here (the rest went on to the route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        body = await self._page(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        self.answered += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _page(self, scope: Scope) -> bytes | None:
        """The page's body, or None to let the route answer."""
        request = Request(scope)
        app = scope["app"]
        try:
            filters, limit, cursor, evidence = page_params(request)
            guard = KeyGuard(request, "read", await bearer_token(request))
            store: ItemStore = app.state.store
            query = filters.query(limit=limit, cursor=cursor, max_scan=max_scan(request))
            page = await store.query_cards(query, guard=guard, evidence=evidence)
        except (RequestValidationError, ApiProblem, BadCursor, RedisError):
            return None
        if page.joined is None:
            return None
        return listing.render(page, {}, evidence=evidence).encode()
