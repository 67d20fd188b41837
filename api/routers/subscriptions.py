"""``/v1/subscriptions``: who gets which alerts, where; add, change, remove, test, rotate the
signing secret; and the one-click unsubscribe link of alert emails.

Reads need the ``read`` scope, changes ``admin``. A signing secret is shown twice only: in
the answer to its creation and to its rotation. Nothing is sent from a request: ``test``
stores a test alert and puts it on the notifier's delivery queue (``nm:deliveries:due``),
where the notifier's ``Deliverer`` picks it up within a second, and answers 202.

Unsubscribe (RFC 8058): ``POST /v1/subscriptions/{id}/unsubscribe?token=…`` with the body
``List-Unsubscribe=One-Click`` (form-encoded or multipart, §3.1) disables the subscription.
It needs no API key (mail providers call it): the per-subscription token, compared in
constant time, is the credential. ``GET`` on the same URL only shows what a POST would do
(§3.2 forbids a GET from unsubscribing: link scanners follow GETs).
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError

from api.deps import AdminKey, AlertsDep, ClockDep, ReadKey, RedisDep
from api.problems import ApiProblem, invalid
from api.schemas import (
    SUBSCRIPTION_ID,
    Problem,
    RotateIn,
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionPatch,
    TestQueued,
    Unsubscribed,
    UnsubscribeInfo,
    to_channel,
    to_filter,
)
from core.subscriptions import (
    Digest,
    Subscription,
    SubscriptionError,
    SubscriptionStore,
    new_subscription,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])

SubId = Annotated[
    str, Path(pattern=SUBSCRIPTION_ID, max_length=20, examples=["sub_0123456789abcdef"])
]
Token = Annotated[
    str,
    Query(min_length=1, max_length=200, description="The token of the subscription's link."),
]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "An API key is needed."},
    403: {"model": Problem, "description": "The key lacks the scope."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}
_404: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    404: {"model": Problem, "description": "No subscription has this id."},
}
_DISABLED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The subscription is disabled."}
}
ONE_CLICK = "List-Unsubscribe=One-Click"
MAX_UNSUBSCRIBE_BODY = 16_384


def _unusable(e: SubscriptionError | ValidationError) -> ApiProblem:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        return invalid(where, err["msg"])
    return invalid("body", str(e))


def _missing(sub_id: str) -> ApiProblem:
    return ApiProblem(404, "Not found", f"no subscription with id {sub_id}")


def _wrong_link(sub_id: str) -> ApiProblem:
    # One answer for "no such subscription" and "wrong token": the link reveals nothing.
    return ApiProblem(404, "Not found", f"no subscription {sub_id} with this token")


@router.get("", response_model=SubscriptionList, responses=_AUTH)
async def list_subscriptions(redis: RedisDep, _key: ReadKey) -> SubscriptionList:
    subs = await SubscriptionStore(redis).list_all()
    return SubscriptionList(subscriptions=[SubscriptionOut.of(s) for s in subs])


@router.post("", response_model=SubscriptionCreated, status_code=201, responses=_AUTH)
async def add_subscription(
    body: SubscriptionIn, redis: RedisDep, clock: ClockDep, _key: AdminKey, response: Response
) -> SubscriptionCreated:
    try:
        sub = new_subscription(
            name=body.name,
            channel=to_channel(body.channel),
            now=clock(),
            filter=to_filter(body.filter),
            digest=body.digest,
            rate_limit_per_hour=body.rate_limit_per_hour,
            secret=body.secret,
            enabled=body.enabled,
        )
    except (SubscriptionError, ValidationError) as e:  # the schema checks most of this
        raise _unusable(e) from e
    await SubscriptionStore(redis).put(sub)
    response.headers["Location"] = f"/v1/subscriptions/{sub.id}"
    return SubscriptionCreated(**SubscriptionOut.of(sub).model_dump(), secret=sub.secrets[0].value)


@router.get("/{sub_id}", response_model=SubscriptionOut, responses=_404)
async def get_subscription(sub_id: SubId, redis: RedisDep, _key: ReadKey) -> SubscriptionOut:
    sub = await SubscriptionStore(redis).get(sub_id)
    if sub is None:
        raise _missing(sub_id)
    return SubscriptionOut.of(sub)


def _patched(sub: Subscription, patch: SubscriptionPatch) -> Subscription:
    given = patch.model_fields_set
    update: dict[str, Any] = {}
    if patch.name is not None:
        update["name"] = patch.name
    if patch.channel is not None:
        update["channel"] = to_channel(patch.channel)
    if patch.filter is not None:
        update["filter"] = to_filter(patch.filter)
    if "digest" in given:
        update["digest"] = None if patch.digest is None else Digest.parse(patch.digest)
    if "rate_limit_per_hour" in given:
        update["rate_limit_per_hour"] = patch.rate_limit_per_hour
    if patch.enabled is not None and patch.enabled != sub.enabled:
        update["enabled"] = patch.enabled
        update["disabled_reason"] = None if patch.enabled else "disabled through the API"
    return sub.model_copy(update=update)


@router.patch("/{sub_id}", response_model=SubscriptionOut, responses=_404)
async def patch_subscription(
    sub_id: SubId, patch: SubscriptionPatch, redis: RedisDep, _key: AdminKey
) -> SubscriptionOut:
    try:
        sub = await SubscriptionStore(redis).update(sub_id, lambda s: _patched(s, patch))
    except (SubscriptionError, ValidationError) as e:
        raise _unusable(e) from e
    if sub is None:
        raise _missing(sub_id)
    return SubscriptionOut.of(sub)


@router.delete("/{sub_id}", status_code=204, response_class=Response, responses=_404)
async def delete_subscription(sub_id: SubId, redis: RedisDep, _key: AdminKey) -> Response:
    # Its pending deliveries are cancelled by the notifier when they come due.
    if not await SubscriptionStore(redis).remove(sub_id):
        raise _missing(sub_id)
    return Response(status_code=204)


@router.post(
    "/{sub_id}/test",
    response_model=TestQueued,
    status_code=202,
    responses={**_404, **_DISABLED},
)
async def send_test(
    sub_id: SubId,
    redis: RedisDep,
    alerts: AlertsDep,
    clock: ClockDep,
    _key: AdminKey,
    response: Response,
) -> TestQueued:
    """Queue a test alert (a made-up item titled "newsmon test alert") to this subscription's
    channel. Follow it at `/v1/alerts/{alert_id}`."""
    sub = await SubscriptionStore(redis).get(sub_id)
    if sub is None:
        raise _missing(sub_id)
    if not sub.enabled:
        raise ApiProblem(409, "Conflict", "the subscription is disabled: enable it first")
    now = clock()
    alert = await alerts.create_test(sub.id, sub.channel.kind, now)
    response.headers["Location"] = f"/v1/alerts/{alert.id}"
    return TestQueued(alert_id=alert.id, subscription_id=sub.id, due_at=now)


@router.post("/{sub_id}/rotate-secret", response_model=SecretRotated, responses=_404)
async def rotate_secret(
    sub_id: SubId,
    redis: RedisDep,
    clock: ClockDep,
    _key: AdminKey,
    body: Annotated[RotateIn | None, Body()] = None,
) -> SecretRotated:
    """A new signing secret, shown this once. The old ones keep signing too (every request
    carries both signatures) for `overlap_s` seconds, so receivers can switch over."""
    spec = body or RotateIn()
    now = clock()
    store = SubscriptionStore(redis)
    try:
        secret = await store.rotate_secret(
            sub_id, now, overlap=timedelta(seconds=spec.overlap_s), secret=spec.secret
        )
    except SubscriptionError as e:
        raise _missing(sub_id) from e
    sub = await store.get(sub_id)
    older = [] if sub is None else [s.expires_at for s in sub.secrets[1:] if s.valid_at(now)]
    until = max((t for t in older if t is not None), default=None)
    return SecretRotated(subscription_id=sub_id, secret=secret, previous_valid_until=until)


# -- one-click unsubscribe (RFC 8058) ---------------------------------------------------------
async def _by_token(redis: Any, sub_id: str, token: str) -> Subscription:
    sub = await SubscriptionStore(redis).get(sub_id)
    expected = sub.unsubscribe_token if sub is not None else "-"
    if not hmac.compare_digest(expected.encode(), token.encode()) or sub is None:
        raise _wrong_link(sub_id)
    return sub


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body><h1>Unsubscribe from “{name}”?</h1>
<p>{state}</p>
<form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form></body></html>
"""

