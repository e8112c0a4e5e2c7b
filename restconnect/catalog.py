"""Where connector specs are found.

A name is looked up, first match wins, in: each folder of ``RESTCONNECT_PATH``
(separated like ``PATH``), the user's config folder
(``<platform config dir>/restconnect/connectors``), then the specs bundled
with the package. A value that looks like a path (``./api.yaml``) is loaded
as a file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from restconnect.exceptions import SpecError
from restconnect.spec import ConnectorSpec, load_spec

__all__ = ["bundled_dir", "find_spec", "list_specs", "resolve_spec", "search_dirs"]

logger = logging.getLogger(__name__)

_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    """The folder of bundled specs, in a wheel or in a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "connectors"
    if installed.is_dir():
        return installed
    return package.parent / "connectors"


def user_dir() -> Path:
    """The user's own spec folder."""
    import platformdirs

    return Path(platformdirs.user_config_dir("restconnect")) / "connectors"


def search_dirs() -> list[Path]:
    """Every folder searched for specs, in order."""
    dirs = [Path(p).expanduser() for p in os.environ.get("RESTCONNECT_PATH", "").split(
        os.pathsep) if p]
    dirs.append(user_dir())
    dirs.append(bundled_dir())
    return dirs


def list_specs() -> dict[str, Path]:
    """Every spec name that can be found, with the file that wins."""
    found: dict[str, Path] = {}
    for folder in search_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in _SUFFIXES and path.stem not in found:
                found[path.stem] = path
    return found


def find_spec(name: str) -> Path:
    """The file for a spec name.

    Raises:
        SpecError: nothing by that name; the message lists what exists.
    """
    for folder in search_dirs():
        for suffix in _SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    known = ", ".join(sorted(list_specs())) or "none"
    raise SpecError(f"no connector named {name!r}; known connectors: {known}. "
                    "Give a path to a YAML file to load your own.", source=name)


def _looks_like_path(value: str) -> bool:
    return value.endswith(_SUFFIXES) or os.sep in value or "/" in value


def resolve_spec(name_or_path: str | os.PathLike[str] | ConnectorSpec) -> ConnectorSpec:
    """Load a spec from a name, a path or an already-loaded spec."""
    if isinstance(name_or_path, ConnectorSpec):
        return name_or_path
    value = os.fspath(name_or_path)
    path = Path(value) if _looks_like_path(value) else find_spec(value)
    logger.debug("loading spec %s", path)
    return load_spec(path)
