"""Deterministic demo data for the sandbox's two services.

Everything comes from one seeded ``random.Random``, so the same seed and
sizes give byte-identical records on every machine. Timestamps lie in a
fixed past window (2023-01-01 to 2025-06-30) so that records touched while
the server runs are always the newest.
"""

from __future__ import annotations

import calendar
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

import orjson

__all__ = ["LABELS", "Collection", "Dataset", "Sizes", "iso", "parse_time"]

EPOCH_START = calendar.timegm((2023, 1, 1, 0, 0, 0))
EPOCH_END = calendar.timegm((2025, 6, 30, 0, 0, 0))

_FIRST = (
    "Ada", "Bruno", "Chiara", "Dmitri", "Esme", "Farid", "Greta", "Hiro", "Ines",
    "Jonas", "Kira", "Luca", "Mina", "Noor", "Oskar", "Priya", "Quentin", "Rosa",
    "Sven", "Tariq", "Uma", "Viktor", "Wren", "Ximena", "Yusuf", "Zoe",
)
_LAST = (
    "Abara", "Bellweather", "Castellan", "Dunmore", "Eskildsen", "Fairbank",
    "Galloway", "Holmqvist", "Iwasaki", "Jovanovic", "Kettering", "Lindqvist",
    "Marchetti", "Nakagawa", "Okonkwo", "Pellegrini", "Quarles", "Rasmussen",
)
_WORDS = (
    "amber", "basalt", "cinder", "delta", "ember", "fjord", "glacier", "harbor",
    "iris", "juniper", "kelp", "lumen", "meadow", "nimbus", "orbit", "prism",
    "quartz", "ripple", "sable", "tundra", "umbra", "vertex", "willow", "zephyr",
)
_TOPICS = (
    "api", "cli", "data", "etl", "http", "json", "ml", "pandas", "parser",
    "rest", "scraper", "sql", "testing", "web",
)
_LANGUAGES = ("Python", "Go", "Rust", "TypeScript", "Java", "C", "Ruby", None)
_LICENSES = (
    {"key": "mit", "name": "MIT License", "spdx_id": "MIT"},
    {"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0"},
    {"key": "bsd-3-clause", "name": "BSD 3-Clause License", "spdx_id": "BSD-3-Clause"},
    {"key": "gpl-3.0", "name": "GNU General Public License v3.0",
     "spdx_id": "GPL-3.0"},
    None,
)
#: Every label an issue may carry.
LABELS = (
    {"id": 101, "name": "bug", "color": "d73a4a"},
    {"id": 102, "name": "enhancement", "color": "a2eeef"},
    {"id": 103, "name": "documentation", "color": "0075ca"},
    {"id": 104, "name": "good first issue", "color": "7057ff"},
    {"id": 105, "name": "question", "color": "d876e3"},
    {"id": 106, "name": "wontfix", "color": "ffffff"},
)
_CITIES = (
    ("Lisbon", "PT"), ("Osaka", "JP"), ("Tampere", "FI"), ("Accra", "GH"),
    ("Valparaiso", "CL"), ("Ghent", "BE"), ("Hobart", "AU"), ("Quebec", "CA"),
)
_CURRENCIES = ("usd", "eur", "gbp", "jpy")
_INVOICE_STATUSES = ("draft", "open", "paid", "paid", "paid", "void", "uncollectible")
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def iso(epoch: float) -> str:
    """``2024-03-05T12:34:56Z`` for an epoch second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp or date; naive means UTC.

    Raises:
        ValueError: the text is not a timestamp.
    """
    if len(text) == 20 and text[-1] == "Z" and text[10] == "T":
        # The sandbox's own format: skip the general parser.
        return calendar.timegm((int(text[:4]), int(text[5:7]), int(text[8:10]),
                                int(text[11:13]), int(text[14:16]), int(text[17:19])))
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if " " in value and "T" not in value:
        value = value.replace(" ", "T", 1)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class Sizes:
    """How many records each collection holds."""

    users: int = 60
    repos: int = 250
    issues: int = 1200
    customers: int = 300
    invoices: int = 900

    @classmethod
    def of(cls, value: Sizes | dict[str, int] | None) -> Sizes:
        """Sizes from a mapping of the fields to change, or the defaults."""
        if value is None or isinstance(value, Sizes):
            return value or cls()
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown sandbox sizes: {', '.join(sorted(unknown))}")
        return cls(**value)