_UNSUB: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No subscription has this id and token."},
    422: {"model": Problem, "description": "A parameter is invalid (named in `errors`)."},
}


@router.get(
    "/{sub_id}/unsubscribe",
    response_model=UnsubscribeInfo,
    responses={
        **_UNSUB,
        200: {
            "description": "What a POST to this URL would do (an HTML page when asked for).",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    },
)
async def unsubscribe_page(
    request: Request, sub_id: SubId, token: Token, redis: RedisDep
) -> Response:
    """Shows the subscription the link belongs to; unsubscribes nothing (a GET never does)."""
    sub = await _by_token(redis, sub_id, token)
    info = UnsubscribeInfo(subscription_id=sub.id, name=sub.name, enabled=sub.enabled)
    if "text/html" in request.headers.get("accept", ""):
        state = "Alerts are being sent." if sub.enabled else "It is already disabled."
        action = f"{request.url.path}?{request.url.query}"
        page = _PAGE.format(name=escape(sub.name), state=state, action=escape(action))
        return HTMLResponse(page)
    return JSONResponse(info.model_dump(mode="json"))


def _one_click(content_type: str, body: bytes) -> bool:
    """Whether the body holds ``List-Unsubscribe=One-Click`` (RFC 8058 §3.1)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        msg: Message = message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
        )
        if not msg.is_multipart():
            return False
        for part in msg.get_payload():
            assert isinstance(part, Message)
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                value = part.get_payload(decode=True)
                return isinstance(value, bytes) and value.strip() == b"One-Click"
        return False
    text = body.decode("utf-8", "replace")
    return parse_qs(text.strip(), keep_blank_values=True).get("List-Unsubscribe") == ["One-Click"]


async def _read_capped(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UNSUBSCRIBE_BODY:
            raise invalid("body", f"larger than {MAX_UNSUBSCRIBE_BODY} bytes")
    return body


@router.post(
    "/{sub_id}/unsubscribe",
    response_model=Unsubscribed,
    responses=_UNSUB,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}
                        },
                        "required": ["List-Unsubscribe"],
                    },
                    "example": {"List-Unsubscribe": "One-Click"},
                }
            },
        }
    },
)
async def unsubscribe(
    request: Request, sub_id: SubId, token: Token, redis: RedisDep
) -> Unsubscribed:
    """One-click unsubscribe (RFC 8058): disables the subscription. No API key: the link's
    token is the credential."""
    body = await _read_capped(request)
    await _by_token(redis, sub_id, token)
    if not _one_click(request.headers.get("content-type", ""), body):
        raise invalid("List-Unsubscribe", f"the body must be {ONE_CLICK} (RFC 8058)")

    def disable(s: Subscription) -> Subscription:
        if not s.enabled:
            return s
        return s.model_copy(
            update={"enabled": False, "disabled_reason": "unsubscribed (one-click)"}
        )

    if await SubscriptionStore(redis).update(sub_id, disable) is None:
        raise _wrong_link(sub_id)
    return Unsubscribed(subscription_id=sub_id)
