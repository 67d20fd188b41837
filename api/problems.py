"""RFC 9457 ``application/problem+json`` responses for every error the API returns.

Every error names what went wrong; input errors also list each offending field in
``errors`` (``[{"field": "limit", "message": …}]``). When Redis cannot be reached in time
(down, timing out, or every pooled connection busy past its wait) the answer is 503 with
``Retry-After``: the request was fine, come back shortly. An unexpected exception is logged
and answered with a 500 problem that reveals nothing of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import BadCursor

MEDIA_TYPE = "application/problem+json"
STORE_RETRY_AFTER_S = 2
log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raised by routers and dependencies; becomes a problem response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = headers


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def invalid(field: str, message: str) -> ApiProblem:
    """A 422 naming ``field``."""
    return ApiProblem(422, "Invalid request", f"{field}: {message}", field=field)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(
                    str(p) for p in err["loc"] if p not in ("query", "path", "body", "header")
                )
                or "body",
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"field": "?", "message": "invalid request"}
        return problem(
            422,
            "Invalid request",
            f"{first['field']}: {first['message']}",
            errors=errors,
        )

    @app.exception_handler(BadCursor)
    async def _cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return problem(
            400, "Invalid cursor", str(exc), errors=[{"field": "cursor", "message": str(exc)}]
        )

    @app.exception_handler(ApiProblem)
    async def _api(_: Request, exc: ApiProblem) -> JSONResponse:
        extra: dict[str, object] = {}
        if exc.field:
            extra["errors"] = [{"field": exc.field, "message": exc.detail or exc.title}]
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable", extra={"path": request.url.path, "error": str(exc)})
        return problem(
            503,
            "Store unavailable",
            "the item store (Redis) did not answer in time; try again shortly",
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )

    app.add_exception_handler(RedisConnectionError, _store_down)
    app.add_exception_handler(RedisTimeoutError, _store_down)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
        return problem(500, "Internal error", "the server could not answer; see its log")
