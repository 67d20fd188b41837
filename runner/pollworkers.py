"""Poll worker processes: the polls of one ingestor (or one ``newsmon poll``) run in
``NEWSMON_POLL_WORKERS`` processes, one per core by default.

Why: a poll is CPU work in one Python process (HTTP, parsing, building and storing the
items; parsing alone is most of a first poll), so one process polls on one core however many
feeds are due. The schedule stays where it was: the ingestor's ``Scheduler`` ticks in its
own process, keeps its one in-flight set and concurrency limit, and hands each poll to the
least busy worker through ``PollWorkers.poll``. A worker (``runner.pollworker``) runs an
ordinary ``Poller`` on its own event loop, Redis client and HTTP client, parses inline, and
sends the report back. Leases and the due set in Redis keep every process, here or on other
machines, from polling one feed at once.

The channel to a worker is a socket pair; a frame is a 4-byte length and a pickle (both
ends are this program, and no one else holds the socket). Parent → worker: the settings
first, then lists of ``("poll", n, feed_id, due_by)`` and at last ``("stop", grace_s)``.
Worker → parent: ``("ready",)``, then lists of ``("report", n, PollReport)`` or
``("crashed", n, traceback)``. The messages of one event-loop turn go in one frame (one
system call each way, whatever the number of polls started or ended in that turn).

Failures: a poll that raised in a worker raises ``PollCrashed`` here, with the worker's
traceback. A worker that dies fails the polls it had in hand with ``WorkerDied`` (their
feeds stay due and their leases expire: the next tick polls them again) and is started
again, with a growing delay while it keeps failing to start. A worker whose parent dies
reads the end of its channel and stops.

Owns: the worker processes and the channel. Must not: decide anything about polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import struct
import sys
import zlib
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

from core.errors import NewsmonError
from core.settings import Settings
from ingestor.poller import PollReport

log = logging.getLogger(__name__)

_LENGTH: Final = struct.Struct(">I")
START_TIMEOUT_S: Final = 60.0  # a worker imports the ingestor and connects to Redis
RESTART_DELAY_MAX_S: Final = 60.0
EXIT_WAIT_S: Final = 5.0  # for a worker to exit once its channel has ended
SLACK: Final = 4  # polls in hand by which a feed's own worker may exceed the least busy


class PollWorkerError(NewsmonError):
    """A poll could not be carried out by a worker process."""


class PollCrashed(PollWorkerError):
    """The poll raised in the worker (a lost Redis connection, a bug); carries its traceback."""


class WorkerDied(PollWorkerError):
    """The worker process ended (or none was running) before the poll's report came back."""


