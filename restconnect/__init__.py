"""restconnect: authenticated REST APIs into pandas.

>>> import restconnect
>>> conn = restconnect.connect("github")                      # doctest: +SKIP
>>> repos = conn.fetch("repos", user="octocat")                # doctest: +SKIP

Everything public is importable from here. Heavy modules (pandas, pyarrow,
the auth libraries, ipywidgets) load on first use, so ``import restconnect``
stays cheap.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from restconnect._version import __version__
from restconnect.exceptions import (
    AuthError,
    CacheError,
    CredentialsMissing,
    ExtractError,
    HTTPStatusError,
    PaginationError,
    RateLimitError,
    ResponseError,
    RestConnectError,
    RestConnectWarning,
    SpecError,
    TokenRefreshError,
    TransportError,
)
from restconnect.secret import Secret

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it, imported on first attribute access
_LAZY = {
    "Connector": "restconnect.connector",
    "connect": "restconnect.connector",
    "load_spec": "restconnect.spec",
    "ConnectorSpec": "restconnect.spec",
    "register_auth": "restconnect.auth",
    "register_paginator": "restconnect.pagination",
    "Paginator": "restconnect.pagination",
    "AuthMethod": "restconnect.auth.base",
    "Field": "restconnect.auth.base",
    "extract": "restconnect.jobs",
    "Job": "restconnect.jobs",
    "enrich": "restconnect.lookups",
    "load": "restconnect.dataset",
    "load_dataset": "restconnect.dataset",
    "read_dataset": "restconnect.dataset",
    "WebhookVerificationError": "restconnect.webhooks",
}

# Kept literal and sorted so tools can read it; a test checks it.
__all__ = [
    "AuthError",
    "AuthMethod",
    "CacheError",
    "Connector",
    "ConnectorSpec",
    "CredentialsMissing",
    "ExtractError",
    "Field",
    "HTTPStatusError",
    "Job",
    "PaginationError",
    "Paginator",
    "RateLimitError",
    "ResponseError",
    "RestConnectError",
    "RestConnectWarning",
    "Secret",
    "SpecError",
    "TokenRefreshError",
    "TransportError",
    "WebhookVerificationError",
    "__version__",
    "connect",
    "enrich",
    "extract",
    "join",
    "load",
    "load_dataset",
    "load_spec",
    "read_dataset",
    "register_auth",
    "register_paginator",
    "sql",
]

# ``join`` and ``sql`` are also submodule names. Both modules are light, so
# the functions are bound now: importing a submodule later cannot shadow them.
from restconnect.join import join  # noqa: E402
from restconnect.sql import sql  # noqa: E402

if TYPE_CHECKING:
    from restconnect.auth import register_auth
    from restconnect.auth.base import AuthMethod, Field
    from restconnect.connector import Connector, connect
    from restconnect.dataset import load, load_dataset, read_dataset
    from restconnect.jobs import Job, extract
    from restconnect.lookups import enrich
    from restconnect.pagination import Paginator, register_paginator
    from restconnect.spec import ConnectorSpec, load_spec
    from restconnect.webhooks import WebhookVerificationError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'restconnect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
