"""Fixtures of the core tests: a client as ``make_client`` builds it, and a multiplexed
line on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.connection import make_client
from core.multiplex import Multiplexed


@pytest.fixture
async def client(redis_url, r) -> AsyncIterator[aioredis.Redis]:
    """A client as ``make_client`` builds it, on the flushed test database."""
    made = make_client(redis_url)
    yield made
    await made.aclose()


@pytest.fixture
async def line(client) -> AsyncIterator[Multiplexed]:
    made = Multiplexed(client)
    yield made
    await made.aclose()
