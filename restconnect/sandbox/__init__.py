"""The embedded sandbox: a real HTTP API on loopback, for demos and tests.

>>> from restconnect import sandbox
>>> with sandbox.start() as box:                                # doctest: +SKIP
...     repos = box.connect().fetch("repos")

Two services share one server: a code-hosting API under ``/code`` (users,
repos, issues, events) and a payments API under ``/pay`` (customers,
invoices, payments). Every pagination style of the spec format, every auth
method, rate limits, ``ETag`` revalidation and injected failures are served
for real; see ``docs/sandbox.md`` for the endpoint table.
"""

from __future__ import annotations

import logging
import re
import signal
import tempfile
from pathlib import Path
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from restconnect.sandbox.credentials import (
    Credentials,
    Keyring,
    canonical_query,
    hmac_signature,
    string_to_sign,
)
from restconnect.sandbox.data import Dataset, Sizes
from restconnect.sandbox.server import App, SandboxHTTPServer
from restconnect.sandbox.settings import ALL_METHODS, Settings

__all__ = [
    "ALL_METHODS",
    "Credentials",
    "Sandbox",
    "Settings",
    "Sizes",
    "canonical_query",
    "hmac_signature",
    "serve",
    "start",
    "string_to_sign",
]

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
_URL_VARIABLE = re.compile(r"\$\{RESTCONNECT_SANDBOX_URL(:-[^}]*)?\}")

# Credential names per auth method where the method's field name differs from
# the sandbox's own name for the value.
_FIELD_ALIASES: dict[str, dict[str, str]] = {
    "hmac": {"key_id": "hmac_key_id", "secret": "hmac_secret"},
    "jwt": {"private_key": "rsa_private_key", "signing_secret": "hs_secret"},
}


class Sandbox:
    """A running sandbox server.

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        port: the port it listens on.
        credentials: the demo credentials every auth method accepts (a dict;
            its repr hides secret values).
        settings: the live settings; change them with :meth:`configure`.
        data: the generated records.

    Example:
        >>> with Sandbox() as box:                              # doctest: +SKIP
        ...     token = box.credentials["token"]
        ...     requests.get(box.url + "/code/user",
        ...                  headers={"Authorization": f"Bearer {token}"})
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 latency: float = 0.0, seed: int = DEFAULT_SEED,
                 sizes: Sizes | dict[str, int] | None = None, **settings: Any):
        self.settings = Settings(latency=latency)
        self.settings.update(settings)
        self.data = Dataset(seed=seed, sizes=sizes)
        logins = [row["login"] for row in self.data.users.rows[:2]]
        self._keyring = Keyring(logins, self.settings)
        self._app = App(self.data, self.settings, self._keyring)
        self._server = SandboxHTTPServer((host, port), self._app)
        self.host = host
        self.port = int(self._server.server_address[1])
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self.port}"
        self.credentials = self._keyring.public(self.url)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Sandbox {self.url} {state}>"

    def __enter__(self) -> Sandbox:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Sandbox:
        """Serve in a daemon thread; returns self."""
        if self.running:
            return self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"restconnect-sandbox-{self.port}", daemon=True)
        self._thread.start()
        logger.info("sandbox listening on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        logger.info("sandbox on %s stopped", self.url)

    # -------------------------------------------------------------- control

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the request counts (see ``GET /_sandbox/stats``)."""
        return self._app.stats.snapshot()

    def reset_stats(self, *, data: bool = False) -> None:
        """Zero counts, quotas and failure counters; ``data=True`` undoes touches."""
        self._app.reset(data=data)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings now; returns the previous values of what changed."""
        return self.settings.update(changes)

    @contextmanager
    def configured(self, **changes: Any) -> Iterator[Sandbox]:
        """Change settings for the duration of a ``with`` block."""
        previous = self.configure(**changes)
        try:
            yield self
        finally:
            self.settings.update(previous)

    def touch(self, collection: str, **options: Any) -> dict[str, Any]:
        """Update records so they look changed (see ``Dataset.touch``)."""
        return self.data.touch(collection, **options)

    def new_refresh_token(self) -> str:
        """A fresh one-use refresh token for the demo OAuth client."""
        return self._keyring.issue_refresh_token()

    def secret_values(self) -> list[str]:
        """Every secret this sandbox issued at start, for leak checks."""
        return self._keyring.secret_values()

    # -------------------------------------------------------------- clients

    def spec(self, name: str = "sandbox") -> Any:
        """A connector spec pointed at this server.

        ``${RESTCONNECT_SANDBOX_URL...}`` in the spec's auth options (token and
        login URLs, audiences) is replaced by :attr:`url`, which ``base_url=``
        alone cannot do.
        """
        from restconnect.catalog import resolve_spec

        spec = resolve_spec(name)
        for entry in spec.auth_entries:
            extra = entry.model_extra or {}
            for key, value in extra.items():
                if isinstance(value, str):
                    extra[key] = _URL_VARIABLE.sub(self.url, value)
        return spec

    def credentials_for(self, name: Any = "sandbox") -> dict[str, Any]:
        """The credentials a connector's auth fields ask for, by field name."""
        from restconnect.auth import get_auth_method

        spec = self.spec(name) if isinstance(name, str) else name
        chosen: dict[str, Any] = {}
        for entry in spec.auth_entries:
            aliases = _FIELD_ALIASES.get(entry.method, {})
            for field in get_auth_method(entry.method).fields:
                key = aliases.get(field.name, field.name)
                if key in self.credentials:
                    chosen[field.name] = self.credentials[key]
        return chosen

    def connect(self, name: str = "sandbox", **options: Any) -> Any:
        """``restconnect.connect(name)`` pointed at this server, with its credentials.

        Keyword arguments override credentials or pass connector options.
        """
        import restconnect

        spec = self.spec(name)
        arguments = {**self.credentials_for(spec), **options}
        return restconnect.connect(spec, base_url=self.url, **arguments)


