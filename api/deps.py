"""Dependencies of the routers, as ``Annotated`` aliases (the FastAPI template's habit).

Auth: a request names its key with ``Authorization: Bearer <token>``. While no key is active
every request is served (the runner keeps such an API on a loopback address); once one is,
every ``/v1`` request needs a key with the route's scope (``read`` or ``admin``), else 401
(no or bad key) or 403 (a key without the scope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import ApiProblem
from core.alerts import AlertStore
from core.apikeys import ApiKey, ApiKeys, Scope, lookup_reads, lookup_reply
from core.models import Labels
from core.store import ItemStore

Classify = Callable[[str, str], Labels]
Clock = Callable[[], datetime]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer nmk_…`")


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in a worker thread, which cost more than the rest of a list request.
async def _store(request: Request) -> ItemStore:
    store: ItemStore = request.app.state.store
    return store


async def _alerts(request: Request) -> AlertStore:
    alerts: AlertStore = request.app.state.alerts
    return alerts


async def _redis(request: Request) -> Any:
    return request.app.state.redis


async def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def authorize(
    request: Request, scope: Scope, token: str | None, found: tuple[int, ApiKey | None]
) -> ApiKey | None:
    """The key check's decision, from ``ApiKeys.lookup``'s answer (``found``): the key, or
    None when no key is configured; else 401 or 403."""
    active, key = found
    if active == 0 and not request.app.state.require_keys:
        return None  # no key configured: open (loopback only, see the runner)
    if key is None:
        raise ApiProblem(
            401,
            "Unauthorized",
            "a valid API key is required (Authorization: Bearer …)"
            if token
            else "this API needs an API key (Authorization: Bearer …)",
            headers={"WWW-Authenticate": 'Bearer realm="newsmon"'},
        )
    if not key.allows(scope):
        raise ApiProblem(403, "Forbidden", f"this API key lacks the {scope!r} scope")
    return key


async def bearer_token(request: Request) -> str | None:
    """The request's ``Authorization: Bearer`` token, read as the ``_bearer`` dependency
    reads it (for a route that checks its key itself, see ``KeyGuard``)."""
    credentials = await _bearer(request)
    return credentials.credentials if credentials is not None else None


async def check_key(request: Request, scope: Scope, token: str | None) -> ApiKey | None:
    """The key check on its own: ``authorize`` on a lookup of ``token``."""
    keys: ApiKeys = request.app.state.apikeys
    return authorize(request, scope, token, await keys.lookup(token))


class KeyGuard:
    """The key check as a ``core.store.Guard``: its lookup rides in the command that reads
    the page it guards (``GET /v1/items``), and its decision is ``authorize``'s."""

    def __init__(self, request: Request, scope: Scope, token: str | None) -> None:
        self._request, self._scope, self._token = request, scope, token

    def reads(self) -> list[tuple[str, ...]]:
        return lookup_reads(self._token)

    def check(self, replies: list[Any]) -> None:
        found = lookup_reply(self._token, replies)
        authorize(self._request, self._scope, self._token, found)


def _require(scope: Scope) -> Callable[..., Awaitable[ApiKey | None]]:
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey | None:
        token = credentials.credentials if credentials is not None else None
        return await check_key(request, scope, token)

    return check


StoreDep = Annotated[ItemStore, Depends(_store)]
AlertsDep = Annotated[AlertStore, Depends(_alerts)]
RedisDep = Annotated[Any, Depends(_redis)]
ClockDep = Annotated[Clock, Depends(_clock)]
ReadKey = Annotated[ApiKey | None, Depends(_require("read"))]
AdminKey = Annotated[ApiKey | None, Depends(_require("admin"))]
