"""Dataset files: several sources, each with its own API and credentials, joined.

A dataset file is YAML::

    name: repos_with_customers
    sources:
      repos:
        connector: github            # a bundled name, or a spec file path
        endpoint: repos
        params: {user: octocat}
        credentials: {token: GITHUB_TOKEN}     # field -> environment variable
      customers:
        connector: ./billing.yaml    # relative to the dataset file
        endpoint: customers
        credentials: {api_key: BILLING_KEY}
    joins:
      - left: repos
        right: customers
        left_on: owner.login
        right_on: code_login
        how: left

:func:`load_dataset` validates it (a :class:`SpecError` names the file and
the key path), fetches every source concurrently and returns the joined
frame. Credentials are only ever named, never written: a value that does not
look like an environment variable name is refused without being echoed.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from restconnect.exceptions import CredentialsMissing, SpecError
from restconnect.spec import ConnectorSpec, ParamValue, read_yaml_mapping

if TYPE_CHECKING:
    import pandas as pd

    from restconnect.connector import Connector
    from restconnect.jobs import Summary

__all__ = ["DatasetSpec", "JoinStep", "SourceSpec", "extract_dataset",
           "is_dataset_file", "load", "load_dataset", "read_dataset"]

logger = logging.getLogger(__name__)

# ``GITHUB_TOKEN``, or ``env:GITHUB_TOKEN`` as in job files. Bare names must be
# in capitals: a pasted secret often looks like an identifier.
_ENV_NAME = re.compile(r"^(env:)?[A-Z_][A-Z0-9_]{0,127}$")
Keys = str | list[str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Model):
    """One source: a connector, its credentials and one endpoint fetch."""

    connector: str = Field(description="bundled connector name or spec file path")
    endpoint: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(
        default_factory=dict, description="credential field -> environment variable")
    base_url: str | None = Field(None,
                                 description="overrides the spec's; ${VAR} allowed")
    limit: int | None = Field(None, ge=1)
    max_pages: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _env_names_only(self) -> SourceSpec:
        for field, name in self.credentials.items():
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"credentials.{field} must name an environment variable in "
                    "capitals (GITHUB_TOKEN or env:GITHUB_TOKEN); credential values "
                    "never go in a dataset file")
        return self


class JoinStep(_Model):
    """A join with another source, or an enrichment by lookups in one."""

    left: str | None = Field(None, description="the first step's left source")
    right: str | None = Field(None, description="the source joined onto the result")
    on: Keys | None = None
    left_on: Keys | None = None
    right_on: Keys | None = None
    how: Literal["inner", "left", "right", "outer"] | None = Field(
        None, description="inner for a join, left for an enrich step, by default")
    casefold: bool | str | list[str] = False
    enrich: str | None = Field(None, description="a source to call once per key")
    params: dict[str, str] = Field(
        default_factory=dict, description="enrich: parameter -> column or {template}")
    prefix: str | None = None
    batch_size: int | None = Field(None, ge=1)
    key: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> JoinStep:
        if (self.right is None) == (self.enrich is None):
            raise ValueError("a step has either 'right' (a join) or 'enrich' (lookups)")
        if self.enrich is not None and not self.params:
            raise ValueError("an 'enrich' step needs 'params' filled from columns")
        if self.right is not None and self.on is None and (
                self.left_on is None or self.right_on is None):
            raise ValueError("a join needs 'on', or 'left_on' and 'right_on'")
        if self.enrich is not None and self.how not in (None, "left", "inner"):
            raise ValueError("an 'enrich' step's how is left or inner")
        if self.batch_size and not self.key:
            raise ValueError("batch_size needs 'key': the answer field of each value")
        return self


class DatasetSpec(_Model):
    """A whole dataset file."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    description: str = ""
    sources: dict[str, SourceSpec] = Field(min_length=1)
    joins: list[JoinStep] = Field(default_factory=list)
    select: list[str] = Field(default_factory=list, description="columns to keep")
    output: str | dict[str, Any] | None = Field(
        None, description="where 'restconnect extract' writes: a path or "
        "{path, format, mode, table}")

    # Set by the loader.
    path: str | None = Field(None, exclude=True)


# ---------------------------------------------------------------- reading


def read_dataset(path: str | os.PathLike[str]) -> DatasetSpec:
    """Read and validate a dataset file without fetching anything.

    Every source's connector is loaded to check its endpoint and credential
    names; no request is sent.

    Raises:
        SpecError: naming the file and the key path of the first problem.
    """
    spec = _read(path)
    _check_sources(spec, skip=())
    return spec


