"""Every error restconnect raises.

The tree::

    RestConnectError
    ├── SpecError (also ValueError)        a connector, job or dataset file is wrong
    ├── CredentialsMissing                 a credential field has no value
    ├── AuthError                          the API or a provider refused credentials
    │   └── TokenRefreshError              a token could not be renewed
    ├── TransportError                     no HTTP response: connection, TLS, timeout
    ├── HTTPStatusError                    the API answered with an error status
    │   └── RateLimitError                 the API asked us to wait longer than allowed
    ├── ResponseError                      a 2xx response that cannot be read
    ├── PaginationError                    pagination would loop or cannot continue
    ├── CacheError                         the cache or a cassette cannot answer
    └── ExtractError                       an extract job could not finish

    RestConnectWarning (a UserWarning)     a result the user should look at:
                                           values lost, nothing matched

Messages never hold a secret: URLs are redacted and bodies are cut short
before they are put in a message.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

__all__ = [
    "AuthError",
    "CacheError",
    "CredentialsMissing",
    "ExtractError",
    "HTTPStatusError",
    "PaginationError",
    "RateLimitError",
    "ResponseError",
    "RestConnectError",
    "RestConnectWarning",
    "SpecError",
    "TokenRefreshError",
    "TransportError",
    "show_warning",
]


class RestConnectWarning(UserWarning):
    """A result worth a look: values that did not convert, a join with no match.

    Shown once per place by Python's default filter, in scripts and notebooks
    alike; ``warnings.simplefilter("error", RestConnectWarning)`` turns them
    into errors.
    """


def show_warning(message: str) -> None:
    """Show ``message`` as a :class:`RestConnectWarning` at the user's call.

    The warning points at the first caller outside restconnect, so a
    warning raised deep in a join inside ``restconnect.load`` names the
    user's ``load`` line.
    """
    frame, level = sys._getframe(), 1
    while frame.f_back is not None and _in_package(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RestConnectWarning, stacklevel=level)


def _in_package(frame: Any) -> bool:
    name = str(frame.f_globals.get("__name__", ""))
    return name == "restconnect" or name.startswith("restconnect.")


class RestConnectError(Exception):
    """The root of every restconnect error."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code = 1


class SpecError(RestConnectError, ValueError):
    """A spec, job or dataset file is malformed.

    Attributes:
        source: the file (or connector name) the problem was found in.
        path: the key path, such as ``endpoints.issues.pagination.kind``.
        problem: what was expected.
    """

    exit_code = 2

    def __init__(self, problem: str, *, source: str | None = None, path: str = ""):
        self.source = source
        self.path = path
        self.problem = problem
        where = ": ".join(part for part in (source, path) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class CredentialsMissing(RestConnectError):
    """A credential field has no value and nobody can be asked for one.

    Attributes:
        connector: the connector name.
        missing: ``{field name: [ways to provide it]}``.
    """

    exit_code = 4

    def __init__(self, connector: str, missing: dict[str, list[str]]):
        self.connector = connector
        self.missing = missing
        lines = [f"{connector}: missing credentials."]
        for field, ways in missing.items():
            lines.append(f"  {field}: " + "; or ".join(ways))
        super().__init__("\n".join(lines))


class AuthError(RestConnectError):
    """The credentials were refused, or an auth flow failed.

    Attributes:
        connector, method: where it happened.
        status, url, endpoint, response: the refusing response, when there
            was one (the URL redacted).
    """

    exit_code = 3

    def __init__(self, message: str, *, connector: str | None = None,
                 method: str | None = None, status: int | None = None,
                 url: str | None = None, endpoint: str | None = None,
                 response: Any = None):
        self.connector = connector
        self.method = method
        self.status = status
        self.url = url
        self.endpoint = endpoint
        self.response = response
        prefix = ": ".join(part for part in (connector, method) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class TokenRefreshError(AuthError):
    """A token could not be renewed; a new sign-in is needed."""


class TransportError(RestConnectError):
    """The request got no HTTP response (connection, TLS handshake, timeout)."""

    exit_code = 5


class HTTPStatusError(RestConnectError):
    """The API answered with an error status.

    Attributes:
        status: the HTTP status code.
        method: the request method.
        url: the redacted request URL.
        connector, endpoint: where the request came from.
        body_excerpt: the start of the response body, redacted.
        response: the ``requests.Response`` (for headers and the full body).
    """

    exit_code = 5

    def __init__(self, status: int, method: str, url: str, *,
                 connector: str | None = None, endpoint: str | None = None,
                 body_excerpt: str = "", reason: str = "",
                 response: Any = None, hint: str = ""):
        self.status = status
        self.method = method
        self.url = url
        self.connector = connector
        self.endpoint = endpoint
        self.body_excerpt = body_excerpt
        self.response = response
        where = ".".join(part for part in (connector, endpoint) if part)
        text = f"{where}: " if where else ""
        text += f"HTTP {status}"
        if reason:
            text += f" {reason}"
        text += f" for {method} {url}"
        if body_excerpt:
            text += f": {body_excerpt}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class RateLimitError(HTTPStatusError):
    """The API asked for a pause longer than the configured maximum wait.

    Attributes:
        retry_at: a timezone-aware datetime after which a retry may succeed.
    """

    exit_code = 6

    def __init__(self, *args: Any, retry_at: Any = None, **kwargs: Any):
        self.retry_at = retry_at
        super().__init__(*args, **kwargs)


class ResponseError(RestConnectError):
    """A successful response whose body cannot be read (bad JSON, an HTML page)."""

    exit_code = 5


class PaginationError(RestConnectError):
    """Pagination would repeat a request, or cannot find its next step."""

    exit_code = 5


class CacheError(RestConnectError):
    """The cache or a replay cassette cannot serve a request."""

    exit_code = 7


class ExtractError(RestConnectError):
    """An extract job could not finish; earlier output is left as it was."""

    exit_code = 8
