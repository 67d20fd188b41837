"""Fetching one feed URL over HTTP, safely: the ingestor's only HTTP client.

Owns: one shared ``httpx.AsyncClient``; conditional GET (RFC 9110 §13); content decoding with
a cap on the *decoded* size; redirects followed by hand (at most 5, loops refused, permanent
ones reported); mapping 304, 410, 429/503 and other statuses to results or errors; a connect
timeout plus an overall deadline per fetch; and the SSRF guard at connect time
(``GuardedBackend``: every address a host resolves to is vetted by ``ingestor.guard`` and the
socket is opened to the vetted address itself).

Must not: parse feeds, decide when to poll next, store etags, or touch Redis. It takes a URL
and the validators the caller stored, and returns a ``FetchResult`` or raises a ``FetchError``.

Errors (they will move to ``core/errors.py``)::

    NewsmonError
    └── FetchError           carries .url (the URL asked for) and a precise message
        ├── BadURL           not an http(s) URL, or a redirect to one
        ├── Blocked          the host resolves to an address the SSRF guard refuses
        ├── FetchTimeout     connect timeout, or the per-fetch deadline passed
        ├── BodyTooLarge     the decoded body exceeds max_bytes
        ├── BadEncoding      the body cannot be decoded (corrupt gzip, unknown coding)
        ├── TooManyRedirects more than max_redirects hops, or a loop
        ├── HTTPStatus       a 4xx/5xx other than 410, 429, 503
        ├── RetryLater       429 or 503, with Retry-After in seconds when given
        └── NetworkError     anything else the connection did wrong
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Final, Protocol, Self

import brotli  # type: ignore[import-untyped]
import httpx

from core.errors import NewsmonError
from core.http import Blocked as ConnectBlocked
from core.http import GuardedBackend
from core.http11 import Http11Transport

MiB: Final = 1024 * 1024
DEFAULT_MAX_BYTES: Final = 15 * MiB
DEFAULT_MAX_REDIRECTS: Final = 5
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_DEADLINE: Final = 30.0
FEED_ACCEPT: Final = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING: Final = "gzip, deflate, br"
_PERMANENT: Final = frozenset({301, 308})  # RFC 9110 §15.4.2, §15.4.9
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_PIECE: Final = 64 * 1024  # most decoded bytes one decompress call may produce
_DIGITS: Final = re.compile(r"[0-9]+")


def _user_agent() -> str:
    try:
        ours = version("newsmon")
    except PackageNotFoundError:
        ours = "dev"
    return f"newsmon/{ours} (+https://github.com/newsmon; feed monitor)"


USER_AGENT: Final = _user_agent()


# --- errors -------------------------------------------------------------------------------


class FetchError(NewsmonError):
    """A fetch failed. ``url`` is the URL the caller asked for (the feed's stored URL)."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.message = message


class BadURL(FetchError):
    """Not an absolute http or https URL (or a redirect pointed to one)."""


class Blocked(FetchError):
    """The SSRF guard refused to connect: ``host`` resolved to the forbidden ``address``."""

    def __init__(self, url: str, host: str, address: str, reason: str) -> None:
        super().__init__(url, f"refused to connect to {host} ({address}): {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class FetchTimeout(FetchError):
    """Connecting took longer than the connect timeout, or the whole fetch than its deadline."""


class BodyTooLarge(FetchError):
    """The decoded body (or its declared Content-Length) exceeds the cap."""

    def __init__(self, url: str, message: str, limit: int) -> None:
        super().__init__(url, message)
        self.limit = limit


class BadEncoding(FetchError):
    """The body's Content-Encoding is unknown or its bytes do not decode."""


class TooManyRedirects(FetchError):
    """More redirects than allowed, or a redirect back to a URL already visited."""


class HTTPStatus(FetchError):
    """The server answered with an error status we do not map to a result (``code``, alias
    ``status``)."""

    def __init__(self, url: str, code: int, message: str | None = None) -> None:
        super().__init__(url, message or f"HTTP {code}")
        self.code = self.status = code


class RetryLater(FetchError):
    """429 or 503: come back later; ``retry_after`` seconds from now when the server said."""

    def __init__(self, url: str, code: int, retry_after: float | None) -> None:
        after = "no Retry-After" if retry_after is None else f"retry after {retry_after:g} s"
        super().__init__(url, f"HTTP {code}, {after}")
        self.code = self.status = code
        self.retry_after = retry_after


class NetworkError(FetchError):
    """The connection failed: refused, reset, TLS failure, protocol error, name not found."""


# --- result -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch found. ``body`` is None for 304 and 410."""

    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes | None = None
    not_modified: bool = False
    gone: bool = False
    # The final URL when every hop was 301/308: the caller should store it as the feed's URL.
    permanent_redirect: str | None = None
    elapsed_s: float = 0.0
    etag: str | None = None
    last_modified: str | None = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (a Unix time) per a Retry-After value, or None.

    RFC 9110 §10.2.3: either a non-negative integer of seconds or an HTTP-date, in any of the
    three formats a recipient must accept (§5.6.7: IMF-fixdate, RFC 850, asctime); a date in
    the past means "now" (0). Anything else is ignored.
    """
    if value is None:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP-dates are always GMT (RFC 9110 §5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


# --- bounded content decoding ---------------------------------------------------------------
# httpx's own decoders inflate each network chunk in one call: a 64 KiB chunk of a gzip bomb
# becomes ~64 MiB before anyone can count it, and brotli reaches far higher ratios. We read the
# raw bytes and decode them ourselves, at most _PIECE bytes per call, so the cap holds.


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip (RFC 1952) or deflate. HTTP "deflate" is the zlib format (RFC 9110 §8.4.1.2), but
    some servers send raw deflate; like browsers, fall back to raw if the first bytes fail."""

    def __init__(self, wbits: int, raw_fallback: bool = False) -> None:
        self._d = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._d.decompress(data, _PIECE)
            except zlib.error:
                if self._started or not self._raw_fallback:
                    raise
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                self._raw_fallback = False
                continue
            self._started = True
            data = self._d.unconsumed_tail
            if out:
                yield out
            # A full piece may leave output pending inside zlib even with no input left.
            if not data and len(out) < _PIECE:
                return

    def flush(self) -> Iterator[bytes]:
        out = self._d.flush()  # what is left fits in zlib's 32 KiB window
        if out:
            yield out


class _BrotliDecoder:
    """br (RFC 7932), with brotli's output limit so one call cannot balloon."""

    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        out: bytes = self._d.process(data, output_buffer_limit=_PIECE)
        if out:
            yield out
        # brotli holds more output back until asked with empty input.
        while not self._d.can_accept_more_data():
            out = self._d.process(b"", output_buffer_limit=_PIECE)
            if not out:
                return
            yield out

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Chain:
    """Decoders in decoding order (the reverse of Content-Encoding's, RFC 9110 §8.4)."""

    def __init__(self, decoders: Sequence[_Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, (data,))

    def flush(self) -> Iterator[bytes]:
        for i, decoder in enumerate(self._decoders):
            yield from self._through(i + 1, decoder.flush())

    def _through(self, start: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        if start == len(self._decoders):
            yield from pieces
            return
        for piece in pieces:
            yield from self._through(start + 1, self._decoders[start].feed(piece))


def _decoder_for(content_encoding: str) -> _Chain | str:
    """The decoder chain for a Content-Encoding value, or the coding we cannot decode."""
    decoders: list[_Decoder] = []
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):  # x-gzip: RFC 9110 §8.4.1.3
            decoders.append(_ZlibDecoder(16 + zlib.MAX_WBITS))
        elif coding == "deflate":
            decoders.append(_ZlibDecoder(zlib.MAX_WBITS, raw_fallback=True))
        elif coding == "br":
            decoders.append(_BrotliDecoder())
        else:
            return coding
    return _Chain(decoders)


# --- the fetcher ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Hop:
    """Where a fetch has got to: the URL in flight and whether all hops were permanent."""

    url: httpx.URL
    visited: set[str]
    redirects: int = 0
    permanent: bool = True


class _NoCookies(httpx.Cookies):
    """A client's cookies that never keep one (nor send one: there are none)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


class Fetcher:
    """Fetches feed URLs over one shared ``httpx.AsyncClient``.

    ``client`` (not closed by us) or ``transport`` may be injected; by default the client is
    built over ``core.http11.Http11Transport`` with the SSRF guard on unless
    ``allow_private``. An
    injected client or transport brings its own guard, or none. ``clock`` is the Unix time
    used to turn a Retry-After date into seconds.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_private: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.time,
        user_agent: str = USER_AGENT,
    ) -> None:
        if client is not None and transport is not None:
            raise ValueError("pass a client or a transport, not both")
        self._timeout = httpx.Timeout(deadline, connect=connect_timeout)
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(
                transport=transport or Http11Transport(GuardedBackend(allow_private=allow_private)),
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
            )
            # Fetches stay independent: no cookie is kept, so none from one feed is sent to
            # another (and no response pays for httpx's cookie extraction: ~10 % of a 304).
            client._cookies = _NoCookies()
        self._client = client
        # Every request's fixed headers (the client's own defaults under ours) and timeouts,
        # merged once: httpx's build_request merges them again on every call (~40 µs, a
        # sixth of a 304's CPU).
        fixed = httpx.Headers(client.headers)
        fixed.update({"accept-encoding": ACCEPT_ENCODING, "user-agent": user_agent})
        self._headers = dict(fixed.items())
        self._extensions = {"timeout": self._timeout.as_dict()}
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._deadline = deadline
        self._clock = clock

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = FEED_ACCEPT,
    ) -> FetchResult:
        """GET ``url`` (conditionally when given the stored validators), following redirects."""
        start = _parse_url(url, url)
        hop = _Hop(start, visited={str(start)})
        headers = {**self._headers, "accept": accept}
        # RFC 9110 §13.1.1, §13.1.3; a server that knows both must prefer If-None-Match.
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._deadline):
                return await self._follow(url, hop, headers, started, etag, last_modified)
        except TimeoutError as e:
            raise FetchTimeout(
                url, f"no complete response within {self._deadline:g} s (at {hop.url})"
            ) from e

    async def _follow(
        self,
        url: str,
        hop: _Hop,
        headers: dict[str, str],
        started: float,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResult:
        while True:
            # Our timeouts even on an injected client; redirects are ours to follow; no
            # cookies (see __init__).
            request = httpx.Request("GET", hop.url, headers=headers, extensions=self._extensions)
            with _wrapped(url, hop):
                response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    self._next_hop(url, hop, response.status_code, location)
                    continue
                result = await self._conclude(url, hop, response, started)
            finally:
                await _release(response)
            if result.not_modified:  # a 304 may omit validators that did not change
                return _with_validators(result, etag, last_modified)
            return result

    def _next_hop(self, url: str, hop: _Hop, status: int, location: str) -> None:
        try:
            target = hop.url.join(location)  # relative references allowed, RFC 9110 §10.2.2
        except httpx.InvalidURL as e:
            raise BadURL(url, f"redirect from {hop.url} to unusable Location {location!r}") from e
        _parse_url(url, str(target))
        hop.redirects += 1
        if hop.redirects > self._max_redirects:
            raise TooManyRedirects(
                url, f"more than {self._max_redirects} redirects (the last to {target})"
            )
        if str(target) in hop.visited:
            raise TooManyRedirects(url, f"redirect loop: {hop.url} sends back to {target}")
        hop.visited.add(str(target))
        hop.permanent = hop.permanent and status in _PERMANENT
        hop.url = target

    async def _conclude(
        self, url: str, hop: _Hop, response: httpx.Response, started: float
    ) -> FetchResult:
        status = response.status_code
        body: bytes | None = None
        if status in (429, 503):
            after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            raise RetryLater(url, status, after)
        if status >= 400 and status != 410:
            raise HTTPStatus(url, status, f"HTTP {status} from {hop.url}")
        if 300 <= status < 400 and status != 304:
            raise HTTPStatus(url, status, f"HTTP {status} without a usable Location")
        if 200 <= status < 300:
            with _wrapped(url, hop):
                body = await self._read_body(url, response)
        return FetchResult(
            url=str(hop.url),
            status=status,
            headers=dict(response.headers.items()),  # httpx lower-cases and joins repeats
            body=body,
            not_modified=status == 304,
            gone=status == 410,
            permanent_redirect=str(hop.url) if hop.redirects and hop.permanent else None,
            elapsed_s=time.monotonic() - started,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )

    async def _read_body(self, url: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        # Compressed or not, a body declared larger than the cap is not worth a byte.
        if _DIGITS.fullmatch(declared) and int(declared) > self._max_bytes:
            raise BodyTooLarge(
                url,
                f"Content-Length {declared} exceeds the {self._max_bytes}-byte limit",
                self._max_bytes,
            )
        decoder = _decoder_for(response.headers.get("content-encoding", ""))
        if isinstance(decoder, str):
            raise BadEncoding(url, f"unsupported Content-Encoding {decoder!r}")
        # Pieces joined once at the end: a growing bytearray reallocates and copies (and,
        # past malloc's mmap threshold, faults in fresh pages) several times per body.
        body: list[bytes] = []
        size = 0
        try:
            async for raw in response.aiter_raw():
                size = self._append(url, body, size, decoder.feed(raw))
            self._append(url, body, size, decoder.flush())
        except (zlib.error, brotli.error) as e:
            raise BadEncoding(url, f"corrupt {response.headers['content-encoding']} body") from e
        return b"".join(body)

    def _append(self, url: str, body: list[bytes], size: int, pieces: Iterable[bytes]) -> int:
        for piece in pieces:
            size += len(piece)
            if size > self._max_bytes:
                raise BodyTooLarge(
                    url,
                    f"decoded body exceeds the {self._max_bytes}-byte limit",
                    self._max_bytes,
                )
            body.append(piece)
        return size


@functools.lru_cache(maxsize=8192)
def _url(text: str) -> httpx.URL:
    """httpx's parse of a URL (immutable), kept for the next poll of the same feed: parsing
    was a tenth of a 304's CPU."""
    return httpx.URL(text)


def _parse_url(url: str, candidate: str) -> httpx.URL:
    """``candidate`` as an absolute http(s) URL with a host, else BadURL (about ``url``)."""
    try:
        parsed = _url(candidate)
    except httpx.InvalidURL as e:
        raise BadURL(url, f"invalid URL {candidate!r}: {e}") from e
    if parsed.scheme not in ("http", "https") or not parsed.host:
        where = "" if candidate == url else f" (redirected to {candidate})"
        raise BadURL(url, f"only absolute http and https URLs are fetched{where}")
    return parsed


def _with_validators(result: FetchResult, etag: str | None, modified: str | None) -> FetchResult:
    return replace(
        result,
        etag=result.etag or etag,
        last_modified=result.last_modified or modified,
    )


@contextmanager
def _wrapped(url: str, hop: _Hop) -> Iterator[None]:
    """httpx's errors (and the backend's Blocked) as FetchErrors about ``url``."""
    at = "" if str(hop.url) == url else f" (at {hop.url})"
    try:
        yield
    except ConnectBlocked as e:  # the backend's refusal, about the feed's URL
        raise Blocked(url, e.host, e.address, e.reason + at) from e
    except httpx.TimeoutException as e:
        raise FetchTimeout(url, f"{type(e).__name__}: {str(e) or 'timed out'}{at}") from e
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise BadURL(url, f"{e}{at}") from e
    except httpx.HTTPError as e:
        raise NetworkError(url, f"{type(e).__name__}: {e}{at}") from e


# A redirect's or an error's body up to this size is read (raw, not decoded) so that its
# connection can serve the next request; a larger or unsized one is dropped with it.
DRAIN_MAX = 64 * 1024


async def _release(response: httpx.Response) -> None:
    """Close ``response``, keeping its connection when that is cheap.

    httpcore reuses a connection only once the response has been read to its end; closing
    one unread (even a 304, which has no body) closes the connection, and the next request
    to that host pays a new handshake. So a 304 is read, and a small declared body (a
    redirect's, an error's; ``DRAIN_MAX``) drained raw. It runs within the fetch deadline.
    """
    try:
        if not response.is_stream_consumed:
            length = response.headers.get("content-length", "")
            if response.status_code == 304 or (length.isdigit() and int(length) <= DRAIN_MAX):
                async for _chunk in response.aiter_raw():
                    pass
    except httpx.HTTPError:
        pass  # the connection is closed below either way
    finally:
        await response.aclose()