def _read(path: str | os.PathLike[str]) -> DatasetSpec:
    source = str(path)
    data = read_yaml_mapping(path, expected="a mapping with 'name', 'sources' and "
                             "'joins'")
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc, source) from None
    spec.path = source
    _check_steps(spec)
    return spec


def _spec_error(exc: ValidationError, source: str) -> SpecError:
    error = exc.errors()[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]
                   if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))
    path = path.lstrip(".")
    if error["type"] == "extra_forbidden":
        problem = f"unknown key {str(error['loc'][-1])!r}" + _hint(error)
    elif error["type"] == "missing":
        problem = "required key is missing"
    elif error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        problem = f"got {error.get('input')!r}; expected one of {expected}"
    else:
        # The message only: the input may be a credential typed in by mistake.
        problem = error["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    return SpecError(problem + (f" (and {more} more problems)" if more else ""),
                     source=source, path=path)


def _hint(error: Any) -> str:
    key = str(error["loc"][-1])
    model: type[BaseModel] = DatasetSpec
    for part in error["loc"][:-1]:
        model = {"sources": SourceSpec, "joins": JoinStep}.get(str(part), model)
    near = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    if near:
        return f"; did you mean {near[0]!r}?"
    return f"; known: {', '.join(model.model_fields)}"


def _check_steps(spec: DatasetSpec) -> None:
    """Every step names known sources; every source is used; order makes sense."""
    if not spec.joins and len(spec.sources) > 1:
        _fail(spec, "joins", f"{len(spec.sources)} sources need 'joins' between them")
    used: set[str] = set()
    for index, step in enumerate(spec.joins):
        where = f"joins[{index}]"
        if index == 0 and step.left is None:
            _fail(spec, f"{where}.left", "the first step names its 'left' source")
        if index > 0 and step.left is not None:
            _fail(spec, f"{where}.left", "only the first step names 'left'; later "
                  "steps join onto the result so far")
        for key in ("left", "right", "enrich"):
            name = getattr(step, key)
            if name is not None:
                _known_source(spec, name, f"{where}.{key}")
                used.add(name)
    unused = [name for name in spec.sources if name not in used] if spec.joins else []
    if unused:
        _fail(spec, f"sources.{unused[0]}", "this source is never joined; use it in "
              "'joins' or remove it")


