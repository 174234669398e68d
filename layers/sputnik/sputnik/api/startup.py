"""Faster FastAPI cold starts: pydantic builds what a request uses, and builds it once.

Most of an API function's cold init that is not imports is pydantic work FastAPI asks for
(BENCHMARKS.md, Build):
- FastAPI defines some 40 pydantic models for its OpenAPI document, each building its validator
  at FastAPI's import, and a function never serves that document (RootFunction serves one made at
  build time). They are defined with pydantic's `defer_build`, so they build if ever used. Only
  they: libraries' own serializers may expect their models built (geojson-pydantic's do);
- every route parameter gets a pydantic TypeAdapter of its own, though routes repeat the same
  parameters: the /cog app's 34 routes build 638 adapters for about 200 distinct fields. Equal
  fields share one adapter here (the key is the whole field; anything not safely comparable
  builds its own);
- to check that no route uses a pydantic v1 model, FastAPI imports `pydantic.v1` (some 40
  modules). No object can be a v1 model unless that module was imported, so the check looks it up
  among the loaded modules instead.

The last two reach into FastAPI: `fastapi._compat.v2.ModelField`, whose `__post_init__` sets
`_type_adapter` and nothing else, and the two v1 checks of `fastapi._compat.shared` (also bound in
`fastapi.encoders`); tests/test_startup.py fails if a FastAPI release changes them.
Imported by `sputnik.api`'s `__init__`, i.e. before any app module imports FastAPI.
"""

import sys
from collections.abc import Hashable
from typing import Any

import pydantic
from pydantic import TypeAdapter

# The models FastAPI defines at its import are deferred; models defined later build as usual.
pydantic.BaseModel.model_config["defer_build"] = True
try:
    import fastapi._compat
    import fastapi.encoders
    from fastapi._compat import shared, v2
finally:
    del pydantic.BaseModel.model_config["defer_build"]

build_adapter = v2.ModelField.__post_init__
adapters: dict[Hashable, TypeAdapter[Any]] = {}


def frozen(value: Any) -> Hashable:
    """A hashable stand-in for part of a field that equals another only for the same type and value.

    Raises TypeError for what cannot be compared that way (sets, whose `{1} == {True}`, and
    unhashable objects): such a field gets an adapter of its own.
    """
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(frozen(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        raise TypeError("sets compare 1 and True as equal")
    hash(value)
    return (type(value), value)


def shared_adapter(field: v2.ModelField) -> None:
    """Give a FastAPI field the adapter of an equal field built before, or build and keep its own."""
    try:
        key = frozen((field.mode, field.config, v2.asdict(field.field_info)))
    except TypeError:
        build_adapter(field)
        return
    adapter = adapters.get(key)
    if adapter is None:
        build_adapter(field)
        adapters[key] = field._type_adapter
    else:
        field._type_adapter = adapter


v2.ModelField.__post_init__ = shared_adapter  # type: ignore[method-assign,assignment]


def is_v1_model_class(cls: Any) -> bool:
    """Whether a class is a pydantic v1 model: never, unless something imported pydantic.v1."""
    v1 = sys.modules.get("pydantic.v1")
    return v1 is not None and shared.lenient_issubclass(cls, v1.BaseModel)


def is_v1_model_instance(obj: Any) -> bool:
    """Whether an object is a pydantic v1 model: never, unless something imported pydantic.v1."""
    v1 = sys.modules.get("pydantic.v1")
    return v1 is not None and isinstance(obj, v1.BaseModel)


shared.is_pydantic_v1_model_class = is_v1_model_class
shared.is_pydantic_v1_model_instance = is_v1_model_instance
fastapi._compat.is_pydantic_v1_model_instance = is_v1_model_instance
fastapi.encoders.is_pydantic_v1_model_instance = is_v1_model_instance
