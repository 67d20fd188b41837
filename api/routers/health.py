"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics`` (no key needed).

- ``/healthz``: the process answers (never touches Redis).
- ``/readyz``: Redis answers, every consumer group's lag is within ``ready_max_lag`` and
  every dead-letter stream holds at most ``ready_max_dead_letters`` entries; 503 otherwise,
  with each check's figure.
- ``/metrics``: Prometheus text exposition (see ``api.metrics``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from api import pipeline
from api.deps import RedisDep, StoreDep
from api.metrics import render
from api.schemas import Health, Readiness, ReadyCheck

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: see the failing checks."}},
)
async def readyz(request: Request, redis: RedisDep, store: StoreDep) -> Any:
    settings = request.app.state.settings
    max_lag = int(getattr(settings, "ready_max_lag", 10_000))
    max_dead = int(getattr(settings, "ready_max_dead_letters", 1_000))
    checks: list[ReadyCheck] = []
    try:
        await redis.ping()
        checks.append(ReadyCheck(name="redis", ok=True))
        snap = await pipeline.snapshot(redis, store)
    except (RedisError, OSError) as e:
        checks.append(ReadyCheck(name="redis", ok=False, detail=f"{type(e).__name__}: {e}"))
        body = Readiness(status="unavailable", checks=checks)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    for (stream, group), lag in sorted(snap.lag.items()):
        checks.append(
            ReadyCheck(name=f"lag:{stream}:{group}", ok=lag <= max_lag, value=lag, limit=max_lag)
        )
    for stream, dead in sorted(snap.dead.items()):
        checks.append(
            ReadyCheck(name=f"dead:{stream}", ok=dead <= max_dead, value=dead, limit=max_dead)
        )
    ok = all(c.ok for c in checks)
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition."}},
)
async def metrics(request: Request, redis: RedisDep, store: StoreDep) -> Response:
    snap = await pipeline.snapshot(redis, store)
    return Response(render(request.app.state.metrics, snap), media_type=CONTENT_TYPE_LATEST)
