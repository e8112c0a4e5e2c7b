"""Control endpoints under ``/_sandbox`` and the index at ``/``.

They need no credentials (the sandbox listens on loopback) and are left out
of the statistics, so tests can read and reset counts without moving them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restconnect.sandbox.routing import (
    ApiError,
    Request,
    Response,
    Router,
    json_response,
)

if TYPE_CHECKING:
    from restconnect.sandbox.server import App

__all__ = ["admin_routes"]

_TOUCHABLE = ("issues", "invoices", "repos", "customers")


def admin_routes(app: App) -> Router:
    """The routes that inspect and steer a running sandbox."""
    router = Router()

    @router.add("GET", "/", "admin", "this index")
    @router.add("GET", "/_sandbox", "admin", "this index")
    def index(req: Request) -> Response:
        routes = [{"method": r.method, "path": r.pattern, "service": r.service,
                   "description": r.description} for r in app.router.routes]
        return json_response({"name": "restconnect sandbox", "routes": routes},
                             cacheable=False)

    @router.add("GET", "/_sandbox/stats", "admin", "request counts")
    def stats(req: Request) -> Response:
        return json_response(app.stats.snapshot(), cacheable=False)

    @router.add("POST", "/_sandbox/reset", "admin",
                "zero counts, quotas and failure counters; {\"data\": true} also "
                "regenerates the records")
    def reset(req: Request) -> Response:
        body = req.json()
        app.reset(data=bool(body.get("data")))
        return json_response({"reset": True, "data": bool(body.get("data"))},
                             cacheable=False)

    @router.add("POST", "/_sandbox/touch", "admin",
                "{collection, ids | count, create} -> update records' updated_at")
    def touch(req: Request) -> Response:
        return json_response(_touch(app, req.json()), cacheable=False)

    @router.add("GET", "/_sandbox/config", "admin", "the live settings")
    def get_config(req: Request) -> Response:
        return json_response(app.settings.as_dict(), cacheable=False)

    @router.add("POST", "/_sandbox/config", "admin",
                "change settings; answers the previous values")
    def set_config(req: Request) -> Response:
        try:
            previous = app.settings.update(req.json())
        except ValueError as exc:
            raise ApiError(400, str(exc), code="invalid_setting") from None
        return json_response({"previous": previous}, cacheable=False)

    @router.add("POST", "/_sandbox/refresh-token", "admin",
                "a fresh one-use refresh token for the demo OAuth client")
    def refresh_token(req: Request) -> Response:
        return json_response({"refresh_token": app.keyring.issue_refresh_token()},
                             cacheable=False)

    return router


def _touch(app: App, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("collection")
    if name not in _TOUCHABLE:
        raise ApiError(400, f"collection must be one of {', '.join(_TOUCHABLE)}",
                       code="invalid_collection")
    ids, count, create = body.get("ids"), body.get("count", 1), body.get("create", 0)
    if ids is not None and not isinstance(ids, list):
        raise ApiError(400, "ids must be a list", code="invalid_ids")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
               for n in (count, create)):
        raise ApiError(400, "count and create take whole numbers", code="invalid_count")
    try:
        return app.data.touch(name, ids=ids, count=count, create=create)
    except KeyError as exc:
        raise ApiError(404, str(exc.args[0]), code="not_found") from None
