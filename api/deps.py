"""Dependencies of the routers, as ``Annotated`` aliases (the FastAPI template's habit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from core.store import ItemStore


def _store(request: Request) -> ItemStore:
    store: ItemStore = request.app.state.store
    return store


def _redis(request: Request) -> Any:
    return request.app.state.redis


StoreDep = Annotated[ItemStore, Depends(_store)]
RedisDep = Annotated[Any, Depends(_redis)]