class Collection:
    """Rows of one kind, each kept pre-serialised for fast page bodies.

    Attributes:
        name: the collection's name (``issues``).
        key: the field that identifies a row.
        version: bumped on every change; views cached on it go stale.
    """

    def __init__(self, name: str, rows: list[dict[str, Any]], key: str = "id",
                 updated_field: str | None = None):
        self.name = name
        self.key = key
        self.updated_field = updated_field
        self.rows = rows
        self.version = 0
        self.lock = threading.RLock()
        self._views: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
        self._reindex()

    def _reindex(self) -> None:
        self.index = {row[self.key]: pos for pos, row in enumerate(self.rows)}
        self.encoded = [orjson.dumps(row) for row in self.rows]
        self.updated = [self._updated(row) for row in self.rows]
        self.last_modified = max(self.updated, default=EPOCH_START)

    def _updated(self, row: dict[str, Any]) -> float:
        if self.updated_field is None:
            return EPOCH_START
        value = row.get(self.updated_field)
        return float(value) if isinstance(value, (int, float)) else parse_time(value)

    def get(self, key: Any) -> dict[str, Any] | None:
        pos = self.index.get(key)
        return None if pos is None else self.rows[pos]

    def view(self, key: tuple[Any, ...], build: Callable[[], list[int]]) -> list[int]:
        """Row positions for a filter and order, cached until the next change."""
        with self.lock:
            cache_key = (self.version, *key)
            found = self._views.get(cache_key)
            if found is None:
                found = build()
                self._views[cache_key] = found
                while len(self._views) > 64:
                    self._views.popitem(last=False)
            return found

    def bodies(self, positions: Iterable[int]) -> list[bytes]:
        encoded = self.encoded
        return [encoded[pos] for pos in positions]

    def load(self, rows: list[dict[str, Any]]) -> None:
        """Replace every row, as after a fresh generation."""
        with self.lock:
            self.rows[:] = rows
            self._reindex()
            self.version += 1

    def replace(self, changed: dict[Any, dict[str, Any]],
                added: list[dict[str, Any]] = ()) -> None:
        """Store changed rows (by key) and new rows, re-encoding what changed."""
        with self.lock:
            for key, row in changed.items():
                pos = self.index[key]
                self.rows[pos] = row
                self.encoded[pos] = orjson.dumps(row)
                self.updated[pos] = self._updated(row)
            if added:
                self.rows.extend(added)
                self._reindex()
            self.last_modified = max(self.updated, default=EPOCH_START)
            self.version += 1


