"""The API application factory: ``create_app(settings, redis, *, classify, taxonomy)``.

The Redis client is passed in (the process that runs the API owns the connection), so
tests and the one-process ``serve`` share one client. The classifier is another service:
the runner passes its ``classify(title, text) -> Labels`` and its lexicon's labels
(``{"topic": [...], "official": [...], ...}``); without them ``POST /v1/classify`` answers
503 and ``/v1/taxonomy`` lists the labels seen in the store.

Settings read (with defaults until ``core.settings`` declares them): ``api_require_keys``
(False: no key configured → open), ``api_cors_origins`` ([]), ``api_max_scan`` (50,000),
``ready_max_lag`` (10,000), ``ready_max_dead_letters`` (1,000), ``sse_keepalive_s`` (15).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from api import fastlist, problems
from api.deps import Classify
from api.fastlist import FastListMiddleware
from api.metrics import LatencyMiddleware, Metrics
from api.routers import alerts, export, feeds, health, items, stories, stream, subscriptions
from api.routers import classify as classify_router
from core.alerts import AlertStore
from core.apikeys import ApiKeys
from core.settings import Settings
from core.store import ItemStore

DESCRIPTION = """Tagged news on Cambodia–Laos defence relations.

Auth: `Authorization: Bearer <API key>`. Keys have the `read` or `admin` scope and are
made with `newsmon keys create`. While no key exists the API is open (and listens on
127.0.0.1 only). The one-click unsubscribe link of alert emails needs no key (its token is
the credential). Errors are RFC 9457 `application/problem+json` naming the field.
"""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    redis: Any,
    *,
    classify: Classify | None = None,
    taxonomy: dict[str, list[str]] | None = None,
    clock: Callable[[], datetime] = _utcnow,
    fast_list: bool = True,
) -> FastAPI:
    app = FastAPI(
        title="newsmon",
        version="0.1.0",
        summary="Tagged news on Cambodia–Laos defence relations.",
        description=DESCRIPTION,
        # FastAPI's OpenTelemetry hooks asked three providers (and the environment) on every
        # request whether to trace it: ~3 % of a list page's CPU. newsmon's metrics are its
        # own (/metrics); no OpenTelemetry provider is ever configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.store = ItemStore(redis)
    app.state.alerts = AlertStore(redis, stream_maxlen=settings.stream_maxlen)
    app.state.apikeys = ApiKeys(redis)
    app.state.require_keys = bool(getattr(settings, "api_require_keys", False))
    app.state.classify = classify
    app.state.taxonomy = taxonomy
    app.state.clock = clock
    app.state.metrics = Metrics()
    problems.install(app)
    for router in (
        health.router,
        items.router,
        stories.router,
        export.router,  # before feeds: /v1/feeds/export.atom is not a feed id
        feeds.router,
        subscriptions.router,
        alerts.router,
        classify_router.router,
        stream.router,
    ):
        app.include_router(router)
    if fast_list:  # off: every list page goes through the route (tests compare the two)
        app.add_middleware(FastListMiddleware, route=_route(items.router, fastlist.PATH))
    origins = list(getattr(settings, "api_cors_origins", None) or [])
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Location"],
        )
    app.add_middleware(LatencyMiddleware, metrics=app.state.metrics)
    _problem_media_type(app)
    return app


def _route(router: APIRouter, path: str) -> APIRoute:
    found = [r for r in router.routes if isinstance(r, APIRoute) and r.path == path]
    if len(found) != 1:
        raise RuntimeError(f"expected one route for {path}, found {len(found)}")
    return found[0]


_MALFORMED = {
    "description": "The body is not valid JSON.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _problem_media_type(app: FastAPI) -> None:
    """Document error bodies as ``application/problem+json`` (RFC 9457), which they are."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if "requestBody" in operation:  # a body that is not JSON at all
                        operation["responses"].setdefault("400", _MALFORMED)
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[:1] in "45" and "application/json" in content:
                            content[problems.MEDIA_TYPE] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
