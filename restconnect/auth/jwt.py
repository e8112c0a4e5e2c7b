"""JSON Web Tokens: log in for one, or sign your own (RFC 7519, RFC 7523).

Two modes:

- ``login``: POST a username and password to a login URL, read the token at
  a path of the answer, learn its expiry from the unverified ``exp`` claim,
  and log in again shortly before it expires and after a 401.
- ``assertion``: sign a short-lived JWT (RS256, ES256, HS256 and their
  larger siblings) with configured claims, then send it as the bearer token
  (``exchange: none``), trade it at a token endpoint with the jwt-bearer
  grant (``exchange: jwt_bearer``, as Google service accounts do), or trade it
  for a GitHub App installation token (``exchange: github_app``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

from pydantic import Field as OptionField
from pydantic import field_validator, model_validator

from restconnect.auth import register_auth
from restconnect.auth.base import Field
from restconnect.auth.token_base import Token, TokenAuth, TokenOptions
from restconnect.exceptions import AuthError, CredentialsMissing
from restconnect.redact import redact_text, register_secret
from restconnect.spec import ENV_REFERENCE, fill_env_references

__all__ = ["JWTAuth", "JWTOptions", "JWT_BEARER"]

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ASYMMETRIC = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
_HMAC = ("HS256", "HS384", "HS512")
_FROM_ENVIRONMENT = ("issuer", "subject", "audience", "token_url", "login_url")


class JWTOptions(TokenOptions):
    """Spec keys of ``method: jwt``."""

    mode: Literal["login", "assertion"] = "login"

    #: login mode: where to POST, how, and where the token is in the answer.
    login_url: str | None = None
    body: Literal["json", "form"] = "json"
    username_key: str = "username"
    password_key: str = "password"
    token_path: str = "access_token"
    #: Seconds of validity when the token has no readable ``exp``.
    expires_in_path: str | None = "expires_in"

    #: assertion mode: the signature and the claims.
    algorithm: Literal[_ASYMMETRIC + _HMAC] = "RS256"  # type: ignore[valid-type]
    issuer: str | None = None
    subject: str | None = None
    audience: str | None = None
    scope: str | None = None
    claims: dict[str, Any] = OptionField(default_factory=dict)
    key_id: str | None = None
    #: Assertion lifetime in seconds (GitHub allows at most 600).
    lifetime: int = OptionField(300, ge=10, le=3600)
    #: Backdate ``iat`` this many seconds against clock drift.
    backdate: int = OptionField(0, ge=0, le=300)
    exchange: Literal["none", "jwt_bearer", "github_app"] = "none"
    token_url: str | None = None

    @field_validator("scope", mode="before")
    @classmethod
    def _join_scope(cls, value: Any) -> Any:
        return " ".join(value) if isinstance(value, list) else value

    @field_validator(*_FROM_ENVIRONMENT)
    @classmethod
    def _from_environment(cls, value: str | None) -> str | None:
        """Fill ``${VAR}`` and ``${VAR:-default}``; an unset variable stays as written.

        A bundled spec (a GitHub App's client id, its installation id) is then
        valid before the variables are set; :meth:`JWTAuth.obtain_token` names
        the ones still missing.
        """
        return fill_environment(value) if value else value

    @model_validator(mode="after")
    def _mode_needs(self) -> JWTOptions:
        if self.mode == "login" and not self.login_url:
            raise ValueError("mode login needs login_url")
        if self.mode == "assertion" and self.exchange != "none" and not self.token_url:
            raise ValueError(f"exchange {self.exchange} needs token_url")
        return self


@register_auth
class JWTAuth(TokenAuth):
    """A JWT bearer token, obtained by logging in or signed locally.

    Example spec (a GitHub App installation token)::

        auth:
          method: jwt
          mode: assertion
          algorithm: RS256
          issuer: "123456"
          lifetime: 540
          backdate: 60
          exchange: github_app
          token_url: https://api.github.com/app/installations/987/access_tokens
          env: {private_key: GITHUB_APP_PRIVATE_KEY}
    """

    name = "jwt"
    fields = (
        Field("username", required=False, help="login name (mode: login)"),
        Field("password", secret=True, required=False, help="password (mode: login)"),
        Field(
            "private_key",
            secret=True,
            required=False,
            help="PEM private key that signs assertions (RS*/PS*/ES*)",
        ),
        Field(
            "private_key_passphrase",
            secret=True,
            required=False,
            help="passphrase of an encrypted private key",
        ),
        Field(
            "signing_secret",
            secret=True,
            required=False,
            help="shared secret that signs assertions (HS*)",
        ),
    )
    Options = JWTOptions

    def store_identity(self) -> str:
        options = self.options
        login = options.mode == "login"
        where = self.url(options.login_url if login else options.token_url)
        who = self.credential("username") if login else options.issuer
        return "|".join(
            [
                self.name,
                options.mode,
                options.exchange,
                where or "",
                who or "",
                options.subject or "",
                options.account,
            ]
        )

    def _store(self) -> Any:
        # A locally signed assertion costs nothing to remake: never persist it.
        if self.options.mode == "assertion" and self.options.exchange == "none":
            return None
        return super()._store()

    def authorization_value(self, token: Token) -> str:
        return f"Bearer {token.access_token.reveal()}"

    def obtain_token(self) -> Token:
        self._require_environment()
        if self.options.mode == "login":
            return self.log_in()
        assertion, expires_at = self.sign_assertion()
        exchange = self.options.exchange
        if exchange == "none":
            return Token(access_token=assertion, expires_at=expires_at)
        if exchange == "jwt_bearer":
            return self._jwt_bearer(assertion)
        return self._github_app(assertion)

    # ------------------------------------------------------------ login mode

    def log_in(self) -> Token:
        """POST the credentials to ``login_url``; the token from the answer."""
        from restconnect.auth.token_base import require_secure_url

        options = self.options
        url = self.url(options.login_url)
        require_secure_url(url, "login_url", self.context.connector, self.name)
        username, password = self.credential("username"), self.credential("password")
        if not username or not password:
            raise self._missing(["username", "password"])
        payload = {options.username_key: username, options.password_key: password}
        kwargs: dict[str, Any] = (
            {"json": payload} if options.body == "json" else {"data": payload}
        )
        response = self.send(
            "POST", url, headers={"Accept": "application/json"}, **kwargs
        )
        if response.status_code >= 400:
            raise AuthError(
                f"the login at {url} was refused with HTTP {response.status_code}",
                connector=self.context.connector,
                method=self.name,
            )
        return self._token_from_login(response)

    def _token_from_login(self, response: Any) -> Token:
        try:
            body = response.json()
        except ValueError:
            body = None
        value = _at_path(body, self.options.token_path)
        if not isinstance(value, str) or not value:
            raise AuthError(
                f"the login answer has no token at {self.options.token_path!r}",
                connector=self.context.connector,
                method=self.name,
            )
        register_secret(value)
        expires_at = unverified_expiry(value)
        if expires_at is None and self.options.expires_in_path:
            seconds = _at_path(body, self.options.expires_in_path)
            if isinstance(seconds, (int, float, str)) and str(seconds).strip():
                try:
                    expires_at = time.time() + float(seconds)
                except ValueError:
                    raise AuthError(
                        f"the login answer's {self.options.expires_in_path} is not "
                        f"a number of seconds: {str(seconds)[:40]!r}",
                        connector=self.context.connector, method=self.name,
                    ) from None
        logger.debug("%s: logged in", self.context.connector)
        return Token(access_token=value, expires_at=expires_at)

    # ------------------------------------------------------------ assertion mode

    def sign_assertion(self, audience: str | None = None) -> tuple[str, float]:
        """A freshly signed JWT and its expiry."""
        import jwt

        options = self.options
        now = int(time.time())
        claims: dict[str, Any] = {
            "iat": now - options.backdate,
            "exp": now + options.lifetime,
            "jti": uuid.uuid4().hex,
        }
        for name, value in (
            ("iss", options.issuer),
            ("sub", options.subject),
            ("aud", audience or options.audience),
            ("scope", options.scope),
        ):
            if value:
                claims[name] = value
        claims.update(options.claims)
        headers = {"kid": options.key_id} if options.key_id else None
        token = jwt.encode(
            claims, self._signing_key(), algorithm=options.algorithm, headers=headers
        )
        register_secret(token)
        return token, float(claims["exp"])

    def _signing_key(self) -> Any:
        if self.options.algorithm in _HMAC:
            secret = self.credential("signing_secret")
            if not secret:
                raise self._missing(["signing_secret"])
            return secret.encode()
        return load_private_key(
            self.credential("private_key"),
            self.credential("private_key_passphrase"),
            connector=self.context.connector,
        )

    def _jwt_bearer(self, assertion: str) -> Token:
        from urllib.parse import parse_qsl

        from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

        body = prepare_token_request(JWT_BEARER, assertion=assertion)
        answer = self.post_token_request(
            self.url(self.options.token_url), parse_qsl(body, keep_blank_values=True)
        )
        if not answer.get("access_token"):
            raise AuthError(
                "the token endpoint answer has no access_token",
                connector=self.context.connector,
                method=self.name,
            )
        return Token.from_response(answer)

    def _github_app(self, app_jwt: str) -> Token:
        from restconnect.auth.token_base import require_secure_url

        url = self.url(self.options.token_url)
        require_secure_url(url, "token_url", self.context.connector, self.name)
        response = self.send(
            "POST",
            url,
            headers={
                "Authorization": f"Bearer {app_jwt}",
                "Accept": "application/vnd.github+json",
            },
        )
        if response.status_code not in (200, 201):
            raise AuthError(
                f"the installation token request answered HTTP "
                f"{response.status_code}: {redact_text(response.text[:200])}",
                connector=self.context.connector,
                method=self.name,
            )
        answer = response.json()
        return Token.from_response(
            {
                "access_token": answer.get("token"),
                "expires_at": answer.get("expires_at"),
                "token_type": "Bearer",
            }
        )

    def _require_environment(self) -> None:
        missing = {}
        for key in _FROM_ENVIRONMENT:
            for match in ENV_REFERENCE.finditer(getattr(self.options, key) or ""):
                missing[key] = [f"set {match.group(1)} (the spec's {key} uses it)"]
        if missing:
            raise CredentialsMissing(self.context.connector or self.name, missing)

    def _missing(self, names: list[str]) -> CredentialsMissing:
        connector = self.context.connector or self.name
        prefix = f"RESTCONNECT_{connector.upper()}_"
        return CredentialsMissing(
            connector,
            {
                name: [f"set {prefix}{name.upper()}", f"pass {name}=... to connect()"]
                for name in names
                if not self.credential(name)
            },
        )

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts["mode"] = self.options.mode
        if self.options.mode == "login" and self.credential("username"):
            facts["identity"] = self.credential("username")
        elif self.options.subject or self.options.issuer:
            facts["identity"] = self.options.subject or self.options.issuer
        return facts


def unverified_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without checking its signature.

    The client is not the token's audience, so it has no key to check it with.
    """
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) else None


def load_private_key(
    pem: str | None, passphrase: str | None = None, *, connector: str = ""
) -> Any:
    """A cryptography private key from PEM text (``\\n`` escapes accepted)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if not pem:
        raise CredentialsMissing(
            connector or "jwt",
            {"private_key": ["pass private_key=... (PEM text) or set its variable"]},
        )
    if "-----BEGIN" in pem and "\\n" in pem and "\n" not in pem:
        # Keys pasted into one-line environment variables keep literal "\n".
        pem = pem.replace("\\n", "\n")
    try:
        return load_pem_private_key(
            pem.encode(), passphrase.encode() if passphrase else None
        )
    except (ValueError, TypeError) as exc:
        reason = "wrong passphrase or not a PEM private key"
        if "password" in str(exc).lower():
            reason = "encrypted key: set private_key_passphrase (or it is wrong)"
        raise AuthError(
            f"the private key cannot be loaded ({reason})",
            connector=connector or None,
            method="jwt",
        ) from None


def _at_path(body: Any, path: str) -> Any:
    value = body
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def fill_environment(value: str) -> str:
    """``value`` with each set ``${VAR}`` (or ``${VAR:-default}``) filled in."""
    return fill_env_references(value, lambda match: match.group(0))
