"""A poll worker process: ``python -m runner.pollworker FD``, started by
``runner.pollworkers.PollWorkers`` (see there for the channel on socket ``FD``).

It reads the settings, connects to Redis, builds a ``Poller`` (parsing inline: this process
does nothing else) and polls each feed it is sent, concurrently, sending each report back.
On ``("stop", grace_s)``, on the end of its channel (its parent is gone) or on SIGTERM, it
takes no more polls, gives the ones in hand ``grace_s`` to finish, and exits. SIGINT is
ignored: Ctrl-C reaches the whole process group, and the parent stops its workers itself.

Owns: that loop. Must not: schedule (the parent does) or decide anything about a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import traceback
from typing import Any

from core.connection import make_client
from core.logs import log_context, setup_logging
from core.settings import Settings
from ingestor.poller import Poller
from runner.loops import event_loop_for, run_async, tune_gc_for_serving
from runner.polling import make_fetcher, make_poller
from runner.pollworkers import Outbox, frame, read_frame, read_frame_blocking

log = logging.getLogger("runner.pollworker")  # not "__main__": it runs with -m

DEFAULT_GRACE_S = 5.0


def _read_settings(sock: socket.socket) -> Settings:
    """The first message, read before the event loop starts."""
    try:
        settings = read_frame_blocking(sock)
    except EOFError:
        raise SystemExit("poll worker: the channel ended before the settings came") from None
    if not isinstance(settings, Settings):
        raise SystemExit("poll worker: the first message is not the settings")
    return settings


class _Worker:
    def __init__(self, poller: Poller, writer: asyncio.StreamWriter) -> None:
        self.poller = poller
        self.writer = writer
        self.outbox = Outbox(writer)
        self.polls: set[asyncio.Task[None]] = set()

    async def take(self, reader: asyncio.StreamReader) -> float:
        """Start a poll for each request until told to stop; return the grace to give."""
        while (batch := await read_frame(reader)) is not None:
            for message in batch:
                if message[0] == "stop":
                    return float(message[1])
                _, n, feed_id, due_by = message
                task = asyncio.create_task(self._poll(n, feed_id, due_by))
                self.polls.add(task)
                task.add_done_callback(self.polls.discard)
        return DEFAULT_GRACE_S  # the parent is gone

    async def _poll(self, n: int, feed_id: str, due_by: Any) -> None:
        try:
            reply: tuple[Any, ...] = ("report", n, await self.poller.poll(feed_id, due_by=due_by))
        except Exception:
            reply = ("crashed", n, traceback.format_exc())
        self.outbox.send(reply)

    async def finish(self, grace_s: float) -> None:
        log.info("poll worker stopping", extra={"grace_s": grace_s, "in_hand": len(self.polls)})
        if self.polls:
            _, late = await asyncio.wait(self.polls, timeout=grace_s)
            for task in late:  # their leases expire; the feeds are simply due again
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.outbox.flush()
        with contextlib.suppress(ConnectionError):  # the parent may be gone
            await self.writer.drain()


async def _serve(settings: Settings, sock: socket.socket) -> None:
    assert settings.redis_url, "the parent names the Redis to use"
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    reader, writer = await asyncio.open_connection(sock=sock)
    redis: Any = make_client(settings.redis_url)
    try:
        async with make_fetcher(settings) as fetcher:
            worker = _Worker(make_poller(settings, redis, fetcher, parse_inline=True), writer)
            tune_gc_for_serving()
            writer.write(frame(("ready",)))
            taking = asyncio.create_task(worker.take(reader))
            stopped = asyncio.create_task(terminated.wait())
            await asyncio.wait({taking, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if taking.done():
                grace = taking.result()
            else:
                taking.cancel()
                grace = DEFAULT_GRACE_S
            await worker.finish(grace)
    finally:
        await redis.aclose()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    settings = _read_settings(sock)
    setup_logging(settings.log_level, settings.log_format)
    with log_context(poll_worker=os.getpid()):
        run_async(_serve(settings, sock), event_loop_for(("ingestor",), settings.event_loop))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