def _check_sources(spec: DatasetSpec, *, skip: Iterable[str]
                   ) -> dict[str, ConnectorSpec]:
    """Each source's connector spec, checked to know its endpoint and credentials."""
    from restconnect.catalog import list_specs, resolve_spec
    from restconnect.connector import credential_fields

    checked = {}
    for name, source in spec.sources.items():
        if name in skip:
            continue
        where = f"sources.{name}"
        try:
            connector = resolve_spec(_connector_target(spec, source.connector))
        except SpecError as exc:
            near = difflib.get_close_matches(source.connector, list(list_specs()), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SpecError(f"connector {source.connector!r}{hint}: {exc}",
                            source=spec.path, path=f"{where}.connector") from None
        _check_endpoint(spec, name, connector.name, connector.endpoints)
        fields = credential_fields(connector)
        for field in source.credentials:
            if field not in fields:
                near = difflib.get_close_matches(field, fields, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                _fail(spec, f"{where}.credentials.{field}",
                      f"connector {connector.name!r} has no credential {field!r}{hint} "
                      f"Its credentials: {', '.join(fields) or 'none'}")
        checked[name] = connector
    return checked


def _known_source(spec: DatasetSpec, name: str, path: str) -> None:
    if name in spec.sources:
        return
    near = difflib.get_close_matches(name, list(spec.sources), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    _fail(spec, path, f"no source {name!r}{hint} Sources: {', '.join(spec.sources)}")


def _fail(spec: DatasetSpec, path: str, problem: str) -> None:
    raise SpecError(problem, source=spec.path, path=path)


# ---------------------------------------------------------------- loading


def load_dataset(path: str | os.PathLike[str] | DatasetSpec, *,
                 connectors: Mapping[str, Connector] | None = None) -> pd.DataFrame:
    """Fetch every source of a dataset file and return the joined frame.

    Args:
        path: the dataset file (or an already read :class:`DatasetSpec`).
        connectors: ready connectors by source name, used instead of building
            one from the file (for a notebook that already holds them).

    Raises:
        SpecError: the file is invalid, or a join names a missing column.
        CredentialsMissing: a named environment variable is not set.

    Example:
        >>> frame = load_dataset("repos_with_customers.yaml")   # doctest: +SKIP
    """
    given = dict(connectors or {})
    spec = path if isinstance(path, DatasetSpec) else _read(path)
    checked = _check_sources(spec, skip=given)
    built = {name: _connect(spec, name, connector)
             for name, connector in checked.items()}
    opened = {**built, **given}
    try:
        frames = _fetch_sources(spec, opened)
        frame = _apply_steps(spec, frames, opened)
    finally:
        for connector in built.values():
            connector.close()
    if spec.select:
        frame = _select(spec, frame)
    frame.attrs.setdefault("restconnect", {})["dataset"] = {"name": spec.name,
                                                           "file": spec.path}
    return frame


#: ``restconnect.load("dataset.yaml")``.
load = load_dataset


def _connect(spec: DatasetSpec, name: str, target: ConnectorSpec) -> Connector:
    """Open a source's checked connector spec with the file's credentials."""
    from restconnect.connector import connect

    source = spec.sources[name]
    where = f"sources.{name}"
    credentials = _credentials(spec, name)
    base_url = _fill_env(spec, source.base_url, f"{where}.base_url")
    try:
        connector = connect(target, base_url=base_url, **credentials)
    except SpecError as exc:
        raise SpecError(f"connector {source.connector!r}: {exc}", source=spec.path,
                        path=f"{where}.connector") from None
    except TypeError as exc:
        raise SpecError(str(exc), source=spec.path,
                        path=f"{where}.credentials") from None
    return connector


def _credentials(spec: DatasetSpec, name: str) -> dict[str, str]:
    source, found, missing = spec.sources[name], {}, {}
    for field, reference in source.credentials.items():
        variable = reference.removeprefix("env:")
        value = os.environ.get(variable)
        if value:
            found[field] = value
        else:
            missing[field] = [f"set the environment variable {variable} (named in "
                              f"{spec.path}, sources.{name}.credentials.{field})"]
    if missing:
        raise CredentialsMissing(source.connector, missing)
    return found


def _connector_target(spec: DatasetSpec, connector: str) -> str:
    """A spec path relative to the dataset file, or a connector name as given."""
    if not connector.endswith((".yaml", ".yml")) or spec.path is None:
        return connector
    candidate = Path(connector)
    if candidate.is_absolute():
        return connector
    return str(Path(spec.path).resolve().parent / candidate)


def _fill_env(spec: DatasetSpec, value: str | None, path: str) -> str | None:
    if value is None:
        return None

    def fill(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1)) or match.group(3)
        if found is None:
            _fail(spec, path, f"environment variable {match.group(1)} is not set")
        return str(found)
    return re.sub(r"\$\{([A-Za-z0-9_]+)(:-([^}]*))?\}", fill, value)


def _check_endpoint(spec: DatasetSpec, name: str, connector: str,
                    endpoints: Mapping[str, Any]) -> None:
    endpoint = spec.sources[name].endpoint
    if endpoint not in endpoints:
        near = difflib.get_close_matches(endpoint, list(endpoints), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        _fail(spec, f"sources.{name}.endpoint",
              f"connector {connector!r} has no endpoint {endpoint!r}{hint} "
              f"Endpoints: {', '.join(endpoints)}")


def _fetch_sources(spec: DatasetSpec, connectors: Mapping[str, Connector]
                   ) -> dict[str, pd.DataFrame]:
    """Fetch every source that is not only looked up, in parallel."""
    lookups = {step.enrich for step in spec.joins if step.enrich}
    names = [name for name in spec.sources if name not in lookups]
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), 4)),
                            thread_name_prefix="restconnect-dataset") as pool:
        frames = pool.map(lambda n: _fetch(spec, n, connectors[n]), names)
        return dict(zip(names, frames))


def _fetch(spec: DatasetSpec, name: str, connector: Connector) -> pd.DataFrame:
    source = spec.sources[name]
    options = {k: v for k, v in (("limit", source.limit),
                                 ("max_pages", source.max_pages)) if v}
    logger.info("dataset %s: fetching %s (%s.%s)", spec.name, name, connector.name,
                source.endpoint)
    try:
        return connector.fetch(source.endpoint, **options, **source.params)
    except SpecError as exc:
        raise SpecError(exc.problem, source=spec.path,
                        path=f"sources.{name}.params") from None


