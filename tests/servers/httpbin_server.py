"""The ``httpbin`` application (a third-party HTTP test service) on 127.0.0.1.

Served by werkzeug in a thread; its ``/basic-auth``, ``/digest-auth`` and
``/bearer`` endpoints check credentials with httpbin's own code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    """Base URL of a running httpbin, stopped after the module's tests."""
    httpbin = pytest.importorskip("httpbin")
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, httpbin.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="httpbin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
