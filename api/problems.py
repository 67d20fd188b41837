"""RFC 9457 ``application/problem+json`` responses for every error the API returns.

Every error names what went wrong; input errors also list each offending field in
``errors`` (``[{"field": "limit", "message": …}]``). An unexpected exception is logged and
answered with a 500 problem that reveals nothing of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import BadCursor

MEDIA_TYPE = "application/problem+json"
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

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
        return problem(500, "Internal error", "the server could not answer; see its log")
