"""``/v1/alerts``: the alerts the notifier made, with every delivery attempt; redeliver one.

Reads need the ``read`` scope, redelivery ``admin``. Lists are newest first and paged by
``cursor`` (the ``next_cursor`` of the previous page: alerts created meanwhile never shift
or repeat a page) or by ``before`` (a time). Filtering by ``status`` walks the index and
looks at no more than ``api_max_scan`` alerts per request; past that a page may hold fewer
than ``limit`` alerts, and ``next_cursor`` goes on from where it stopped.

``POST /v1/alerts/{id}/redeliver`` sends nothing itself: it makes a finished alert pending
and due on the notifier's delivery queue (``nm:deliveries:due``) and answers 202. The
redelivery keeps the alert's ``webhook-id`` (Standard Webhooks: it is the same message), so
a receiver that dedupes on it must be told to accept it again.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from api.deps import AdminKey, ClockDep, ReadKey, RedisDep
from api.problems import ApiProblem, invalid
from api.schemas import (
    ALERT_ID,
    SUBSCRIPTION_ID,
    AlertDetail,
    AlertOut,
    AlertPage,
    Problem,
    RedeliveryQueued,
)
from core.alerts import REDELIVERABLE, Alert, AlertStatus, AlertStore, epoch
from core.errors import BadCursor
from core.subscriptions import SubscriptionStore

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

AlertId = Annotated[
    str, Path(pattern=ALERT_ID, max_length=43, examples=["al_0123456789abcdef01234567"])
]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}
_404: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    404: {"model": Problem, "description": "No alert has this id."},
}
BATCH = 200


def encode_cursor(alert_id: str, score: float) -> str:
    raw = json.dumps({"a": alert_id, "t": score}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, float]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        alert_id, score = data["a"], data["t"]
    except (binascii.Error, ValueError, TypeError, KeyError) as e:
        raise BadCursor("not a cursor this API issued") from e
    if not isinstance(alert_id, str) or not isinstance(score, int | float):
        raise BadCursor("not a cursor this API issued")
    return alert_id, float(score)


def _max_scan(request: Request) -> int:
    return int(getattr(request.app.state.settings, "api_max_scan", 50_000))


@router.get(
    "",
    response_model=AlertPage,
    responses={**_AUTH, 400: {"model": Problem, "description": "The cursor is malformed."}},
)
async def list_alerts(
    request: Request,
    redis: RedisDep,
    _key: ReadKey,
    subscription: Annotated[
        str | None,
        Query(pattern=SUBSCRIPTION_ID, max_length=20, description="Only this subscription's."),
    ] = None,
    status: Annotated[AlertStatus | None, Query(description="Only alerts in this state.")] = None,
    before: Annotated[
        datetime | None, Query(description="Only alerts created before this time (RFC 3339).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="The `next_cursor` of the previous page.")
    ] = None,
) -> AlertPage:
    if cursor is not None and before is not None:
        raise invalid("before", "give cursor or before, not both")
    if before is not None and before.tzinfo is None:
        raise invalid("before", "needs a time zone offset (RFC 3339)")
    after, since = (None, None) if cursor is None else decode_cursor(cursor)
    upto = since if since is not None else (epoch(before) if before is not None else None)
    store = AlertStore(redis)
    found: list[Alert] = []
    scanned, budget = 0, _max_scan(request)
    last: tuple[str, float] | None = None
    while True:
        rows = await store.page(subscription_id=subscription, count=BATCH, after=after, before=upto)
        if not rows:
            return AlertPage(alerts=[AlertOut.of(a) for a in found], next_cursor=None)
        by_id = {a.id: a for a in await store.get_many([alert_id for alert_id, _ in rows])}
        for alert_id, score in rows:
            last = (alert_id, score)
            scanned += 1
            alert = by_id.get(alert_id)
            if alert is not None and (status is None or alert.status == status):
                found.append(alert)
            if len(found) == limit or scanned >= budget:
                return AlertPage(
                    alerts=[AlertOut.of(a) for a in found], next_cursor=encode_cursor(*last)
                )
        after, upto = rows[-1]


@router.get("/{alert_id}", response_model=AlertDetail, responses=_404)
async def get_alert(alert_id: AlertId, redis: RedisDep, _key: ReadKey) -> AlertDetail:
    store = AlertStore(redis)
    alert = await store.get(alert_id)
    if alert is None:
        raise ApiProblem(404, "Not found", f"no alert with id {alert_id}")
    return AlertDetail.detail(alert, await store.attempts(alert_id))


@router.post(
    "/{alert_id}/redeliver",
    response_model=RedeliveryQueued,
    status_code=202,
    responses={
        **_404,
        409: {
            "model": Problem,
            "description": "The alert is not finished, or its subscription is gone or disabled.",
        },
    },
)
async def redeliver(
    alert_id: AlertId, redis: RedisDep, clock: ClockDep, _key: AdminKey
) -> RedeliveryQueued:
    """Send a finished alert (delivered, failed or cancelled) again, with a fresh retry
    schedule. Its delivery attempts so far are kept."""
    store = AlertStore(redis)
    alert = await store.get(alert_id)
    if alert is None:
        raise ApiProblem(404, "Not found", f"no alert with id {alert_id}")
    sub = await SubscriptionStore(redis).get(alert.subscription_id)
    if sub is None or not sub.enabled:
        state = "removed" if sub is None else "disabled"
        raise ApiProblem(409, "Conflict", f"its subscription {alert.subscription_id} is {state}")
    now = clock()
    if alert.status not in REDELIVERABLE or await store.redeliver(alert_id, now) is None:
        raise ApiProblem(
            409,
            "Conflict",
            f"the alert is {alert.status}; only a delivered, failed or cancelled alert "
            "is redelivered",
        )
    return RedeliveryQueued(alert_id=alert_id, due_at=now)
