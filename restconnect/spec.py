"""The connector spec format: typed models and the loader.

A spec is a YAML file describing one REST API. :func:`load_spec` reads and
validates it and raises :class:`~restconnect.exceptions.SpecError` naming the
file, the key path and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from restconnect.exceptions import SpecError
from restconnect.frames import DATETIME_DTYPES

__all__ = [
    "ENV_REFERENCE",
    "AuthSpec",
    "CacheSpec",
    "CheckSpec",
    "ConnectorSpec",
    "EndpointSpec",
    "IncrementalSpec",
    "PaginationSpec",
    "ParentSpec",
    "RateLimitSpec",
    "ResponseAction",
    "RetrySpec",
    "checked_base_url",
    "fill_env_references",
    "format_validation_error",
    "load_spec",
    "parse_spec",
    "read_yaml_mapping",
]

PAGINATION_KINDS = (
    "auto", "none", "link_header", "next_url", "cursor", "offset",
    "page_number", "header_cursor",
)

#: ``${VAR}`` or ``${VAR:-default}`` in a spec value.
ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(:-([^}]*))?\}")

ParamValue = Union[str, int, float, bool, None, list[Union[str, int, float]]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class RetrySpec(_Model):
    """How failed requests are retried."""

    attempts: int = Field(4, ge=1, le=20,
                          description="tries in all, the first included")
    backoff: float = Field(0.5, ge=0,
                           description="first wait in seconds, doubled per try")
    max_backoff: float = Field(30.0, ge=0, description="longest wait between tries")
    statuses: list[int] = Field(default_factory=lambda: [429, 502, 503, 504])
    methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"],
        description="methods retried (idempotent ones by default)",
    )


class RateLimitSpec(_Model):
    """How the client paces itself and honours rate-limit headers."""

    max_wait: float = Field(
        60.0, ge=0,
        description="longest pause a Retry-After or reset header may impose",
    )
    requests_per_second: float | None = Field(None, gt=0)
    slow_down_below: int = Field(
        10, ge=0,
        description="when fewer requests remain, spread them until the reset",
    )


class PaginationSpec(_Model):
    """How an endpoint's pages follow each other."""

    kind: Literal[
        "auto", "none", "link_header", "next_url", "cursor", "offset",
        "page_number", "header_cursor",
    ] = "auto"
    page_size: int | None = Field(None, ge=1)
    page_size_param: str | None = None
    location: Literal["query", "body"] = "query"
    # cursor, next_url, header_cursor
    cursor_path: str | None = None
    cursor_param: str | None = None
    has_more_path: str | None = None
    next_url_path: str | None = None
    cursor_header: str | None = None
    # offset and page_number
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_param: str = "page"
    start: int | None = None
    total_path: str | None = None
    total_pages_path: str | None = None
    total_header: str | None = None
    stop_on_short_page: bool = True
    # fetching
    concurrency: int | None = Field(None, ge=1, le=64)
    max_pages: int | None = Field(None, ge=1)


class ResponseAction(_Model):
    """What to do with a response that matches a status or a body pattern."""

    status: int | None = None
    match: str | None = Field(None,
                              description="regular expression searched in the body")
    action: Literal["empty", "retry", "fail"]
    message: str = ""

    @model_validator(mode="after")
    def _needs_condition(self) -> ResponseAction:
        if self.status is None and self.match is None:
            raise ValueError("give a status, a match pattern or both")
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ValueError(f"match is not a regular expression: {exc}") from None
        return self


class IncrementalSpec(_Model):
    """The record field that says what changed, and how it goes back to the API."""

    field: str
    mode: Literal["param", "stop", "filter"] = "param"
    param: str | None = Field(None, description="query parameter that takes the cursor")
    filter: str | None = Field(None, description="template such as 'updated>={cursor}'")
    filter_param: str | None = None
    sort: dict[str, ParamValue] = Field(default_factory=dict)
    initial: str | None = None

    @model_validator(mode="after")
    def _mode_keys(self) -> IncrementalSpec:
        if self.mode == "param" and not self.param:
            raise ValueError("mode 'param' needs 'param'")
        if self.mode == "filter" and not (self.filter and self.filter_param):
            raise ValueError("mode 'filter' needs 'filter' and 'filter_param'")
        return self


