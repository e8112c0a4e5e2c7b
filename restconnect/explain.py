"""``Connector.explain()``: what a connector is doing, for a person to read.

It gathers non-secret facts only: the auth methods and what their handlers'
``describe()`` say (who is signed in, token expiry and scopes), the quota the
last response announced, the cache, and the last fetch. Every text is passed
through the redactor and keys that name a credential are dropped, so a
handler that says too much still cannot leak a value here.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime, timezone
from typing import Any

from restconnect.redact import redact_text, redact_url

__all__ = ["Explanation", "connection_status", "explain"]

logger = logging.getLogger(__name__)

_SECRET_KEY = re.compile(
    r"(secret|password|passphrase|private|access_token|refresh_token|id_token"
    r"|api_key|apikey|credential|assertion|code_verifier|device_code)",
    re.IGNORECASE,
)


def explain(connector: Any) -> Explanation:
    """The facts about ``connector``, printable and shown as HTML in notebooks."""
    auth = [_clean(_describe(handler)) for handler in connector.auth]
    facts: dict[str, Any] = {
        "connector": connector.name,
        "base_url": redact_url(connector.base_url),
        "status": connection_status(connector),
        "signed_in_as": _clean(_signed_in_as(connector, auth)),
        "auth": auth,
        "rate_limit": _rate_limit(connector),
        "cache": _cache(connector),
        "last_fetch": _clean(_last_fetch(connector)),
    }
    return Explanation(facts)


def connection_status(connector: Any) -> str:
    """One line: waiting for the form, signed in as someone, or credentials set."""
    methods = [getattr(h, "name", "") for h in connector.auth]
    if "pending" in methods:
        return "waiting for credentials: fill in the form shown by connect()"
    described = [_describe(h) for h in connector.auth]
    who = _signed_in_as(connector, described)
    if who:
        return f"signed in as {who}"
    if any(facts.get("signed_in") is False for facts in described):
        return "not signed in yet (the first request signs in, or use Sign in)"
    if not methods or methods == ["none"]:
        return "no authentication"
    return "credentials set (not checked yet)"


def _describe(handler: Any) -> dict[str, Any]:
    try:
        return dict(handler.describe())
    except Exception as exc:  # noqa: BLE001 - a reporting helper must not fail
        logger.debug("describe() failed: %s", type(exc).__name__)
        return {"method": getattr(handler, "name", "?")}


def _signed_in_as(connector: Any, described: list[dict[str, Any]]) -> Any:
    identity = getattr(connector, "_identity", None)
    if identity:
        return identity
    for facts in described:
        if facts.get("identity"):
            return facts["identity"]
    return None


def _rate_limit(connector: Any) -> dict[str, Any] | None:
    state = getattr(connector.http, "rate_state", None)
    if state is None or state.updated_at is None:
        return None
    facts = state.as_dict()
    facts["seen_at"] = datetime.fromtimestamp(state.updated_at, timezone.utc).isoformat(
        timespec="seconds"
    )
    return facts


def _cache(connector: Any) -> str:
    cache = getattr(connector.http, "cache", None)
    if cache is None:
        return "off"
    return redact_text(repr(cache))


def _last_fetch(connector: Any) -> dict[str, Any] | None:
    result = getattr(connector, "last_result", None)
    if result is None:
        return None
    keep = (
        "endpoint",
        "pages",
        "records",
        "pages_from_cache",
        "truncated",
        "truncated_reason",
        "pagination",
        "fetched_at",
    )
    return {key: getattr(result, key, None) for key in keep}


def _clean(value: Any) -> Any:
    """Drop credential-named keys and redact every string, recursively."""
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact_text(str(value))


class Explanation:
    """The result of ``explain()``: a dict of facts with text and HTML views.

    Attributes:
        facts: connector, base_url, status, signed_in_as, auth (one dict per
            method), rate_limit, cache, last_fetch.
    """

    def __init__(self, facts: dict[str, Any]):
        self.facts = facts

    def __getitem__(self, key: str) -> Any:
        return self.facts[key]

    def lines(self) -> list[str]:
        f = self.facts
        out = [f"{f['connector']} at {f['base_url']}", f"  status: {f['status']}"]
        for auth in f["auth"]:
            extras = ", ".join(
                f"{k}={_short(v)}" for k, v in auth.items() if k != "method"
            )
            out.append(
                f"  auth: {auth.get('method')}" + (f" ({extras})" if extras else "")
            )
        quota = f["rate_limit"]
        out.append(
            "  rate limit: "
            + (
                _quota_text(quota)
                if quota
                else "no quota seen yet (no response so far)"
            )
        )
        out.append(f"  cache: {f['cache']}")
        if f["last_fetch"]:
            last = f["last_fetch"]
            pages = "page" if last["pages"] == 1 else "pages"
            out.append(
                f"  last fetch: {last['endpoint']}: {last['records']} records in "
                f"{last['pages']} {pages}"
                + (
                    f" (stopped early: {last['truncated_reason']})"
                    if last["truncated"]
                    else ""
                )
            )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        f = self.facts
        rows = [("status", html.escape(f["status"]))]
        for auth in f["auth"]:
            rows.append(
                (
                    f"auth: {html.escape(str(auth.get('method')))}",
                    "<br>".join(
                        f"{html.escape(str(k))}: {html.escape(_short(v))}"
                        for k, v in auth.items()
                        if k != "method"
                    )
                    or "&nbsp;",
                )
            )
        quota = f["rate_limit"]
        rows.append(
            (
                "rate limit",
                html.escape(_quota_text(quota) if quota else "no quota seen yet"),
            )
        )
        rows.append(("cache", html.escape(f["cache"])))
        if f["last_fetch"]:
            rows.append(("last fetch", html.escape(self.lines()[-1].split(": ", 1)[1])))
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th>"
            f"<td style='text-align:left'>{v}</td></tr>"
            for k, v in rows
        )
        title = (
            f"<b>{html.escape(f['connector'])}</b> "
            f"<code>{html.escape(f['base_url'])}</code>"
        )
        return f"<div class='restconnect-explain'>{title}<table>{body}</table></div>"


def _quota_text(quota: dict[str, Any]) -> str:
    text = f"{quota.get('remaining')} of {quota.get('limit')} requests left"
    if quota.get("reset_at"):
        text += f", resets at {quota['reset_at']}"
    return text


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "(none)"
    return str(value)
