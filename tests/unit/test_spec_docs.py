"""docs/spec.md documents every key of the spec format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from restconnect import spec

DOC = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
MODELS = [spec.ConnectorSpec, spec.EndpointSpec, spec.PaginationSpec, spec.RetrySpec,
          spec.RateLimitSpec, spec.CacheSpec, spec.CheckSpec, spec.ResponseAction,
          spec.IncrementalSpec, spec.ParentSpec, spec.AuthSpec]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model):
    documented = set(re.findall(r"`([a-z_]+)`", DOC))
    missing = [name for name, info in model.model_fields.items()
               if not info.exclude and name not in documented]
    assert not missing, f"{model.__name__} keys missing from docs/spec.md: {missing}"


def test_every_pagination_kind_is_documented():
    for kind in spec.PAGINATION_KINDS:
        assert f"- `{kind}`:" in DOC, kind
