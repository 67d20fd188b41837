"""Hot reload of the rules file: re-read it when it changes, keep the last good rules.

``RulesWatcher.check()`` is cheap: at most every ``interval_s`` seconds it stats the file,
and only when the modification time or size changed does it read the bytes; only when
their SHA-256 differs from the loaded rules does it compile them. A file that fails to
load is logged with its file, line and rule id, and the previous rules stay in force.

Owns: deciding when to reload and keeping the current Lexicon. Must not: classify, or read
any file but the rules file.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from classifier.lexicon import Lexicon, LexiconError, load_lexicon

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0


class RulesWatcher:
    def __init__(
        self,
        path: Path,
        *,
        lexicon: Lexicon | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.clock = clock
        self.lexicon = lexicon if lexicon is not None else load_lexicon(path)
        self._stamp = self._stat()
        self._checked = clock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def check(self, *, force: bool = False) -> Lexicon | None:
        """The new Lexicon when the file changed since the last load, else None."""
        now = self.clock()
        if not force and now - self._checked < self.interval_s:
            return None
        self._checked = now
        stamp = self._stat()
        if stamp is None or (stamp == self._stamp and not force):
            return None
        self._stamp = stamp
        try:
            content = self.path.read_bytes()
        except OSError as e:
            log.warning("rules file unreadable; keeping the loaded rules", extra={"error": str(e)})
            return None
        if hashlib.sha256(content).hexdigest() == self.lexicon.digest:
            return None  # touched, not changed
        try:
            fresh = load_lexicon(self.path)
        except LexiconError as e:
            log.error("rules file invalid; keeping the loaded rules", extra={"error": str(e)})
            return None
        log.info(
            "rules reloaded",
            extra={"rules_version": fresh.version, "previous": self.lexicon.version},
        )
        self.lexicon = fresh
        return fresh