class ParentSpec(_Model):
    """Fill this endpoint's parameters from the rows of another endpoint."""

    endpoint: str
    params: dict[str, str] = Field(
        description="child parameter -> parent field or '{template}'",
    )
    batch_size: int | None = Field(None, ge=1)
    separator: str = ","
    key: str | None = Field(
        None,
        description="child field holding the batched value; needed with batch_size",
    )

    @model_validator(mode="after")
    def _batch_needs_key(self) -> ParentSpec:
        if self.batch_size and not self.key:
            raise ValueError("batch_size needs 'key': the child field that holds each "
                             "batched parent value")
        return self


class CacheSpec(_Model):
    """Response caching of GET requests."""

    enabled: bool = True
    ttl: float = Field(300.0, ge=0, description="seconds an entry is fresh")
    max_size_mb: float = Field(
        1024.0, gt=0,
        description="megabytes kept on disk before the least recently used go",
    )


class CheckSpec(_Model):
    """A cheap request that proves the credentials work."""

    path: str
    identity: str | None = Field(None, description="path of the user name in the body")


class AuthSpec(BaseModel):
    """One auth entry. Keys other than ``method`` and ``env`` are the method's."""

    model_config = ConfigDict(extra="allow")

    method: str
    env: dict[str, str] = Field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The method-specific keys."""
        return dict(self.model_extra or {})


class EndpointSpec(_Model):
    """One endpoint of an API."""

    path: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    description: str = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list,
                                description="required query params")
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    records: str | None = Field(None,
                                description="dotted path or JMESPath to the records")
    format: Literal["auto", "json", "jsonl", "csv"] = "auto"
    pagination: PaginationSpec | None = None
    primary_key: str | list[str] | None = None
    dtypes: dict[str, str] = Field(default_factory=dict)
    datetimes: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    response_actions: list[ResponseAction] = Field(default_factory=list)
    cache_ttl: float | None = Field(None, ge=0)
    incremental: IncrementalSpec | None = None
    parent: ParentSpec | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/' (it is appended to base_url), "
                             f"got {value!r}")
        stripped = re.sub(r"{[A-Za-z_][A-Za-z0-9_]*}", "", value)
        if "{" in stripped or "}" in stripped:
            raise ValueError(f"placeholders are written {{name}} with a letter or _ "
                             f"first; {value!r} has an unmatched or empty brace")
        return value

    @property
    def path_params(self) -> list[str]:
        """Names of the ``{placeholders}`` in the path, in order."""
        return re.findall(r"{([A-Za-z_][A-Za-z0-9_]*)}", self.path)

    @property
    def primary_keys(self) -> list[str]:
        if self.primary_key is None:
            return []
        if isinstance(self.primary_key, str):
            return [self.primary_key]
        return list(self.primary_key)


class ConnectorSpec(_Model):
    """A whole connector."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = ""
    description: str = ""
    base_url: str
    docs: str = ""
    auth: AuthSpec | list[AuthSpec] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    timeout: float = Field(30.0, gt=0, description="seconds to wait for a response")
    retry: RetrySpec = Field(default_factory=RetrySpec)
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)
    pagination: PaginationSpec = Field(default_factory=PaginationSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    concurrency: int = Field(8, ge=1, le=64,
                             description="parallel pages when addressable")
    check: CheckSpec | None = None
    endpoints: dict[str, EndpointSpec] = Field(min_length=1)

    # Set by the loader, not by the YAML file.
    source: str | None = Field(None, exclude=True)

    def __repr_args__(self) -> Any:
        from restconnect.redact import redact_url

        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "base_url" else value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(https?://|\$\{)", value):
            raise ValueError("must start with http:// or https://")
        if "${" in ENV_REFERENCE.sub("", value):
            raise ValueError("has a '${' that is not a ${VARIABLE} or "
                             "${VARIABLE:-default} reference (capitals, closed by '}')")
        return value.rstrip("/")

    @property
    def auth_entries(self) -> list[AuthSpec]:
        if self.auth is None:
            return []
        return self.auth if isinstance(self.auth, list) else [self.auth]

    def resolved_base_url(self) -> str:
        """``base_url`` with ``${VAR}`` and ``${VAR:-default}`` filled in."""
        def unset(match: re.Match[str]) -> str:
            raise SpecError(f"environment variable {match.group(1)} is not set",
                            source=self.source, path="base_url")
        return checked_base_url(fill_env_references(self.base_url, unset), self.source)


def checked_base_url(url: str, source: str | None = None) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host.

    Raises:
        SpecError: naming ``base_url``; the URL is shown redacted.
    """
    if not re.match(r"^https?://[^/\s?#]+", url):
        from restconnect.redact import redact_url

        raise SpecError(f"must be an http:// or https:// URL with a host, got "
                        f"{redact_url(url)!r}", source=source, path="base_url")
    return url.rstrip("/")


def fill_env_references(value: str,
                        unset: Callable[[re.Match[str]], str]) -> str:
    """``value`` with each ``${VAR}``/``${VAR:-default}`` filled from the environment.

    An empty variable counts as unset. For a reference that is unset and has
    no default, ``unset(match)`` gives the text (or raises).
    """
    def fill(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1)) or match.group(3)
        return found if found is not None else unset(match)
    return ENV_REFERENCE.sub(fill, value)


# ---------------------------------------------------------------- loading


def load_spec(path: str | os.PathLike[str]) -> ConnectorSpec:
    """Read and validate a spec file.

    Raises:
        SpecError: the file is missing, not YAML, or not a valid spec.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}",
                        source=source) from None
    return parse_spec(text, source=source)


