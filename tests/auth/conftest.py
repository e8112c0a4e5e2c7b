"""Fixtures for the auth tests; each server's fixtures live in its own module."""

from oidc_server import oidc_provider  # noqa: F401 - a fixture, used by name
