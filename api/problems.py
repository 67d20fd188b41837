"""RFC 9457 ``application/problem+json`` responses for every error the API returns."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import BadCursor

MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body")),
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

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))
