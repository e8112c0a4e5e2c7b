"""The Stripe, OpenWeather and Art Institute specs on their documented shapes.

No recordings of these APIs exist here, so each test serves answers shaped
as the vendor's API reference shows them (Stripe's list and search objects,
OpenWeather's current weather and forecast, the museum's paginated listings)
through the replay server, and checks what the bundled spec makes of them and
what it sends.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

import restconnect
from restconnect.exceptions import HTTPStatusError
from tests.servers.replay import Exchange, ReplayServer

JSON = {"Content-Type": "application/json"}


def exchange(url: str, body: Any, status: int = 200) -> Exchange:
    return Exchange("GET", url, {}, status, dict(JSON), body)


@pytest.fixture
def serve():
    """Start a replay server for hand-made exchanges; stopped after the test."""
    servers: list[ReplayServer] = []

    def start(upstream: str, *exchanges: Exchange) -> ReplayServer:
        server = ReplayServer(exchanges, upstream=upstream).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def customer(number: int) -> dict[str, Any]:
    return {"id": f"cus_{number:04d}", "object": "customer",
            "created": 1700000000 + number, "email": f"person{number}@example.com",
            "metadata": {"plan": "pro"}, "address": None, "livemode": False}


# ---------------------------------------------------------------- Stripe


def test_stripe_lists_follow_starting_after_until_has_more_is_false(serve):
    api = "https://api.stripe.com/v1/customers"
    people = [customer(n) for n in range(1, 6)]
    page = {"object": "list", "url": "/v1/customers"}
    server = serve(
        "https://api.stripe.com",
        exchange(f"{api}?limit=2", {**page, "has_more": True, "data": people[:2]}),
        exchange(f"{api}?limit=2&starting_after=cus_0002",
                 {**page, "has_more": True, "data": people[2:4]}),
        exchange(f"{api}?limit=2&starting_after=cus_0004",
                 {**page, "has_more": False, "data": people[4:]}),
    )
    conn = restconnect.connect("stripe", base_url=server.url, token="sk_test_abc")
    # Two per page keeps three pages small; the spec asks for Stripe's maximum, 100.
    assert conn.spec.pagination.page_size == 100
    conn.spec.pagination.page_size = 2

    frame = conn.fetch("customers")

    assert frame["id"].tolist() == [person["id"] for person in people]
    assert frame["created"].iloc[0] == datetime.fromtimestamp(1700000001, timezone.utc)
    assert "metadata.plan" in frame.columns
    assert frame.attrs["restconnect"]["pages"] == 3
    assert {item.header("Authorization") for item in server.received} == {
        "Bearer sk_test_abc"}
    assert not server.misses()


def test_stripe_search_pages_with_next_page(serve):
    api = "https://api.stripe.com/v1/customers/search"
    query = "email:'person1@example.com'"
    page = {"object": "search_result", "url": "/v1/customers/search"}
    server = serve(
        "https://api.stripe.com",
        exchange(f"{api}?limit=100&query={query}",
                 {**page, "has_more": True, "next_page": "pg_opaque1",
                  "data": [customer(1)]}),
        exchange(f"{api}?limit=100&query={query}&page=pg_opaque1",
                 {**page, "has_more": False, "next_page": None, "data": [customer(2)]}),
    )
    conn = restconnect.connect("stripe", base_url=server.url, token="sk_test_abc")

    frame = conn.fetch("customer_search", query=query)

    assert frame["id"].tolist() == ["cus_0001", "cus_0002"]
    assert not server.misses()


def test_stripe_balance_is_one_row(serve):
    balance = {"object": "balance", "livemode": False,
               "available": [{"amount": 2217, "currency": "usd"}],
               "pending": [{"amount": 0, "currency": "usd"}]}
    server = serve("https://api.stripe.com",
                   exchange("https://api.stripe.com/v1/balance", balance))
    conn = restconnect.connect("stripe", base_url=server.url, token="sk_test_abc")

    frame = conn.fetch("balance")

    assert len(frame) == 1
    assert frame["available"].iloc[0] == balance["available"]


# ---------------------------------------------------------------- OpenWeather


WEATHER = {
    "coord": {"lon": 10.99, "lat": 44.34},
    "weather": [{"id": 501, "main": "Rain", "description": "moderate rain",
                 "icon": "10d"}],
    "base": "stations",
    "main": {"temp": 298.48, "feels_like": 298.74, "pressure": 1015, "humidity": 64},
    "visibility": 10000, "wind": {"speed": 0.62, "deg": 349},
    "dt": 1661870592,
    "sys": {"country": "IT", "sunrise": 1661834187, "sunset": 1661882248},
    "timezone": 7200, "id": 3163858, "name": "Zocca", "cod": 200,
}


def test_openweather_sends_the_key_as_appid_and_gives_one_row(serve):
    url = "https://api.openweathermap.org/data/2.5/weather"
    server = serve("https://api.openweathermap.org",
                   exchange(f"{url}?lat=44.34&lon=10.99&appid=k3y-value", WEATHER))
    conn = restconnect.connect("openweather", base_url=server.url, api_key="k3y-value")

    frame = conn.fetch("current", lat=44.34, lon=10.99)

    assert len(frame) == 1
    assert frame["main.temp"].iloc[0] == WEATHER["main"]["temp"]
    assert frame["dt"].iloc[0] == datetime.fromtimestamp(WEATHER["dt"], timezone.utc)
    assert frame["sys.sunrise"].iloc[0] == datetime.fromtimestamp(
        WEATHER["sys"]["sunrise"], timezone.utc)
    assert server.received[0].params["appid"] == "k3y-value"


def test_openweather_forecast_rows_come_from_list(serve):
    url = "https://api.openweathermap.org/data/2.5/forecast"
    steps = [{"dt": 1661871600 + 10800 * n, "main": {"temp": 296.0 + n},
              "weather": [{"main": "Clouds"}], "dt_txt": "2022-08-30 15:00:00"}
             for n in range(3)]
    body = {"cod": "200", "message": 0, "cnt": 3, "list": steps,
            "city": {"id": 3163858, "name": "Zocca"}}
    server = serve("https://api.openweathermap.org",
                   exchange(f"{url}?q=Zocca,IT&appid=k3y-value", body))
    conn = restconnect.connect("openweather", base_url=server.url, api_key="k3y-value")

    frame = conn.fetch("forecast", q="Zocca,IT")

    assert frame["main.temp"].tolist() == [step["main"]["temp"] for step in steps]
    assert "city.name" not in frame.columns


def test_openweather_errors_never_show_the_key(serve):
    url = "https://api.openweathermap.org/data/2.5/weather"
    refusal = {"cod": 401, "message": "Invalid API key. Please see "
               "https://openweathermap.org/faq#error401 for more info."}
    server = serve("https://api.openweathermap.org",
                   exchange(f"{url}?q=Zocca&appid=k3y-value", refusal, status=401))
    conn = restconnect.connect("openweather", base_url=server.url, api_key="k3y-value")

    with pytest.raises(restconnect.RestConnectError) as caught:
        conn.fetch("current", q="Zocca")

    assert "401" in str(caught.value)
    assert "k3y-value" not in str(caught.value)
    assert "appid" in str(caught.value)


# ---------------------------------------------------------------- Art Institute


def test_artic_follows_pagination_next_url_and_names_itself(serve):
    api = "https://api.artic.edu/api/v1/artworks"
    works = [{"id": n, "title": f"Work {n}", "updated_at": "2024-05-06T07:08:09-05:00"}
             for n in range(1, 4)]

    def listing(page: int, data: list, more: bool) -> dict[str, Any]:
        pagination = {"total": 3, "limit": 2, "offset": 2 * (page - 1),
                      "total_pages": 2, "current_page": page}
        if more:
            pagination["next_url"] = f"{api}?page={page + 1}&limit=2"
        return {"pagination": pagination, "data": data,
                "info": {"license_text": "CC0", "version": "1.10"},
                "config": {"iiif_url": "https://www.artic.edu/iiif/2"}}

    server = serve("https://api.artic.edu",
                   exchange(f"{api}?limit=2", listing(1, works[:2], True)),
                   exchange(f"{api}?page=2&limit=2", listing(2, works[2:], False)))
    conn = restconnect.connect("artic", base_url=server.url + "/api/v1")
    conn.spec.pagination.page_size = 2

    frame = conn.fetch("artworks")

    assert frame["id"].tolist() == [1, 2, 3]
    assert str(frame["updated_at"].dt.tz) == "UTC"
    assert not server.misses()
    for received in server.received:
        assert "restconnect" in received.header("AIC-User-Agent")
        assert received.header("Authorization") is None


def test_artic_single_artwork_is_one_row(serve):
    body = {"data": {"id": 129884, "title": "Starry Night and the Astronauts"},
            "info": {"version": "1.10"}, "config": {}}
    server = serve("https://api.artic.edu",
                   exchange("https://api.artic.edu/api/v1/artworks/129884", body))
    conn = restconnect.connect("artic", base_url=server.url + "/api/v1")

    frame = conn.fetch("artwork", id=129884)

    assert frame[["id", "title"]].to_dict("records") == [body["data"]]


def test_artic_an_unknown_artwork_is_a_404(serve):
    body = {"status": 404, "error": "Not found",
            "detail": "The item you requested cannot be found."}
    server = serve("https://api.artic.edu",
                   exchange("https://api.artic.edu/api/v1/artworks/1", body, 404))
    conn = restconnect.connect("artic", base_url=server.url + "/api/v1")

    with pytest.raises(HTTPStatusError) as caught:
        conn.fetch("artwork", id=1)

    assert (caught.value.status, caught.value.endpoint) == (404, "artwork")
