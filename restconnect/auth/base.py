"""The contract every auth method follows.

A method is a ``requests.auth.AuthBase`` that also declares its credential
fields and spec options, so that one declaration drives the spec validator,
environment lookup, the CLI prompt and the notebook form.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict

from restconnect.redact import register_secret
from restconnect.secret import Secret

if TYPE_CHECKING:
    from restconnect.auth.tokens import TokenStore
    from restconnect.http import HttpClient

__all__ = ["AuthContext", "AuthMethod", "Field", "NoOptions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """A credential a method needs.

    Attributes:
        name: the keyword users pass to ``connect()`` and the form label.
        secret: whether the value must be masked and never written in a spec.
        help: one line shown in prompts, forms and error messages.
        env: the default environment variable (a spec may name another).
        required: whether the method cannot work without it.
        default: a value used when nothing else provides one.
        choices: allowed values, shown as a drop-down in notebooks.
    """

    name: str
    secret: bool = False
    help: str = ""
    env: str | None = None
    required: bool = True
    default: str | None = None
    choices: tuple[str, ...] = ()


class NoOptions(BaseModel):
    """Options model for methods with no spec keys of their own."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class AuthContext:
    """What a handler may use besides its own options and credentials.

    Attributes:
        connector: the connector name, for messages and token-store keys.
        base_url: the API's base URL.
        http: the connector's ``HttpClient``, for token and login requests.
        token_store: where tokens persist between runs, or None.
        interactive: whether a person can be asked (browser sign-in, prompts).
    """

    connector: str
    base_url: str = ""
    http: HttpClient | None = None
    token_store: TokenStore | None = None
    interactive: bool = False

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a side request (token endpoint, login) with the connector's rules."""
        if self.http is None:
            raise RuntimeError("this AuthContext has no HTTP client")
        return self.http.request(method, url, **kwargs)


class AuthMethod(requests.auth.AuthBase):
    """Base class of auth handlers.

    Subclasses set ``name``, ``fields`` and ``Options`` and override
    ``__call__``; multi-step methods also override ``handle_401``.

    Example:
        >>> from restconnect.auth import register_auth
        >>> @register_auth
        ... class TeamKeyAuth(AuthMethod):
        ...     name = "team_key"
        ...     fields = (Field("team_key", secret=True, env="TEAM_KEY"),)
        ...     def __call__(self, request):
        ...         request.headers["X-Team-Key"] = self.credential("team_key")
        ...         return request
    """

    name: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    Options: ClassVar[type[BaseModel]] = NoOptions

    #: Whether the method puts a credential on the wire (plain-HTTP rule).
    sends_credentials: ClassVar[bool] = True

    def __init__(self, options: BaseModel | None = None,
                 credentials: Mapping[str, str | Secret | None] | None = None,
                 context: AuthContext | None = None):
        self.options = options if options is not None else self.Options()
        self.context = context or AuthContext(connector="")
        self._credentials: dict[str, str | Secret | None] = dict(credentials or {})
        for value in self._credentials.values():
            if isinstance(value, Secret):
                register_secret(value.reveal())

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    # Requests skips an auth object that is falsy; never let that happen.
    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} method={self.name!r}>"

    def credential(self, field: str) -> str | None:
        """The plain value of a credential field, or None."""
        value = self._credentials.get(field)
        if isinstance(value, Secret):
            return value.reveal()
        return value

    def prepare_session(self, session: requests.Session) -> None:
        """Configure the session (client certificates, adapters). Optional."""

    def handle_401(self, response: requests.Response) -> bool:
        """Renew the credential after a 401; True means: send the request again."""
        return False

    def secrets(self) -> list[str]:
        """Every secret value this handler holds, for redaction and scrubbing."""
        return [value.reveal() for value in self._credentials.values()
                if isinstance(value, Secret) and value]

    def identity_key(self) -> str:
        """A digest that differs between identities, for cache keys.

        The digest is of the secret values, so it says nothing about them; the
        cache hashes it again with a key of its own.
        """
        material = "\0".join([self.name, *sorted(self.secrets())])
        return hashlib.sha256(material.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Non-secret facts for ``Connector.explain()``."""
        return {"method": self.name}