def parse_spec(text: str, *, source: str = "<string>") -> ConnectorSpec:
    """Validate spec text; ``source`` names it in errors."""
    data = read_yaml_mapping(None, text=text, source=source)
    try:
        spec = ConnectorSpec.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None
    spec.source = source
    _check_auth(spec)
    _check_endpoints(spec)
    _check_dtypes(spec)
    _check_headers(spec)
    return spec


def read_yaml_mapping(path: str | os.PathLike[str] | None, *, text: str | None = None,
                      source: str | None = None,
                      expected: str = "a mapping of keys at the top level"
                      ) -> dict[str, Any]:
    """Read a YAML file (or ``text``) that must hold a mapping.

    Specs, extract jobs and dataset files all load through here, so a broken
    file is reported the same way whichever kind it is.

    Raises:
        SpecError: the file cannot be read, is not YAML, or is not a mapping.
    """
    source = source or str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")  # type: ignore[arg-type]
        except OSError as exc:
            raise SpecError(f"cannot read the file: {exc.strerror}",
                            source=source) from None
    try:
        data = _load_yaml(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"not valid YAML: {problem}{where}", source=source) from None
    if not isinstance(data, dict):
        raise SpecError(f"expected {expected}", source=source)
    return data


def _load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load``, parsing once: the node tree is checked, then built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_keys(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_repeated_keys(node: Any, source: str, path: str = "",
                          visited: set[int] | None = None) -> None:
    """A key written twice in one mapping: YAML would keep the last one silently."""
    visited = set() if visited is None else visited
    if id(node) in visited:  # an alias of a node already walked (or of itself)
        return
    visited.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_repeated_keys(item, source, f"{path}[{index}]", visited)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value)
        here = f"{path}.{key}" if path else key
        if key in seen and key != "<<":
            raise SpecError(f"the key {key!r} is written twice (again at line "
                            f"{key_node.start_mark.line + 1}); keep one",
                            source=source, path=here)
        seen.add(key)
        _refuse_repeated_keys(value_node, source, here, visited)


