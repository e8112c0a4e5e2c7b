"""A one-shot redirect receiver on 127.0.0.1 for native-app sign-in (RFC 8252).

The authorization server redirects the browser to
``http://127.0.0.1:<free port>/callback?code=...&state=...``; this tiny server
answers that one request, hands the full callback URL to the waiting flow
and stops.
"""

from __future__ import annotations

import http.server
import logging
import threading
from types import TracebackType
from urllib.parse import urlsplit

from restconnect.exceptions import AuthError

__all__ = ["LoopbackReceiver"]

logger = logging.getLogger(__name__)

_DONE_PAGE = (
    b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>restconnect"
    b"</title></head><body><h1>Signed in</h1><p>You can close this tab and "
    b"return to your notebook or terminal.</p></body></html>"
)


class LoopbackReceiver:
    """Receive one OAuth redirect on a free loopback port.

    Args:
        path: the callback path registered with the provider.
        port: 0 for a free port (RFC 8252 section 7.3), or a fixed one.

    Example:
        >>> with LoopbackReceiver() as receiver:               # doctest: +SKIP
        ...     url = begin(receiver.redirect_uri)
        ...     callback = receiver.wait(timeout=300)
    """

    def __init__(self, path: str = "/callback", port: int = 0):
        self.path = path if path.startswith("/") else f"/{path}"
        self._event = threading.Event()
        self._callback: str | None = None
        self._server = http.server.HTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="restconnect-oauth-redirect",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> str:
        """The callback URL the browser brought, within ``timeout`` seconds."""
        if not self._event.wait(timeout):
            raise AuthError(
                f"no sign-in redirect reached {self.redirect_uri} within "
                f"{timeout:g} s; paste the callback URL instead"
            )
        assert self._callback is not None
        return self._callback

    def close(self) -> None:
        """Stop listening (safe to call twice)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    stop = close

    def __enter__(self) -> LoopbackReceiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                if (
                    urlsplit(self.path).path != receiver.path
                    or receiver._event.is_set()
                ):
                    self.send_error(404)
                    return
                receiver._callback = f"http://127.0.0.1:{receiver.port}{self.path}"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_DONE_PAGE)))
                self.end_headers()
                self.wfile.write(_DONE_PAGE)
                receiver._event.set()

            def log_message(self, format: str, *args: object) -> None:
                # The request line holds the authorization code: never log it.
                logger.debug("sign-in redirect received on %s", receiver.redirect_uri)

        return Handler
