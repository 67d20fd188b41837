"""API keys: created, listed, revoked and verified in Redis, stored hashed.

Layout:
- ``nm:apikeys`` (hash): key id → ``ApiKey`` JSON (name, scopes, SHA-256 of the token,
  created and revoked times). The token itself is shown once, at creation, never stored.
- ``nm:apikeys:active`` (set): ids of the keys not revoked; empty means "no key configured"
  (the API then serves everyone, and the runner keeps it on a loopback address).

A token reads ``nmk_{id}_{secret}``: the id finds the record in one HGET, the secret's 256
random bits make a plain SHA-256 a safe hash (no password stretching needed), compared in
constant time.

Scopes: ``read`` (every GET, and dry-run classification) and ``admin`` (every change;
implies ``read``).

Owns: key records and their verification. Must not: know HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from core import keys

APIKEYS: Final = f"{keys.PREFIX}:apikeys"
APIKEYS_ACTIVE: Final = f"{keys.PREFIX}:apikeys:active"
TOKEN_PREFIX: Final = "nmk_"

Scope = Literal["read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("read", "admin")


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    scopes: list[Scope]
    hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: Scope) -> bool:
        return self.revoked_at is None and (scope in self.scopes or "admin" in self.scopes)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a token names, or None when it is not shaped like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


class ApiKeys:
    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis

    async def create(self, name: str, scopes: list[Scope], *, now: datetime) -> tuple[ApiKey, str]:
        """A new key and its token (shown once)."""
        unknown = set(scopes) - set(SCOPES)
        if not scopes or unknown:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}, got {scopes!r}")
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=name,
            scopes=sorted(set(scopes)),
            hash=_digest(token),
            created_at=now,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(APIKEYS, key_id, key.model_dump_json())
            pipe.sadd(APIKEYS_ACTIVE, key_id)
            await pipe.execute()
        return key, token

    async def list(self) -> list[ApiKey]:
        raw = await self.redis.hgetall(APIKEYS)
        found = (ApiKey.model_validate_json(v) for v in raw.values())
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, *, now: datetime) -> bool:
        """Revoke a key; False when unknown or already revoked."""
        raw = await self.redis.hget(APIKEYS, key_id)
        if raw is None:
            return False
        key = ApiKey.model_validate_json(raw)
        if key.revoked_at is not None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(APIKEYS, key_id, key.model_copy(update={"revoked_at": now}).model_dump_json())
            pipe.srem(APIKEYS_ACTIVE, key_id)
            await pipe.execute()
        return True

    async def active_count(self) -> int:
        n: int = await self.redis.scard(APIKEYS_ACTIVE)
        return n

    async def lookup(self, token: str | None) -> tuple[int, ApiKey | None]:
        """In one round trip: how many keys are active, and the valid, unrevoked key
        ``token`` is (None when absent, malformed, unknown, revoked or wrong)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in lookup_reads(token):
                pipe.execute_command(*command)
            replies = await pipe.execute()
        return lookup_reply(token, replies)


def lookup_reads(token: str | None) -> list[tuple[str, ...]]:
    """``lookup``'s read commands, ``(command, key, *args)`` (for a caller sending them
    with its own: see core.store.Guard)."""
    key_id = key_id_of(token) if token else None
    if key_id is None:
        return [("SCARD", APIKEYS_ACTIVE)]
    return [("SCARD", APIKEYS_ACTIVE), ("HGET", APIKEYS, key_id)]


def lookup_reply(token: str | None, replies: list[Any]) -> tuple[int, ApiKey | None]:
    """``lookup``'s answer from the replies to ``lookup_reads``' commands."""
    active = int(replies[0])
    if token is None or len(replies) < 2 or replies[1] is None:
        return active, None
    key = ApiKey.model_validate_json(replies[1])
    if key.revoked_at is not None or not hmac.compare_digest(key.hash, _digest(token)):
        return active, None
    return active, key