def format_validation_error(exc: ValidationError, source: str,
                            model: type[BaseModel] | None = None, *,
                            within: tuple[str, ...] = ()) -> SpecError:
    """Turn pydantic's errors into one ``SpecError`` with key paths and hints.

    ``within``: the key path ``model`` sits at, so values under ``auth`` stay
    hidden when only an auth entry's options were validated.
    """
    root = model or ConnectorSpec
    lines = []
    first_path = ""
    for error in exc.errors():
        path = _key_path(error["loc"])
        first_path = first_path or path
        lines.append(f"{path or '(top level)'}: {_describe(error, root, within)}")
    problem = lines[0].split(": ", 1)[1] if len(lines) == 1 else (
        f"{len(lines)} problems:\n  " + "\n  ".join(lines))
    return SpecError(problem, source=source, path=first_path if len(lines) == 1 else "")


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _is_branch_label(item):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _is_branch_label(item: Any) -> bool:
    # pydantic adds union branch names to locations; users never wrote them.
    return isinstance(item, str) and (
        item in ("AuthSpec", "str", "int", "float", "bool", "none")
        or item.startswith(("function-", "list[", "dict[")))


def _describe(error: Any, root: type[BaseModel], within: tuple[str, ...] = ()) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        hint = _did_you_mean(key, error["loc"][:-1], root)
        return f"unknown key {key!r}" + (f"; did you mean {hint!r}?" if hint else "")
    if kind == "missing":
        return "required key is missing"
    got = error.get("input")
    hidden = _may_hold_secret((*within, *error["loc"]))
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        shown = f"a {type(got).__name__}" if hidden else repr(got)
        return f"got {shown}; expected one of {expected}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        shown = f"a {type(got).__name__}" if hidden else f"{type(got).__name__} {got!r}"
        return f"{message[0].lower()}{message[1:]}, got {shown}"
    return message


def _may_hold_secret(loc: tuple[Any, ...]) -> bool:
    """Whether a wrong value at this key path could be a credential typed in."""
    from restconnect.redact import is_sensitive_name

    return any(str(part) in ("auth", "headers", "params", "body")
               or is_sensitive_name(str(part)) for part in loc)


