"""A holder for credential values that does not show them."""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["Secret", "reveal"]

MASK = "********"


class Secret:
    """A credential value that masks itself.

    ``repr`` and ``str`` show a mask, pickling refuses, and equality compares
    identity so that sets and dicts of secrets cannot be probed for a value.
    Only auth handlers call :meth:`reveal`.

    Example:
        >>> token = Secret("ghp_example")
        >>> token
        Secret('********')
        >>> token.reveal()
        'ghp_example'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        """Return the value. Call this only where the value is sent."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def reveal(value: str | Secret | None) -> str | None:
    """Return the plain value of a ``Secret`` or pass a string through."""
    if isinstance(value, Secret):
        return value.reveal()
    return value
