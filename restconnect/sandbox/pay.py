"""The payments service under ``/pay``: customers, invoices, payments.

List endpoints page like Stripe: ``limit`` and ``starting_after=<last id>``,
records under ``data`` with a ``has_more`` flag, and errors as
``{"error": {"type": ..., "message": ...}}``. Payments use offset/limit with
a ``total``, the CSV export a ``X-Total-Count`` header, and the search
endpoint takes its cursor in the JSON body.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from restconnect.sandbox.data import Collection, Dataset
from restconnect.sandbox.paging import (
    array,
    cursor_page,
    decode_cursor,
    encode_cursor,
    envelope,
    ordered,
    since_param,
)
from restconnect.sandbox.routing import ApiError, Request, Response, Router
from restconnect.sandbox.settings import Settings

__all__ = ["pay_routes"]

_CSV_COLUMNS = ("id", "number", "customer", "customer_email", "currency",
                "amount_due", "amount_paid", "status", "created", "updated_at")
_INVOICE_SORTS = {"created": "created", "updated": "updated_at"}


def _limit(req: Request, settings: Settings, default: int = 10) -> int:
    limit = req.int_param("limit", default, low=1)
    if limit > settings.max_page_size:
        raise ApiError(400, f"limit must be at most {settings.max_page_size}",
                       code="parameter_invalid_integer")
    return limit


def _cursor_list(req: Request, collection: Collection, positions: list[int],
                 settings: Settings, url: str) -> Response:
    limit = _limit(req, settings)
    chosen, has_more = cursor_page(collection, positions,
                                   req.query.get("starting_after") or None, limit)
    return Response(body=envelope("data", collection.bodies(chosen), object="list",
                                  has_more=has_more, url=url),
                    last_modified=collection.last_modified)


def _single(collection: Collection, key: str, what: str) -> Response:
    pos = collection.index.get(key)
    if pos is None:
        raise ApiError(404, f"No such {what}: {key!r}", code="resource_missing")
    return Response(body=collection.encoded[pos],
                    last_modified=collection.last_modified)


def pay_routes(data: Dataset, settings: Settings) -> Router:
    """Every route of the payments service."""
    router = Router()
    _customer_routes(router, data, settings)
    _invoice_routes(router, data, settings)
    _other_routes(router, data, settings)
    return router


def _customer_routes(router: Router, data: Dataset, settings: Settings) -> None:
    customers = data.customers
    rows = customers.rows

    @router.add("GET", "/pay/customers", "pay",
                "customers, newest first; cursor pages (starting_after); ids=a,b batch")
    def list_customers(req: Request) -> Response:
        ids = req.query.get("ids")
        if ids is not None:
            wanted = [item for item in ids.split(",") if item]
            if len(wanted) > 100:
                raise ApiError(400, "at most 100 ids per request", code="too_many_ids")
            found = [customers.index[key] for key in wanted if key in customers.index]
            return Response(body=envelope("data", customers.bodies(found),
                                          object="list", has_more=False,
                                          url="/pay/customers"),
                            last_modified=customers.last_modified)
        email = req.query.get("email")
        positions = ordered(customers, ("list", email),
                            lambda pos: email is None or rows[pos]["email"] == email,
                            lambda pos: pos, False)
        return _cursor_list(req, customers, positions, settings, "/pay/customers")

    @router.add("GET", "/pay/customers/{id}", "pay", "one customer")
    def one_customer(req: Request) -> Response:
        return _single(customers, req.params["id"], "customer")


def _invoice_positions(req: Request, invoices: Collection,
                       customer: str | None) -> list[int]:
    status, currency = req.query.get("status"), req.query.get("currency")
    customer = customer or req.query.get("customer")
    since = since_param(req)
    sort = req.query.get("sort", "created")
    if sort not in _INVOICE_SORTS:
        raise ApiError(400, f"sort must be created or updated, got {sort!r}",
                       code="parameter_invalid")
    direction = req.query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "direction must be asc or desc", code="parameter_invalid")
    rows, updated, field = invoices.rows, invoices.updated, _INVOICE_SORTS[sort]

    def keep(pos: int) -> bool:
        row = rows[pos]
        return ((status is None or row["status"] == status)
                and (currency is None or row["currency"] == currency)
                and (customer is None or row["customer"] == customer)
                and (since is None or updated[pos] >= since))
    key = ("list", status, currency, customer, since, sort, direction)
    return ordered(invoices, key, keep, lambda pos: (rows[pos][field], rows[pos]["id"]),
                   direction == "desc")


def _invoice_routes(router: Router, data: Dataset, settings: Settings) -> None:
    invoices, customers = data.invoices, data.customers

    @router.add("GET", "/pay/invoices", "pay",
                "invoices; cursor pages; customer, status, currency, since, sort")
    def list_invoices(req: Request) -> Response:
        positions = _invoice_positions(req, invoices, None)
        return _cursor_list(req, invoices, positions, settings, "/pay/invoices")

    @router.add("GET", "/pay/customers/{id}/invoices", "pay",
                "one customer's invoices; cursor pages")
    def customer_invoices(req: Request) -> Response:
        if req.params["id"] not in customers.index:
            raise ApiError(404, f"No such customer: {req.params['id']!r}",
                           code="resource_missing")
        positions = _invoice_positions(req, invoices, req.params["id"])
        return _cursor_list(req, invoices, positions, settings,
                            f"/pay/customers/{req.params['id']}/invoices")

    @router.add("GET", "/pay/invoices/{id}", "pay", "one invoice")
    def one_invoice(req: Request) -> Response:
        return _single(invoices, req.params["id"], "invoice")

    @router.add("POST", "/pay/invoices/search", "pay",
                "JSON body {query, cursor, limit} -> {data, next_cursor, has_more}")
    def search_invoices(req: Request) -> Response:
        body = req.json()
        query = body.get("query") or {}
        if not isinstance(query, dict):
            raise ApiError(400, "query must be an object of field: value",
                           code="parameter_invalid")
        limit = body.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
                1 <= limit <= settings.max_page_size):
            raise ApiError(400, f"limit must be 1 to {settings.max_page_size}",
                           code="parameter_invalid_integer")
        start = int(decode_cursor(body["cursor"])) if body.get("cursor") else 0
        positions = _search(invoices, query)
        chosen = positions[start:start + limit]
        more = start + limit < len(positions)
        return Response(body=envelope(
            "data", invoices.bodies(chosen), has_more=more,
            next_cursor=encode_cursor(start + limit) if more else None),
            cacheable=False)


def _search(invoices: Collection, query: dict[str, Any]) -> list[int]:
    allowed = {"status", "customer", "currency"}
    unknown = set(query) - allowed
    if unknown:
        raise ApiError(400, f"cannot search by {', '.join(sorted(unknown))}; "
                       f"known: {', '.join(sorted(allowed))}", code="parameter_unknown")
    rows = invoices.rows
    key = tuple(sorted((k, str(v)) for k, v in query.items()))
    return ordered(invoices, ("search", key),
                   lambda pos: all(rows[pos][k] == v for k, v in query.items()),
                   lambda pos: rows[pos]["number"], False)


def _other_routes(router: Router, data: Dataset, settings: Settings) -> None:
    payments, invoices, customers = data.payments, data.invoices, data.customers

    @router.add("GET", "/pay/payments", "pay",
                "payments; offset/limit pages with a total")
    def list_payments(req: Request) -> Response:
        offset = req.int_param("offset", 0, low=0)
        limit = _limit(req, settings, default=50)
        chosen = range(offset, min(offset + limit, len(payments.rows)))
        return Response(body=envelope("results", payments.bodies(chosen),
                                      total=len(payments.rows), offset=offset,
                                      limit=limit),
                        last_modified=payments.last_modified)

    @router.add("GET", "/pay/export/invoices.csv", "pay",
                "invoices as CSV; offset/limit pages with X-Total-Count")
    def export_invoices(req: Request) -> Response:
        offset = req.int_param("offset", 0, low=0)
        limit = req.int_param("limit", 100, low=1, high=1000)
        chosen = invoices.rows[offset:offset + limit]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        writer.writerows([row[column] for column in _CSV_COLUMNS] for row in chosen)
        return Response(body=out.getvalue().encode(),
                        content_type="text/csv; charset=utf-8",
                        headers={"X-Total-Count": str(len(invoices.rows))},
                        last_modified=invoices.last_modified)

    @router.add("GET", "/pay/balance", "pay", "the account balance; one object")
    def balance(req: Request) -> Response:
        totals: dict[str, int] = {}
        for row in invoices.rows:
            currency = row["currency"]
            totals[currency] = totals.get(currency, 0) + row["amount_paid"]
        available = [{"currency": c, "amount": totals[c]} for c in sorted(totals)]
        return Response(body=orjson.dumps({
            "object": "balance", "available": available,
            "customers": len(customers.rows), "livemode": False}),
            last_modified=invoices.last_modified)

    @router.add("GET", "/pay/currencies", "pay", "currencies in use; a plain list")
    def currencies(req: Request) -> Response:
        found = sorted({row["currency"] for row in customers.rows})
        return Response(body=array([orjson.dumps({"code": c}) for c in found]),
                        last_modified=customers.last_modified)
