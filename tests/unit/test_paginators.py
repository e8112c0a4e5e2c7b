"""Paginators compute requests; these tests drive them with built pages."""

from __future__ import annotations

import pytest
import requests

from restconnect.exceptions import PaginationError
from restconnect.pagination import Page, PageRequest, RepeatGuard, make_paginator
from restconnect.spec import PaginationSpec


def response(headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp.headers.update(headers or {})
    return resp


def page(request: PageRequest, body, records=None, headers=None, index=0) -> Page:
    if records is None:
        records = body if isinstance(body, list) else []
    return Page(index, request, response(headers), body, records)


def paginator(**settings):
    return make_paginator(PaginationSpec(**settings))


BASE = PageRequest("GET", "https://api.example.com/items", {"q": "x"})


def test_link_header_follows_next_verbatim():
    p = paginator(kind="link_header", page_size=100)
    first = p.first(BASE)
    assert first.params == {"q": "x", "per_page": 100}
    link = ('<https://api.example.com/repositories/9/items?page=2&per_page=100>; rel="next", '
            '<https://api.example.com/users{?since}>; rel="first"')
    nxt = p.next(first, page(first, [1], headers={"Link": link}))
    assert nxt.url == "https://api.example.com/repositories/9/items?page=2&per_page=100"
    assert nxt.params == {}
    assert p.next(nxt, page(nxt, [1], headers={})) is None


def test_link_header_plan_uses_rel_last():
    p = paginator(kind="link_header")
    link = ('<https://a.test/i?per_page=2&page=2>; rel="next", '
            '<https://a.test/i?per_page=2&page=5>; rel="last"')
    planned = p.plan(BASE, page(BASE, [1, 2], headers={"Link": link}))
    assert [r.url.rsplit("page=", 1)[1] for r in planned] == ["2", "3", "4", "5"]


def test_link_header_without_last_is_not_planned():
    p = paginator(kind="link_header")
    link = '<https://a.test/i?since=5>; rel="next"'
    assert p.plan(BASE, page(BASE, [1], headers={"Link": link})) is None


def test_cursor_stripe_style():
    p = paginator(kind="cursor", cursor_path="data[-1].id", cursor_param="starting_after",
                  has_more_path="has_more", page_size=2)
    first = p.first(BASE)
    assert first.params["limit"] == 2
    body = {"data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": True}
    nxt = p.next(first, page(first, body, body["data"]))
    assert nxt.params["starting_after"] == "cus_2"
    done = {"data": [{"id": "cus_3"}], "has_more": False}
    assert p.next(nxt, page(nxt, done, done["data"])) is None


@pytest.mark.parametrize("cursor", [None, "", []])
def test_cursor_stops_on_empty_cursor(cursor):
    p = paginator(kind="cursor", cursor_path="next", cursor_param="c")
    assert p.next(BASE, page(BASE, {"next": cursor, "items": [1]}, [1])) is None


def test_cursor_in_json_body():
    p = paginator(kind="cursor", cursor_path="next", cursor_param="cursor", location="body")
    request = PageRequest("POST", "https://a.test/search", {}, {"query": "x"})
    nxt = p.next(request, page(request, {"next": "abc", "items": [1]}, [1]))
    assert nxt.json == {"query": "x", "cursor": "abc"}
    assert request.json == {"query": "x"}


def test_offset_stops_at_total_and_plans():
    p = paginator(kind="offset", page_size=10, total_path="total")
    first = p.first(BASE)
    assert first.params["offset"] == 0 and first.params["limit"] == 10
    body = {"total": 25, "items": list(range(10))}
    planned = p.plan(first, page(first, body, body["items"]))
    assert [r.params["offset"] for r in planned] == [10, 20]
    last = first.with_param("offset", 20)
    body = {"total": 25, "items": list(range(5))}
    assert p.next(last, page(last, body, body["items"])) is None


def test_offset_stops_on_short_page_without_total():
    p = paginator(kind="offset", page_size=10)
    first = p.first(BASE)
    assert p.next(first, page(first, list(range(10)))).params["offset"] == 10
    assert p.next(first, page(first, list(range(3)))) is None


def test_page_number_start_and_total_pages():
    p = paginator(kind="page_number", start=0, total_pages_path="pages", page_size=5,
                  page_size_param="size")
    first = p.first(BASE)
    assert first.params["page"] == 0 and first.params["size"] == 5
    body = {"pages": 3, "items": list(range(5))}
    planned = p.plan(first, page(first, body, body["items"]))
    assert [r.params["page"] for r in planned] == [1, 2]
    last = first.with_param("page", 2)
    assert p.next(last, page(last, body, body["items"])) is None


def test_page_number_stops_on_empty_page():
    p = paginator(kind="page_number")
    first = p.first(BASE)
    assert p.next(first, page(first, [1, 2])).params["page"] == 2
    assert p.next(first, page(first, [])) is None


def test_header_cursor():
    p = paginator(kind="header_cursor", cursor_header="X-Next", cursor_param="after")
    nxt = p.next(BASE, page(BASE, [1], headers={"X-Next": "k9"}))
    assert nxt.params["after"] == "k9"
    assert p.next(BASE, page(BASE, [1], headers={})) is None


@pytest.mark.parametrize(("body", "headers", "kind"), [
    ([1], {"Link": '<https://a.test/i?page=2>; rel="next"'}, "link_header"),
    ({"items": [1], "next": "https://a.test/i?p=2"}, {}, "next_url"),
    ({"items": [1], "next_cursor": "abc"}, {}, "cursor"),
    ({"data": [{"id": "x"}], "has_more": True}, {}, "cursor"),
    ({"items": [1], "total": 40}, {}, "page_number"),
    ({"items": [1]}, {}, "none"),
])
def test_auto_detects_the_kind(body, headers, kind, caplog):
    p = paginator(kind="auto")
    p.next(BASE, page(BASE, body, [1], headers=headers))
    assert p.chosen_kind == kind
    assert kind in caplog.text


def test_repeat_guard_raises_on_a_repeated_cursor():
    guard = RepeatGuard("demo.items")
    guard.check(BASE.with_param("cursor", "a"), 0)
    guard.check(BASE.with_param("cursor", "b"), 1)
    with pytest.raises(PaginationError, match="repeats page 2"):
        guard.check(BASE.with_param("cursor", "b"), 2)


def test_fingerprint_ignores_query_order():
    a = PageRequest("GET", "https://a.test/i?b=2&a=1")
    b = PageRequest("GET", "https://a.test/i?a=1&b=2")
    assert a.fingerprint() == b.fingerprint()


def test_only_the_link_header_kind_finds_the_next_page_without_the_body():
    from restconnect.pagination import (
        LinkHeaderPaginator,
        available_paginators,
        reads_body,
    )

    headers_only = [kind for kind in available_paginators()
                    if not reads_body(paginator(kind=kind))]
    assert headers_only == ["link_header"]

    class StopOnEmptyPage(LinkHeaderPaginator):
        kind = "link_header_until_empty"

        def next(self, request, page):
            return super().next(request, page) if page.records else None

    class SmallerPages(LinkHeaderPaginator):
        kind = "link_header_small"

        def default_size_param(self):
            return "size"

    spec = PaginationSpec(kind="link_header")
    assert reads_body(StopOnEmptyPage(spec))  # its own next() reads the records
    assert not reads_body(SmallerPages(spec))


def test_auto_reads_the_body_until_it_has_chosen_link_header():
    from restconnect.pagination import reads_body

    p = paginator(kind="auto")
    assert reads_body(p)
    link = '<https://api.example.com/items?page=2>; rel="next"'
    p.next(BASE, page(BASE, [1], headers={"Link": link}))
    assert not reads_body(p)