def _did_you_mean(key: str, loc: tuple[Any, ...], root: type[BaseModel]) -> str | None:
    model = _model_at(loc, root)
    if model is None:
        return None
    matches = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class a location points into, following field annotations."""
    model: type[BaseModel] | None = root
    for item in loc:
        if model is None:
            return None
        if isinstance(item, int) or _is_branch_label(item):
            continue
        if item in model.model_fields:
            model = _inner_model(model.model_fields[item].annotation)
        # Any other string is a key of a dict field (an endpoint name): stay.
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _check_auth(spec: ConnectorSpec) -> None:
    """Validate each auth entry against its method's options and fields."""
    from restconnect.auth import get_auth_method

    entries = spec.auth_entries
    seen_fields: dict[str, str] = {}
    for index, entry in enumerate(entries):
        path = f"auth[{index}]" if isinstance(spec.auth, list) else "auth"
        try:
            method = get_auth_method(entry.method)
        except KeyError as exc:
            raise SpecError(str(exc.args[0]), source=spec.source,
                            path=f"{path}.method") from None
        fields = {field.name: field for field in method.fields}
        for key in entry.options():
            if key in fields and fields[key].secret:
                raise SpecError(
                    f"{key!r} is a secret and may not be written in a spec; "
                    f"name an environment variable with 'env: {{{key}: VAR}}' "
                    f"or pass {key}=... to connect()",
                    source=spec.source, path=f"{path}.{key}")
        for key, variable in entry.env.items():
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", str(variable)):
                raise SpecError(
                    "env maps a field to an environment variable name in upper "
                    "case letters, digits and _; this value is not one (it is not "
                    "shown, in case it is the secret itself)",
                    source=spec.source, path=f"{path}.env.{key}")
            if key not in fields:
                hint = difflib.get_close_matches(key, list(fields), n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                raise SpecError(
                    f"'env' names {key!r}, which method {entry.method!r} does not use; "
                    f"{suggestion}its fields are: {', '.join(fields) or 'none'}",
                    source=spec.source, path=f"{path}.env.{key}")
        options = {k: v for k, v in entry.options().items() if k not in fields}
        try:
            method.Options.model_validate(options)
        except ValidationError as exc:
            inner = format_validation_error(exc, spec.source or "", method.Options,
                                            within=("auth",))
            raise SpecError(inner.problem, source=spec.source,
                            path=".".join(p for p in (path, inner.path) if p)) from None
        for name in fields:
            if name in seen_fields:
                raise SpecError(
                    f"field {name!r} is used by both {seen_fields[name]!r} and "
                    f"{entry.method!r}; combined methods need distinct field names",
                    source=spec.source, path=path)
            seen_fields[name] = entry.method


def _check_endpoints(spec: ConnectorSpec) -> None:
    for name, endpoint in spec.endpoints.items():
        if endpoint.parent and endpoint.parent.endpoint not in spec.endpoints:
            raise SpecError(
                f"parent endpoint {endpoint.parent.endpoint!r} does not exist; "
                f"known: {', '.join(spec.endpoints)}",
                source=spec.source, path=f"endpoints.{name}.parent.endpoint")
        for key, path in (("records", endpoint.records),):
            if path:
                _check_jmespath(path, spec.source, f"endpoints.{name}.{key}")


#: Offered as "did you mean" for a dtype pandas does not know.
_DTYPE_NAMES = (
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float32", "Float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "float32", "float64", "bool", "boolean", "string", "str",
    "object", "category", "datetime64[ns]", "datetime64[ns, UTC]",
) + DATETIME_DTYPES


def _check_dtypes(spec: ConnectorSpec) -> None:
    """Refuse a dtype pandas does not know now, not after every page is fetched."""
    for name, endpoint in spec.endpoints.items():
        for column, dtype in endpoint.dtypes.items():
            problem = None if dtype in DATETIME_DTYPES else _dtype_problem(dtype)
            if problem:
                raise SpecError(problem, source=spec.source,
                                path=f"endpoints.{name}.dtypes.{column}")


def _dtype_problem(dtype: str) -> str | None:
    """Why pandas refuses ``dtype``, with the likely name; None if it is fine."""
    from pandas.api.types import pandas_dtype  # only for specs that declare dtypes

    try:
        pandas_dtype(dtype)
    except (TypeError, ValueError):
        hint = difflib.get_close_matches(dtype, _DTYPE_NAMES, n=1)
        advice = (f"did you mean {hint[0]!r}?" if hint else
                  "use one such as Int64, float64, string, category or datetime")
        return f"{dtype!r} is not a pandas dtype; {advice}"
    return None


def _check_headers(spec: ConnectorSpec) -> None:
    """Refuse a credential header written in the spec (Authorization, X-API-Key...)."""
    from restconnect.redact import SENSITIVE_HEADERS

    places = [("headers", spec.headers)] + [
        (f"endpoints.{name}.headers", e.headers) for name, e in spec.endpoints.items()]
    for where, headers in places:
        for header in headers:
            if header.lower() in SENSITIVE_HEADERS:
                raise SpecError(
                    f"{header!r} carries a credential and may not be written in a "
                    f"spec; use an auth method (api_key with location: header and "
                    f"param: {header}, bearer or basic) and pass the value to "
                    "connect() or name an environment variable",
                    source=spec.source, path=f"{where}.{header}")


def _check_jmespath(expression: str, source: str | None, path: str) -> None:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        raise SpecError(f"not a valid path expression: {exc}", source=source,
                        path=path) from None


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec format, for editors."""
    schema = ConnectorSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "restconnect connector spec"
    schema.get("properties", {}).pop("source", None)
    return schema
