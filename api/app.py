"""The API application factory: ``create_app(settings, redis)``.

The Redis client is passed in (the process that runs the API owns the connection), so
tests and the one-process ``serve`` share one client.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api import problems
from api.routers import health, items
from core.settings import Settings
from core.store import ItemStore


def create_app(settings: Settings, redis: Any) -> FastAPI:
    app = FastAPI(
        title="newsmon",
        version="0.1.0",
        summary="Tagged news on Cambodia–Laos defence relations.",
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.store = ItemStore(redis)
    problems.install(app)
    app.include_router(health.router)
    app.include_router(items.router)
    return app
