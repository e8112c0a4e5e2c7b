"""Progress bars for paginated fetches.

A fetch shows one bar (tqdm's ``auto`` flavour: a widget in a notebook, text
in a terminal) that counts records, names the page it is on, and knows the
total when the API tells it. Where nobody watches (a cron job, a CI log, a
pipe) it stays off, and ``progress=False`` turns it off everywhere.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from restconnect.decoding import search_path

__all__ = ["FetchProgress", "progress_enabled", "total_records"]

logger = logging.getLogger(__name__)

# Body keys that commonly carry the total number of records.
_TOTAL_KEYS = ("total", "total_count", "totalResults", "count")
_TOTAL_HEADERS = ("X-Total-Count", "X-Total")


def progress_enabled(setting: bool | None, stream: Any = None) -> bool:
    """Whether to show a bar: the setting if given, else only where a person watches."""
    if setting is not None:
        return bool(setting)
    from restconnect.credentials import in_notebook

    if in_notebook():
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def total_records(page: Any, total_path: str | None = None) -> int | None:
    """The total record count a page announces, or None.

    Looks at the spec's ``total_path`` first, then common body keys, then
    ``X-Total-Count``-style headers.
    """
    body = getattr(page, "body", None)
    candidates: list[Any] = []
    if total_path and body is not None:
        candidates.append(search_path(body, total_path))
    if isinstance(body, dict):
        candidates.extend(body.get(key) for key in _TOTAL_KEYS)
    headers = getattr(getattr(page, "response", None), "headers", None) or {}
    candidates.extend(headers.get(name) for name in _TOTAL_HEADERS)
    for value in candidates:
        number = _count(value)
        if number is not None:
            return number
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class FetchProgress:
    """One fetch's bar; a no-op when disabled.

    Args:
        label: what is fetched, such as ``github.repos``.
        enabled: the ``progress=`` setting (None means: only where someone watches).
        total_path: the spec's path to the total record count, if any.
        limit: the fetch's record limit, which caps the total shown.

    Example:
        >>> with FetchProgress("demo.items", enabled=False) as bar:
        ...     bar.update(records=10)
        >>> bar.records
        10
    """

    def __init__(
        self,
        label: str,
        *,
        enabled: bool | None = None,
        total_path: str | None = None,
        limit: int | None = None,
        file: Any = None,
    ):
        self.label = label
        self.total_path = total_path
        self.limit = limit
        self.pages = 0
        self.records = 0
        self.total: int | None = None
        self._bar = self._open(file) if progress_enabled(enabled, file) else None

    def _open(self, file: Any) -> Any:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(
            desc=self.label, unit=" records", file=file, leave=True, dynamic_ncols=True
        )

    @property
    def active(self) -> bool:
        """Whether a bar is shown."""
        return self._bar is not None

    def page(self, page: Any) -> None:
        """Count one page (its records, and the total if it announces one)."""
        if self.total is None:
            total = total_records(page, self.total_path)
            if total is not None:
                self._set_total(total)
        self.update(records=len(getattr(page, "records", ()) or ()))

    def update(self, *, records: int, pages: int = 1) -> None:
        """Add records and pages."""
        self.pages += pages
        self.records += records
        if self._bar is not None:
            self._bar.update(records)
            self._bar.set_postfix_str(f"page {self.pages}", refresh=False)

    def _set_total(self, total: int) -> None:
        if self.limit is not None:
            total = min(total, self.limit)
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        """Close the bar, leaving its last state on screen."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.pages} pages", refresh=False)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> FetchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