class WorkerStartError(PollWorkerError):
    """A worker process did not start (it exited, or did not say it was ready in time)."""


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the channel."""
    try:
        (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


def read_frame_blocking(sock: socket.socket) -> Any:
    """The next message from a blocking socket (a worker's first, before its event loop);
    ``EOFError`` if the channel ends first."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("the channel ended mid-message")
            data += chunk
        return data

    (size,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return pickle.loads(exactly(size))


class Outbox:
    """Messages to send on a channel, written as one frame (a list) at the end of the
    event loop's turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.queued: list[tuple[Any, ...]] = []

    def send(self, message: tuple[Any, ...]) -> None:
        if not self.queued:
            asyncio.get_running_loop().call_soon(self.flush)
        self.queued.append(message)

    def flush(self) -> None:
        batch, self.queued = self.queued, []
        if batch and not self.writer.is_closing():
            self.writer.write(frame(batch))


class _Worker:
    """One worker process, its channel, and the polls it has in hand."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.pending: dict[int, asyncio.Future[PollReport]] = {}
        self.numbers = itertools.count()
        self.alive = False
        self.reading: asyncio.Task[None] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.outbox: Outbox | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def spawn(cls, settings: Settings, timeout_s: float) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runner.pollworker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = cls(proc, ours)
        try:
            await asyncio.wait_for(worker._handshake(settings), timeout_s)
        except BaseException as e:
            worker.kill()
            worker.close_channel()
            if isinstance(e, TimeoutError):
                raise WorkerStartError(
                    f"poll worker {proc.pid} not ready in {timeout_s:g} s"
                ) from e
            raise
        return worker

    async def _handshake(self, settings: Settings) -> None:
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)
        self.writer.write(frame(settings))
        hello = await read_frame(self.reader)
        if hello != ("ready",):
            code = await self.proc.wait()
            raise WorkerStartError(f"poll worker {self.pid} exited at start (code {code})")
        self.outbox = Outbox(self.writer)
        self.alive = True

    def start_reading(self, on_exit: Any) -> None:
        self.reading = asyncio.create_task(self._read(on_exit), name=f"poll-worker-{self.pid}")

    async def poll(self, feed_id: str, due_by: datetime | None) -> PollReport:
        assert self.outbox is not None
        n = next(self.numbers)
        done: asyncio.Future[PollReport] = asyncio.get_running_loop().create_future()
        self.pending[n] = done
        try:
            self.outbox.send(("poll", n, feed_id, due_by))
            return await done
        finally:
            self.pending.pop(n, None)

    async def _read(self, on_exit: Any) -> None:
        assert self.reader is not None
        try:
            while (batch := await read_frame(self.reader)) is not None:
                for kind, n, payload in batch:
                    done = self.pending.get(n)
                    if done is None or done.done():
                        continue  # its caller gave up (cancelled): the report is dropped
                    if kind == "report":
                        done.set_result(payload)
                    else:
                        done.set_exception(PollCrashed(f"in poll worker {self.pid}:\n{payload}"))
        except (OSError, pickle.UnpicklingError, ValueError) as e:
            log.error("poll worker channel broken", extra={"pid": self.pid, "error": str(e)})
        finally:
            self.alive = False
            code = await self._exit_code()
            for done in self.pending.values():
                if not done.done():
                    done.set_exception(
                        WorkerDied(f"poll worker {self.pid} exited (code {code}) mid-poll")
                    )
            self.close_channel()
            on_exit(self, code)

    async def _exit_code(self) -> int:
        """The worker ended its channel: it is exiting (or broken); wait, then make sure."""
        try:
            return await asyncio.wait_for(self.proc.wait(), EXIT_WAIT_S)
        except TimeoutError:
            self.kill()
            return await self.proc.wait()

    def stop(self, grace_s: float) -> None:
        """Ask the worker to finish the polls in hand (within ``grace_s``) and exit."""
        if self.outbox is not None:
            self.outbox.send(("stop", grace_s))

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def close_channel(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:
            self.sock.close()


class PollWorkers:
    """``count`` worker processes behind one ``poll(feed_id, due_by=...)`` (a ``Polls``).

    ``settings.redis_url`` must name the Redis every worker connects to (the embedded
    server's URL when the parent runs it). Use as ``async with``, or ``start``/``close``.
    """

    def __init__(
        self, settings: Settings, count: int, *, start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        if count < 1:
            raise ValueError("PollWorkers needs at least one worker")
        if not settings.redis_url:
            raise ValueError("poll workers need settings.redis_url: the Redis they share")
        self.settings = settings
        self.count = count
        self.start_timeout_s = start_timeout_s
        self.workers: list[_Worker] = []
        self.closing = False
        self._restarts: set[asyncio.Task[None]] = set()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(w.pid for w in self.workers if w.alive)

    async def start(self) -> None:
        spawned = await asyncio.gather(
            *(_Worker.spawn(self.settings, self.start_timeout_s) for _ in range(self.count)),
            return_exceptions=True,
        )
        self.workers = [w for w in spawned if isinstance(w, _Worker)]
        failed = [e for e in spawned if isinstance(e, BaseException)]
        for worker in self.workers:
            worker.start_reading(self._exited)
        if failed:
            await self.close(grace_s=0)
            raise failed[0]
        log.info("poll workers started", extra={"pids": list(self.pids)})

    async def poll(self, feed_id: str, *, due_by: datetime | None = None) -> PollReport:
        return await self._worker_for(feed_id).poll(feed_id, due_by)

    def _worker_for(self, feed_id: str) -> _Worker:
        """The feed's own worker (by a hash of its id), unless that one has ``SLACK`` more
        polls in hand than the least busy: a feed polled by the same worker each time finds
        its state already parsed there (``FeedRegistry``'s cache) and its host's connection
        kept alive, while a slow feed or host cannot hold up the others."""
        alive = [w for w in self.workers if w.alive]
        if not alive:
            raise WorkerDied("no poll worker is running (they are being restarted)")
        own = alive[zlib.crc32(feed_id.encode()) % len(alive)]
        least = min(alive, key=lambda w: len(w.pending))
        return own if len(own.pending) <= len(least.pending) + SLACK else least

    def _exited(self, worker: _Worker, code: int) -> None:
        if self.closing:
            return
        log.error(
            "poll worker exited; starting another",
            extra={"pid": worker.pid, "code": code, "lost_polls": len(worker.pending)},
        )
        task = asyncio.create_task(self._replace(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self, dead: _Worker) -> None:
        delay = 1.0
        while not self.closing:
            try:
                worker = await _Worker.spawn(self.settings, self.start_timeout_s)
            except (OSError, PollWorkerError) as e:
                log.error(
                    "poll worker failed to start; retrying",
                    extra={"error": str(e), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX_S)
                continue
            if self.closing:  # closed while it started
                worker.kill()
                worker.close_channel()
                await worker.proc.wait()
                return
            worker.start_reading(self._exited)
            self.workers = [worker if w is dead else w for w in self.workers]
            log.info("poll worker started", extra={"pid": worker.pid, "replaces": dead.pid})
            return

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop every worker: each finishes the polls in hand within ``grace_s`` (their
        reports still arrive), then exits; one that does not is killed."""
        self.closing = True
        for task in list(self._restarts):
            task.cancel()
        workers = [w for w in self.workers if w.proc.returncode is None]
        for worker in workers:
            worker.stop(grace_s)
        try:
            # The worker's own grace, plus time to close its connections and exit.
            await asyncio.wait_for(
                asyncio.gather(*(w.proc.wait() for w in workers)), timeout=grace_s + EXIT_WAIT_S
            )
        except TimeoutError:
            log.warning(
                "poll workers did not stop in time; killing them",
                extra={"pids": [w.pid for w in workers if w.proc.returncode is None]},
            )
        finally:
            for worker in workers:
                worker.kill()
        readers = [w.reading for w in self.workers if w.reading is not None]
        await asyncio.gather(*readers, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def worker_count(settings: Settings) -> int:
    """``NEWSMON_POLL_WORKERS``, or one per core when it is unset."""
    if settings.poll_workers is not None:
        return settings.poll_workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
