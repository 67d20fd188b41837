"""The filters of ``/v1/items``, shared by ``/v1/stream`` and ``/v1/feeds/export.atom``.

``Filters`` is one dependency: each route gets the same query parameters, documented once,
validated once (errors name the parameter). It turns into an ``ItemQuery`` for the store,
and tests one classified item in memory for the live stream.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from api.problems import invalid
from core.models import Item, Labels
from core.store import ItemQuery, words

LABEL_ID = r"^[a-z0-9_]{1,64}$"
FEED = r"^[A-Za-z0-9_.:-]{1,128}$"
STORY = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_Q_WORDS = 8


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    official: str | None = None
    country: str | None = None
    feed: str | None = None
    story: str | None = None
    relevant: bool | None = None
    min_score: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: tuple[str, ...] = ()

    def query(self, *, limit: int, cursor: str | None, max_scan: int | None) -> ItemQuery:
        return ItemQuery(
            **{name: getattr(self, name) for name in _FIELDS},  # ItemQuery has them all
            limit=limit,
            cursor=cursor,
            max_scan=max_scan,
        )

    def matches(self, item: Item, labels: Labels, story: str | None = None) -> bool:
        """The same test in memory, for one item just classified (the live stream)."""
        checks = (
            self.topic is None or self.topic in labels.topics,
            self.official is None or self.official in labels.officials,
            self.country is None or self.country in labels.countries,
            self.feed is None or self.feed == item.feed_id,
            self.story is None or self.story == story,
            self.relevant is None or self.relevant == labels.relevant,
            self.min_score is None or labels.score >= self.min_score,
            self.since is None or item.published >= self.since,
            self.until is None or item.published <= self.until,
        )
        if not all(checks):
            return False
        if self.q:
            present = set(words(f"{item.title}\n{item.text or item.summary}"))
            return all(w in present for w in self.q)
        return True


def _q_words(q: str | None) -> tuple[str, ...]:
    if q is None:
        return ()
    found = words(q)
    if not found:
        raise invalid(
            "q", "no searchable word (2 to 40 letters or digits, not a common word like 'the')"
        )
    if len(found) > MAX_Q_WORDS:
        raise invalid("q", f"at most {MAX_Q_WORDS} words")
    return tuple(found)


class FilterParams(BaseModel):
    """The filters as query parameters.

    ``item_filters`` validates them itself, in one pydantic call, and routes document them
    with ``FILTER_PARAMETERS``: declared to FastAPI, one by one or as a parameter model,
    they cost 0.3–0.5 ms a request in FastAPI's per-request parameter handling, more than
    the rest of a list page.
    """

    topic: str | None = Field(
        None, pattern=LABEL_ID, examples=["border_security"], description="Topic id."
    )
    official: str | None = Field(None, pattern=LABEL_ID, examples=["hun_manet"])
    country: str | None = Field(None, pattern=LABEL_ID, examples=["laos"])
    feed: str | None = Field(None, pattern=FEED, examples=["khmer-times"])
    story: str | None = Field(None, pattern=STORY, description="Story id.")
    relevant: bool | None = Field(None, description="Only (ir)relevant items.")
    min_score: float | None = Field(
        None, ge=0.0, le=1.0, description="Classified items scoring at least this."
    )
    since: datetime | None = Field(None, description="Published at or after (RFC 3339).")
    until: datetime | None = Field(None, description="Published at or before (RFC 3339).")
    q: str | None = Field(
        None,
        max_length=200,
        examples=["border patrol"],
        description="Words that must all occur in the title or text (case and accents ignored).",
    )


class PageParams(FilterParams):
    """The filters and a page: ``GET /v1/items``'s query parameters."""

    limit: int = Field(50, ge=1, le=200, description="Items per page.")
    cursor: str | None = Field(
        None, max_length=200, description="The `next_cursor` of the previous page."
    )
    evidence: bool = Field(
        False,
        description="Include each item's evidence (`labels.matches`): left out by default, "
        "as it is most of a page's weight. `GET /v1/items/{id}` always has it.",
    )


class PageRequest(NamedTuple):
    """What ``page_params`` reads: the filters and the page asked for."""

    filters: Filters
    limit: int
    cursor: str | None
    evidence: bool


def _parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """``model``'s fields as OpenAPI query parameters (what FastAPI would write for them)."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        if "examples" in prop:
            parameter["examples"] = {
                f"example{n}": {"value": v} for n, v in enumerate(prop.pop("examples"))
            }
        if prop.get("default") is None:
            prop.pop("default", None)
        parameter["schema"] = prop
        out.append(parameter)
    return out


FILTER_PARAMETERS = _parameters(FilterParams)
# For a route taking ``item_filters``: ``@router.get(..., openapi_extra=FILTER_OPENAPI)``.
FILTER_OPENAPI: dict[str, Any] = {"parameters": FILTER_PARAMETERS}
# For a route reading ``page_params``, that checks its key itself (see api.deps.KeyGuard).
PAGE_OPENAPI: dict[str, Any] = {
    "parameters": _parameters(PageParams),
    "security": [{"HTTPBearer": []}],
}

_P = TypeVar("_P", bound=FilterParams)


def _validated(request: Request, model: type[_P]) -> _P:
    query = request.query_params
    try:
        return model.model_validate({k: query[k] for k in model.model_fields if k in query})
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("query", *err["loc"])} for err in e.errors()]
        ) from None


async def item_filters(request: Request) -> Filters:
    """The filters of the request's query string (other parameters are left alone)."""
    return _filters(_validated(request, FilterParams))


def page_params(request: Request) -> PageRequest:
    """The filters, page size, cursor and evidence flag of the request's query string."""
    params = _validated(request, PageParams)
    return PageRequest(_filters(params), params.limit, params.cursor, params.evidence)


def _filters(params: FilterParams) -> Filters:
    since, until = params.since, params.until
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid(name, "needs a time zone (RFC 3339, e.g. 2024-05-01T00:00:00Z)")
        if value is not None:
            try:
                value.timestamp()
            except (OverflowError, ValueError, OSError) as e:
                raise invalid(name, f"out of range: {e}") from e
    if since is not None and until is not None and since > until:
        raise invalid("since", "must not be after until")
    shown = {name: getattr(params, name) for name in _FIELDS if name != "q"}
    return Filters(**shown, q=_q_words(params.q))


_FIELDS = tuple(f.name for f in fields(Filters))
if set(_FIELDS) != set(FilterParams.model_fields):
    raise RuntimeError("Filters and FilterParams must have the same fields")