def _apply_steps(spec: DatasetSpec, frames: Mapping[str, pd.DataFrame],
                 connectors: Mapping[str, Connector]) -> pd.DataFrame:
    if not spec.joins:
        return next(iter(frames.values()))
    frame = frames[spec.joins[0].left or ""]
    for index, step in enumerate(spec.joins):
        try:
            frame = _apply_step(spec, step, frame, frames, connectors)
        except SpecError as exc:
            if exc.source == spec.path:
                raise
            raise SpecError(exc.problem, source=spec.path, path=_step_path(
                index, step, exc.path)) from None
    return frame


def _step_path(index: int, step: JoinStep, inner: str) -> str:
    if step.enrich is not None and inner.startswith("params"):
        return f"joins[{index}].{inner}"
    return f"joins[{index}]" + (f".{inner}" if inner else "")


def _apply_step(spec: DatasetSpec, step: JoinStep, frame: pd.DataFrame,
                frames: Mapping[str, pd.DataFrame],
                connectors: Mapping[str, Connector]) -> pd.DataFrame:
    from restconnect.join import join
    from restconnect.lookups import enrich

    if step.right is not None:
        return join(frame, frames[step.right], on=step.on, left_on=step.left_on,
                    right_on=step.right_on, how=step.how or "inner",
                    casefold=step.casefold)
    source = spec.sources[step.enrich or ""]
    how = step.how or "left"
    return enrich(frame, connectors[step.enrich or ""], source.endpoint, step.params,
                  how=how, prefix=step.prefix, batch_size=step.batch_size,
                  key=step.key, **source.params)


def _select(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in spec.select if c not in frame.columns]
    if missing:
        _fail(spec, "select", f"no column {missing[0]!r} in the result; columns: "
              f"{', '.join(map(str, frame.columns))}")
    attrs = dict(frame.attrs)
    chosen = frame[list(spec.select)].copy()
    chosen.attrs.update(attrs)
    return chosen


# ---------------------------------------------------------------- extract


def is_dataset_file(path: str | os.PathLike[str]) -> bool:
    """Whether a YAML file is a dataset (it has ``sources``), not an extract job."""
    try:
        return "sources" in read_yaml_mapping(path)
    except SpecError:
        return False


def extract_dataset(path: str | os.PathLike[str], *, output: Any = None) -> Summary:
    """Load a dataset and write it, as ``restconnect extract dataset.yaml`` does.

    Args:
        path: the dataset file.
        output: a path or output mapping; the file's ``output`` by default.
            A relative path in the file is relative to the file's folder.

    Returns:
        The extract :class:`~restconnect.jobs.Summary`.

    Raises:
        SpecError: the file is invalid or names no output.
        ExtractError: another run writes the same output, or it cannot be
            written.
    """
    import time

    from restconnect.jobs import Summary, output_lock
    from restconnect.outputs import OutputSpec, make_output
    from restconnect.state import StateStore

    started = time.perf_counter()
    spec = read_dataset(path)
    target = OutputSpec.of(output if output is not None else _file_output(spec))
    label = f"dataset {spec.name}"
    with output_lock(label, target.path):
        frame = load_dataset(spec)
        store = StateStore()
        key = store.key("dataset", spec.name, {},
                        scope=str(Path(target.path).resolve()))
        writer = make_output(target, incremental=False, primary_key=[],
                             endpoint=spec.name, store=store, state_key=key)
        summary = Summary(job=label, output=str(writer.path), mode=writer.mode)
        _write(writer, frame)
    summary.rows = len(frame)
    summary.pages = sum(int(s.get("pages") or 0)
                        for s in frame.attrs["restconnect"].get("sources", []))
    summary.seconds = time.perf_counter() - started
    return summary


def _file_output(spec: DatasetSpec) -> Any:
    if spec.output is None:
        _fail(spec, "output", "no output: add 'output: data/out.parquet' to the file "
              "or pass -o")
    value = spec.output
    raw = value if isinstance(value, str) else (value or {}).get("path", "")
    if raw and not Path(raw).expanduser().is_absolute() and spec.path:
        folder = Path(spec.path).resolve().parent
        resolved = str(folder / raw)
        value = resolved if isinstance(value, str) else {**value, "path": resolved}
    return value


def _write(writer: Any, frame: pd.DataFrame) -> None:
    writer.begin()
    try:
        writer.write(frame)
        writer.commit(None)
    except BaseException:
        writer.abort()
        raise
