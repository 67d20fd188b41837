"""Sending one signed webhook request, per the Standard Webhooks specification.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

- Headers: ``webhook-id`` (the alert's message id, the same on every retry so receivers can
  dedupe), ``webhook-timestamp`` (integer Unix seconds of *this* attempt) and
  ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
  where ``key`` is the base64-decoded part of the ``whsec_`` secret. Several signatures are
  space-delimited: during a secret rotation we sign with the new and the old secret.
- Only a 2xx is success. A 3xx is a failure and is never followed (a redirect could lead
  the signed payload elsewhere). 410 Gone means "stop sending": the caller disables the
  subscription. 429 and 503 carry Retry-After (RFC 9110 §10.2.3: seconds or an HTTP-date).
- One deadline (15 s by default) covers connecting, sending and reading the reply.

The HTTP transport is a required parameter: production passes the SSRF-guarded transport
(every address a webhook's host resolves to is vetted at connect time, like feed fetches),
tests pass a plain one to reach 127.0.0.1.

Owns: signing, the request, and classifying the reply. Must not: touch Redis, choose retry
times, or know subscriptions.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from types import TracebackType
from typing import Final, Self

import httpx

from core.errors import NewsmonError
from notifier.channels.base import Outcome, SendResult

DEFAULT_TIMEOUT_S: Final = 15.0
USER_AGENT: Final = "newsmon-webhooks/1"
_SECRET_PREFIX: Final = "whsec_"
_DIGITS: Final = re.compile(r"[0-9]+")
_KEEP_BODY: Final = 512  # bytes of a failed reply kept in the attempt's error


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: its base64 part, decoded."""
    encoded = secret.removeprefix(_SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``{id}.{timestamp}.{body}``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    if not secrets:
        raise ValueError("a webhook is never sent unsigned")
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait per Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify(status: int, retry_after: float | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    return Outcome.RETRY  # 3xx (not followed), 4xx, 5xx: the schedule decides when to stop


class WebhookSender:
    """POSTs signed payloads over one shared ``httpx.AsyncClient`` built on ``transport``."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._timeout_s = timeout_s
        self._clock = clock  # wall time for webhook-timestamp (receivers check it: ±5 min)
        self._monotonic = monotonic
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,  # an environment proxy would bypass the SSRF guard
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, msg_id: str, body: bytes, secrets: Sequence[str]) -> SendResult:
        """One attempt. Never raises for the receiver's or the network's faults."""
        timestamp = int(self._clock())
        headers = headers_for(msg_id, timestamp, body, secrets)
        started = self._monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._post(url, headers, body, started)
        except TimeoutError:
            return self._result(
                Outcome.RETRY, None, started, f"no reply within {self._timeout_s:g} s"
            )
        except httpx.TimeoutException as e:
            return self._result(Outcome.RETRY, None, started, f"timeout: {e or type(e).__name__}")
        except httpx.HTTPError as e:
            return self._result(Outcome.RETRY, None, started, f"{type(e).__name__}: {e}")
        except NewsmonError as e:  # the SSRF guard refused the address: do not keep probing
            return self._result(Outcome.FAILED, None, started, f"blocked: {e}")
        except OSError as e:
            return self._result(Outcome.RETRY, None, started, f"{type(e).__name__}: {e}")

    async def _post(
        self, url: str, headers: dict[str, str], body: bytes, started: float
    ) -> SendResult:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            status = response.status_code
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            outcome = classify(status, retry_after)
            error = None
            if outcome is not Outcome.DELIVERED:
                error = f"HTTP {status}"
                if 300 <= status < 400:
                    error += f" (redirect to {response.headers.get('location')!r} not followed)"
                snippet = await _head(response)
                if snippet:
                    error += f": {snippet}"
        finally:
            await response.aclose()
        return self._result(outcome, status, started, error, retry_after)

    def _result(
        self,
        outcome: Outcome,
        status: int | None,
        started: float,
        error: str | None,
        retry_after: float | None = None,
    ) -> SendResult:
        latency = (self._monotonic() - started) * 1000
        return SendResult(outcome, status, round(latency, 3), error, retry_after)


async def _head(response: httpx.Response) -> str:
    """The first bytes of a reply body, for the attempt record."""
    got = b""
    async for chunk in response.aiter_raw():
        got += chunk
        if len(got) >= _KEEP_BODY:
            break
    return got[:_KEEP_BODY].decode("utf-8", "replace").strip()