def start(port: int = 0, latency: float = 0.0, seed: int = DEFAULT_SEED, *,
          host: str = "127.0.0.1", sizes: Sizes | dict[str, int] | None = None,
          **settings: Any) -> Sandbox:
    """Start a sandbox in a daemon thread on 127.0.0.1 (a free port by default).

    Args:
        port: the port, 0 for a free one.
        latency: seconds each API request waits before it is answered.
        seed: the seed of the generated records.
        host: the address to listen on.
        sizes: record counts, e.g. ``{"issues": 3000}``.
        **settings: any other :class:`Settings` field (``jwt_ttl=5``, ...).
    """
    return Sandbox(host, port, latency=latency, seed=seed, sizes=sizes,
                   **settings).start()


def serve(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Run a sandbox in the foreground until Ctrl-C; the ``sandbox serve`` command.

    Prints the URL and the demo credentials, since a person at a terminal
    needs them to try requests.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("the sandbox's control endpoints need no credentials; "
                       "listening on %s exposes them beyond this machine", host)
    try:
        box = Sandbox(host, port, **options)
    except OSError as exc:
        from restconnect.exceptions import RestConnectError

        raise RestConnectError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                               "choose another port with --port") from None
    if threading.current_thread() is threading.main_thread():
        # Stop as on Ctrl-C, so the key files below are removed on SIGTERM too.
        signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="restconnect-sandbox-") as keys:
        print(f"restconnect sandbox listening on {box.url}")
        print("Set these to use the bundled sandbox specs from a shell:")
        print(f"  export RESTCONNECT_SANDBOX_URL={box.url}")
        for line in _export_lines(box, Path(keys)):
            print(f"  {line}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            box.serve_forever()
        except KeyboardInterrupt:
            print("stopped")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _export_lines(box: Sandbox, folder: Path) -> list[str]:
    """``export VAR=value`` for every credential field of the bundled sandbox specs.

    Multi-line values (PEM keys) go to 0600 files in ``folder`` and are read
    with ``$(cat ...)``.
    """
    from restconnect.auth import get_auth_method
    from restconnect.catalog import list_specs
    from restconnect.credentials import FieldRequest, env_names

    lines: dict[str, str] = {}
    for name in sorted(n for n in list_specs() if n.startswith("sandbox")):
        spec = box.spec(name)
        values = box.credentials_for(spec)
        for entry in spec.auth_entries:
            for field in get_auth_method(entry.method).fields:
                value = values.get(field.name)
                if value is None:
                    continue
                value = ",".join(value) if isinstance(value, list) else str(value)
                variable = env_names(spec.name, FieldRequest(
                    field, entry.method, entry.env.get(field.name)))[0]
                if "\n" in value:
                    path = folder / f"{variable.lower()}.pem"
                    path.write_text(value)
                    path.chmod(0o600)
                    value = f'"$(cat {path})"'
                lines.setdefault(variable, f"export {variable}={value}")
    return list(lines.values())
