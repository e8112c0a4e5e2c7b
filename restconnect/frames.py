"""Records to pandas DataFrames.

:class:`FrameBuilder` takes records page by page and builds one frame:
nested objects become ``parent.child`` columns, lists stay Python lists,
declared dtypes and datetime columns are applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FrameBuilder", "FrameOptions", "explode", "shape_frame"]

logger = logging.getLogger(__name__)


@dataclass
class FrameOptions:
    """How records become a frame."""

    sep: str = "."
    dtypes: Mapping[str, str] = field(default_factory=dict)
    datetimes: Sequence[str] = ()
    columns: Sequence[str] = ()
    explode: str | None = None
    keep: Sequence[str] = ()


class FrameBuilder:
    """Collects pages of records and builds the DataFrame at the end.

    Example:
        >>> builder = FrameBuilder(FrameOptions())
        >>> builder.add_page([{"id": 1, "owner": {"login": "a"}}])
        >>> builder.finish().columns.tolist()
        ['id', 'owner.login']
    """

    def __init__(self, options: FrameOptions | None = None):
        self.options = options or FrameOptions()
        self._records: list[Any] = []
        self.count = 0

    def add_page(self, records: Iterable[Any]) -> None:
        """Add one page of records."""
        before = len(self._records)
        self._records.extend(records)
        self.count += len(self._records) - before

    def drain(self) -> pd.DataFrame:
        """Build a frame of the records added so far and forget them."""
        frame = self._build(self._records)
        self._records = []
        return frame

    def finish(self) -> pd.DataFrame:
        """Build the frame of every record added."""
        return self.drain()

    def _build(self, records: list[Any]) -> pd.DataFrame:
        import pandas as pd

        if not records:
            return pd.DataFrame(columns=list(self.options.columns))
        rows = [r if isinstance(r, dict) else {"value": r} for r in records]
        frame = pd.json_normalize(rows, sep=self.options.sep)
        return shape_frame(frame, self.options)


def shape_frame(frame: pd.DataFrame, options: FrameOptions) -> pd.DataFrame:
    """Apply explode, declared datetimes and dtypes to a flattened frame."""
    if options.explode:
        frame = explode(frame, options.explode, options.sep)
    for column in options.datetimes:
        if column in frame.columns:
            frame[column] = _to_datetime(frame[column], column)
    for column, dtype in options.dtypes.items():
        if column in frame.columns:
            frame[column] = _astype(frame[column], dtype, column)
    return frame


def _to_datetime(series: pd.Series, column: str) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series):
        return pd.to_datetime(series, unit="s", utc=True, errors="coerce")
    converted = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    lost = int(converted.isna().sum() - series.isna().sum())
    if lost > 0:
        logger.warning("column %r: %d values are not timestamps and became NaT",
                       column, lost)
    return converted


def _astype(series: pd.Series, dtype: str, column: str) -> pd.Series:
    if dtype in ("datetime", "timestamp"):
        return _to_datetime(series, column)
    try:
        return series.astype(dtype)
    except (TypeError, ValueError) as exc:
        from restconnect.exceptions import SpecError

        raise SpecError(f"column {column!r} cannot be converted to {dtype}: {exc}",
                        path=f"dtypes.{column}") from None


def explode(frame: pd.DataFrame, column: str, sep: str = ".") -> pd.DataFrame:
    """One row per element of a list column; dict elements become columns."""
    import pandas as pd

    if column not in frame.columns:
        raise KeyError(f"cannot explode {column!r}: no such column; columns are "
                       f"{', '.join(map(str, frame.columns))}")
    exploded = frame.explode(column, ignore_index=True)
    values = exploded[column]
    if values.map(lambda v: isinstance(v, dict)).any():
        inner = pd.json_normalize(
            [v if isinstance(v, dict) else {} for v in values], sep=sep)
        inner.columns = [f"{column}{sep}{name}" for name in inner.columns]
        exploded = pd.concat([exploded.drop(columns=[column]), inner], axis=1)
    return exploded
