"""``POST /v1/classify`` (dry run) and ``GET /v1/taxonomy``.

The classifier is another service: the runner hands the app its ``classify`` function and
its lexicon's labels. Without them, ``/v1/classify`` answers 503 and the taxonomy lists only
the labels seen in the store.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.deps import Classify, ReadKey, StoreDep
from api.problems import ApiProblem
from api.schemas import ClassifyIn, Problem, Taxonomy, TaxonomyLabel
from core.models import Labels

router = APIRouter(tags=["classify"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
}


@router.post(
    "/v1/classify",
    response_model=Labels,
    responses={
        **_AUTH,
        422: {"model": Problem, "description": "The body is invalid (named in `errors`)."},
        503: {"model": Problem, "description": "No classifier in this process."},
    },
)
async def classify(body: ClassifyIn, request: Request, _key: ReadKey) -> Labels:
    """Labels and evidence for a title and text; nothing is stored or published."""
    engine: Classify | None = request.app.state.classify
    if engine is None:
        raise ApiProblem(503, "Service unavailable", "classifier not available in this process")
    if not body.title.strip() and not body.text.strip():
        raise ApiProblem(422, "Invalid request", "title: give a title or a text", field="title")
    # CPU-bound work off the event loop (a long text must not stall other requests).
    return await run_in_threadpool(engine, body.title, body.text)


@router.get("/v1/taxonomy", response_model=Taxonomy, responses=_AUTH)
async def taxonomy(request: Request, store: StoreDep, _key: ReadKey) -> Taxonomy:
    """Every label of the lexicon (and any seen in the store) with its item count."""
    counts = await store.label_counts(request.app.state.taxonomy)

    def of(kind: str) -> list[TaxonomyLabel]:
        return [TaxonomyLabel(id=k, items=n) for k, n in sorted(counts.get(kind, {}).items())]

    return Taxonomy(
        topics=of("topic"),
        officials=of("official"),
        countries=of("country"),
        organisations=of("organisation"),
    )
