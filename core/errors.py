"""The one error tree of newsmon. Every error we raise on purpose is a ``NewsmonError``.

    NewsmonError
    ├── SettingsError        a setting is missing or invalid (start-up refuses to run)
    ├── RedisUnavailable     Redis cannot be reached or the embedded server cannot start
    ├── EventError           an event cannot be encoded or decoded
    │   └── UnknownEvent     an entry's type or schema version is not one we know
    ├── StoreError           the item store refused a read or write
    │   └── BadCursor        a pagination cursor is malformed
    ├── Blocked              (core.http) the SSRF guard refused to connect to an address
    ├── SubscriptionError    (core.subscriptions) a subscription is invalid or unknown
    ├── FeedsFileError       (ingestor.feeds) the feeds YAML file is invalid
    ├── FeedParseError       (ingestor.parser) a body is not a feed we can read
    └── FetchError           (ingestor.fetcher) a fetch failed: BadURL, Blocked,
                             FetchTimeout, BodyTooLarge, TooManyRedirects, HTTPStatus,
                             RetryLater, NetworkError

Errors specific to one service are defined in that service and subclass ``NewsmonError``;
``ingestor.fetcher.Blocked`` is the ``FetchError`` the fetcher raises for ``core.http.Blocked``.

Library errors are wrapped at the boundary with ``raise … from e`` and carry their context
(the setting name, the stream message id, the item id).
"""

from __future__ import annotations


class NewsmonError(Exception):
    """Base of every error newsmon raises on purpose."""


class SettingsError(NewsmonError):
    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"invalid setting {setting}: {problem}")
        self.setting = setting
        self.problem = problem


class RedisUnavailable(NewsmonError):
    """Redis cannot be reached, or the embedded server failed to start."""


class EventError(NewsmonError):
    """An event could not be encoded or decoded."""


class UnknownEvent(EventError):
    """An entry names an event type or version this build does not know."""


class StoreError(NewsmonError):
    """The item store refused a read or a write."""


class BadCursor(StoreError):
    """A pagination cursor is not one the store issued."""