class Dataset:
    """Both services' collections, generated from a seed.

    Attributes:
        users, repos, issues, events: the code-hosting service.
        customers, invoices, payments: the payments service.
    """

    def __init__(self, seed: int = 42, sizes: Sizes | dict[str, int] | None = None):
        self.seed = seed
        self.sizes = Sizes.of(sizes)
        self._rng = random.Random(seed)
        users = self._users()
        repos = self._repos(users)
        issues = self._issues(users, repos)
        customers = self._customers(users)
        invoices = self._invoices(customers)
        self.users = Collection("users", users)
        self.repos = Collection("repos", repos, updated_field="updated_at")
        self.issues = Collection("issues", issues, updated_field="updated_at")
        self.events = Collection("events", self._events(issues))
        self.customers = Collection("customers", customers, updated_field="created")
        self.invoices = Collection("invoices", invoices, updated_field="updated_at")
        self.payments = Collection("payments", self._payments(invoices))
        self.releases = self._releases(repos)
        self._touch_rng = random.Random(seed + 1)
        self._touch_clock = 0.0
        self._dirty = False

    def restore(self) -> None:
        """Undo every change: regenerate the records from the seed."""
        if not self._dirty:
            return
        fresh = Dataset(self.seed, self.sizes)
        for name in ("users", "repos", "issues", "events", "customers", "invoices",
                     "payments"):
            self.collection(name).load(fresh.collection(name).rows)
        self.releases = fresh.releases
        self._touch_rng = random.Random(self.seed + 1)
        self._dirty = False

    def collection(self, name: str) -> Collection:
        found = getattr(self, name, None)
        if not isinstance(found, Collection):
            raise KeyError(name)
        return found

    # ----------------------------------------------------------- generation

    def _when(self, low: float = EPOCH_START, high: float = EPOCH_END) -> int:
        return self._rng.randint(int(low), int(high))

    def _users(self) -> list[dict[str, Any]]:
        rng, rows, seen = self._rng, [], set()
        for number in range(1, self.sizes.users + 1):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            login = "demo" if number == 1 else f"{first.lower()}{last[:3].lower()}"
            while login in seen:
                login += str(rng.randint(0, 9))
            seen.add(login)
            rows.append({
                "id": number, "login": login,
                "name": "Demo User" if number == 1 else f"{first} {last}",
                "type": "Organization" if number % 9 == 0 else "User",
                "company": rng.choice((None, "Northwind", "Acme Labs", "Initech")),
                "email": None if rng.random() < 0.3 else f"{login}@example.org",
                "location": rng.choice(_CITIES)[0] if rng.random() < 0.7 else None,
                "followers": rng.randint(0, 900), "site_admin": number == 1,
                "created_at": iso(self._when()),
            })
        return rows

    def _repos(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng, rows, seen = self._rng, [], set()
        for number in range(1, self.sizes.repos + 1):
            owner = users[0] if number % 12 == 1 else rng.choice(users)
            name = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
            while f"{owner['login']}/{name}" in seen:
                name += f"-{rng.randint(2, 9)}"
            full_name = f"{owner['login']}/{name}"
            seen.add(full_name)
            created = self._when(EPOCH_START, EPOCH_END - 86400 * 30)
            updated = self._when(created, EPOCH_END)
            rows.append({
                "id": 100000 + number * 13, "name": name, "full_name": full_name,
                "owner": {"login": owner["login"], "id": owner["id"],
                          "type": owner["type"]},
                "private": rng.random() < 0.1,
                "description": None if rng.random() < 0.2 else
                f"A {rng.choice(_WORDS)} toolkit for {rng.choice(_TOPICS)} work",
                "fork": rng.random() < 0.15,
                "language": rng.choice(_LANGUAGES),
                "topics": sorted(rng.sample(_TOPICS, rng.randint(0, 4))),
                "license": rng.choice(_LICENSES),
                "stargazers_count": int(rng.paretovariate(1.2) * 3) - 3,
                "forks_count": rng.randint(0, 120),
                "open_issues_count": 0, "default_branch": "main",
                "archived": rng.random() < 0.05,
                "html_url": f"https://code.sandbox.invalid/{full_name}",
                "created_at": iso(created), "updated_at": iso(updated),
                "pushed_at": None if rng.random() < 0.05 else iso(updated),
            })
        return rows

    def _issues(self, users: list[dict[str, Any]],
                repos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng, rows, numbers = self._rng, [], {}
        for number in range(1, self.sizes.issues + 1):
            repo = rng.choice(repos)
            numbers[repo["id"]] = numbers.get(repo["id"], 0) + 1
            author = rng.choice(users)
            created = self._when(EPOCH_START, EPOCH_END - 86400)
            updated = self._when(created, EPOCH_END)
            closed = rng.random() < 0.55
            assignee = rng.choice(users) if rng.random() < 0.4 else None
            if not closed:
                repo["open_issues_count"] += 1
            rows.append({
                "id": 5000000 + number, "number": numbers[repo["id"]],
                "repository": repo["full_name"], "repository_id": repo["id"],
                "title": f"{rng.choice(_WORDS).capitalize()} "
                         f"{rng.choice(('fails', 'drifts', 'stalls', 'leaks'))} "
                         f"on {rng.choice(_TOPICS)} input",
                "state": "closed" if closed else "open",
                "user": {"login": author["login"], "id": author["id"]},
                "assignee": None if assignee is None else
                {"login": assignee["login"], "id": assignee["id"]},
                "labels": sorted(rng.sample(LABELS, rng.randint(0, 3)),
                                 key=lambda label: label["id"]),
                "comments": rng.randint(0, 40), "locked": rng.random() < 0.03,
                "body": None if rng.random() < 0.15 else
                f"Seen with {rng.choice(_LANGUAGES) or 'plain'} clients.",
                "created_at": iso(created), "updated_at": iso(updated),
                "closed_at": iso(updated) if closed else None,
            })
        return rows

    def _events(self, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events = []
        for issue in issues:
            events.append(self._event(issue, "opened", issue["created_at"]))
            if issue["closed_at"]:
                events.append(self._event(issue, "closed", issue["closed_at"]))
        events.sort(key=lambda event: (event["created_at"], event["id"]), reverse=True)
        return events

    @staticmethod
    def _event(issue: dict[str, Any], action: str, when: str) -> dict[str, Any]:
        suffix = 1 if action == "opened" else 2
        return {
            "id": f"ev{issue['id'] * 10 + suffix}", "type": "IssuesEvent",
            "actor": dict(issue["user"]), "repository": issue["repository"],
            "payload": {"action": action, "issue_number": issue["number"]},
            "created_at": when,
        }

    def _object_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choices(_ALPHABET, k=14))

    def _customers(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng, rows = self._rng, []
        for number in range(1, self.sizes.customers + 1):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            city = rng.choice(_CITIES)
            linked = rng.choice(users) if rng.random() < 0.6 else None
            rows.append({
                "id": self._object_id("cus_"), "object": "customer",
                "email": f"{first.lower()}.{last.lower()}{number}@example.com",
                "name": f"{first} {last}", "created": self._when(),
                "currency": rng.choice(_CURRENCIES),
                "balance": rng.choice((0, 0, 0, -500, 1200, 2500)),
                "delinquent": rng.random() < 0.08,
                "code_login": linked["login"] if linked else None,
                "address": None if rng.random() < 0.25 else
                {"city": city[0], "country": city[1]},
                "metadata": {"tier": rng.choice(("free", "team", "enterprise"))},
            })
            _link_metadata(rows[-1], linked)
        rows.sort(key=lambda row: (row["created"], row["id"]), reverse=True)
        return rows

    def _invoices(self, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng, rows = self._rng, []
        for number in range(1, self.sizes.invoices + 1):
            customer = rng.choice(customers)
            created = self._when(customer["created"], EPOCH_END)
            lines = [{"description": f"{rng.choice(_WORDS).capitalize()} plan",
                      "quantity": rng.randint(1, 5),
                      "unit_amount": rng.choice((900, 1900, 4900, 9900))}
                     for _ in range(rng.randint(1, 3))]
            due = sum(line["quantity"] * line["unit_amount"] for line in lines)
            rows.append(self._invoice_row(number, customer, created, lines, due))
        rows.sort(key=lambda row: (row["created"], row["id"]), reverse=True)
        return rows

    def _invoice_row(self, number: int, customer: dict[str, Any], created: int,
                     lines: list[dict[str, Any]], due: int) -> dict[str, Any]:
        status = self._rng.choice(_INVOICE_STATUSES)
        paid = due if status == "paid" else 0
        updated = self._when(created, EPOCH_END)
        return {
            "id": self._object_id("in_"), "object": "invoice",
            "number": f"SBX-{number:06d}", "customer": customer["id"],
            "customer_email": customer["email"], "currency": customer["currency"],
            "amount_due": due, "amount_paid": paid, "amount_remaining": due - paid,
            "status": status, "lines": lines, "created": created,
            "due_date": None if status == "draft" else created + 30 * 86400,
            "paid_at": iso(updated) if status == "paid" else None,
            "updated_at": iso(updated),
        }

    def _payments(self, invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for invoice in sorted(invoices, key=lambda row: row["number"]):
            if invoice["status"] != "paid":
                continue
            rows.append({
                "id": f"py_{invoice['id'][3:]}", "invoice": invoice["id"],
                "customer": invoice["customer"], "amount": invoice["amount_paid"],
                "currency": invoice["currency"],
                "method": ("card", "bank_transfer", "wallet")[len(rows) % 3],
                "created_at": invoice["paid_at"],
            })
        return rows

    def _releases(self, repos: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
        releases: dict[int, list[dict[str, Any]]] = {}
        for repo in repos:
            count = repo["id"] % 4 - 1
            if count <= 0:
                continue
            releases[repo["id"]] = [
                {"id": repo["id"] * 100 + n, "tag_name": f"v{n}.0.0",
                 "name": f"Release {n}.0", "draft": False,
                 "published_at": repo["updated_at"]}
                for n in range(1, count + 1)]
        return releases

    # ------------------------------------------------------------- changes

    def touch(self, name: str, *, ids: list[Any] | None = None,
              count: int | None = None, create: int = 0) -> dict[str, Any]:
        """Change some records of a collection so they look freshly updated.

        Args:
            name: ``issues``, ``invoices``, ``repos`` or ``customers``.
            ids: the records to change; by default ``count`` seeded-random ones.
            count: how many records to pick when ``ids`` is not given; by
                default one, or none when records are created.
            create: how many new records to add (``issues`` and ``invoices``).

        Returns:
            ``{"touched": [ids], "created": [ids], "updated_at": iso}``.

        Raises:
            KeyError: unknown collection or record id.
        """
        collection = self.collection(name)
        self._dirty = True
        with collection.lock:
            stamp = self._next_stamp(collection)
            if count is None:
                count = 0 if create else 1
            chosen = self._pick(collection, ids, count)
            changed = {key: _changed(name, dict(collection.get(key)), stamp)
                       for key in chosen}
            added = [self._new_row(name, collection, stamp, offset)
                     for offset in range(create)]
            collection.replace(changed, added)
        return {"touched": chosen, "created": [row[collection.key] for row in added],
                "updated_at": iso(stamp)}

    def _next_stamp(self, collection: Collection) -> float:
        # Strictly after every existing timestamp, so "since" filters see it.
        self._touch_clock = max(float(int(time.time())), collection.last_modified + 1,
                                self._touch_clock + 1)
        return self._touch_clock

    def _pick(self, collection: Collection, ids: list[Any] | None,
              count: int) -> list[Any]:
        if ids is None:
            keys = sorted(collection.index, key=str)
            return self._touch_rng.sample(keys, min(count, len(keys)))
        missing = [key for key in ids if key not in collection.index]
        if missing:
            raise KeyError(f"no {collection.name} with id {missing[0]!r}")
        return list(ids)

    def _new_row(self, name: str, collection: Collection, stamp: float,
                 offset: int = 0) -> dict[str, Any]:
        rng = self._touch_rng
        template = dict(collection.rows[rng.randrange(len(collection.rows))])
        if name == "issues":
            new_id = max(collection.index) + 1 + offset
            template.update(id=new_id, number=new_id - 5000000, state="open",
                            closed_at=None, comments=0, created_at=iso(stamp))
        elif name == "invoices":
            template.update(id=self._object_id("in_"), status="open", amount_paid=0,
                            amount_remaining=template["amount_due"], paid_at=None,
                            created=int(stamp), due_date=int(stamp) + 30 * 86400,
                            number=f"SBX-{len(collection.rows) + 1 + offset:06d}")
        else:
            raise KeyError(f"records cannot be created in {name!r}")
        return _changed(name, template, stamp, mutate=False)


def _link_metadata(customer: dict[str, Any], user: dict[str, Any] | None) -> None:
    """Cross-service keys on a customer linked to a code-hosting user.

    Like Stripe's, metadata values are strings: ``code_user_id`` is the
    user's integer id as text, and ``code_email`` the user's email as typed at
    sign-up (first letter upper-cased), so joins must normalise type and case.
    No random draws here, so every other generated value stays as it was.
    """
    if user is None:
        return
    customer["metadata"]["code_user_id"] = str(user["id"])
    if user["email"]:
        email = user["email"]
        customer["metadata"]["code_email"] = email[:1].upper() + email[1:]


def _changed(name: str, row: dict[str, Any], stamp: float, *,
             mutate: bool = True) -> dict[str, Any]:
    """The row after a visible edit, stamped ``updated_at``."""
    if name in ("issues", "invoices", "repos"):
        row["updated_at"] = iso(stamp)
    if not mutate:
        return row
    if name == "issues":
        row["comments"] += 1
        closing = row["state"] == "open"
        row["state"] = "closed" if closing else "open"
        row["closed_at"] = iso(stamp) if closing else None
    elif name == "invoices" and row["status"] in ("draft", "open"):
        row.update(status="paid", amount_paid=row["amount_due"], amount_remaining=0,
                   paid_at=iso(stamp))
    elif name == "invoices":
        row["lines"] = [*row["lines"], {"description": "Adjustment", "quantity": 1,
                                        "unit_amount": 100}]
        row["amount_due"] += 100
        row["amount_remaining"] += 100
    elif name == "repos":
        row["stargazers_count"] += 1
        row["pushed_at"] = iso(stamp)
    elif name == "customers":
        row["balance"] += 100
    return row
