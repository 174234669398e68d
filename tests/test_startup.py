"""Cold starts: sputnik.api.startup (models built at first use, shared adapters), sputnik.coldstart (GC)."""

import ast
import dataclasses
import enum
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi._compat import v2
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sputnik.api import startup
from tests.conftest import REPO


class Colour(enum.Enum):
    """One enum called Colour."""

    red = "red"


class Other:
    """A namespace holding a second, unrelated enum of the same name."""

    class Colour(enum.Enum):
        """Another enum called Colour, with other values."""

        blue = "blue"


def _app(colour_type: type[enum.Enum], default: object = 1) -> FastAPI:
    """An app with one route taking an int and an enum from the query."""
    app = FastAPI()

    @app.get("/item")
    def item(
        n: Annotated[int, Query(ge=0)] = default,
        colour: colour_type | None = None,  # type: ignore[valid-type]
    ) -> dict[str, object]:
        return {"n": n, "colour": colour.value if colour else None}

    return app


def _fields(app: FastAPI) -> dict[str, v2.ModelField]:
    """The query fields of an app's /item route, by name."""
    (route,) = [r for r in app.routes if getattr(r, "path", "") == "/item"]
    return {f.name: f for f in route.dependant.query_params}  # type: ignore[attr-defined]


def test_fastapis_field_sets_only_the_adapter_that_is_shared() -> None:
    """The seam: FastAPI's __post_init__ sets `_type_adapter` only (a release changing this fails here)."""
    field = object.__new__(v2.ModelField)
    for f in dataclasses.fields(v2.ModelField):
        object.__setattr__(field, f.name, f.default if f.name not in ("field_info", "name") else None)
    field.field_info, field.name = FieldInfo(annotation=int, default=3), "n"
    before = set(vars(field))
    startup.build_adapter(field)
    assert set(vars(field)) - before == {"_type_adapter"}
    assert field._type_adapter.validate_python("4") == 4


def test_equal_fields_of_two_apps_share_one_adapter_and_validate_alike() -> None:
    first, second = _fields(_app(Colour)), _fields(_app(Colour))
    assert first["n"]._type_adapter is second["n"]._type_adapter
    assert first["colour"]._type_adapter is second["colour"]._type_adapter
    for app in (_app(Colour), _app(Colour)):
        client = TestClient(app)
        assert client.get("/item", params={"n": 2, "colour": "red"}).json() == {"n": 2, "colour": "red"}
        assert client.get("/item", params={"n": -1}).status_code == 422


def test_fields_that_differ_only_in_what_repr_or_equality_would_hide_do_not_share() -> None:
    """Same-named enums of two modules, and defaults 1 and True, keep adapters of their own."""
    ours, theirs = _fields(_app(Colour)), _fields(_app(Other.Colour))
    assert ours["colour"]._type_adapter is not theirs["colour"]._type_adapter
    assert TestClient(_app(Other.Colour)).get("/item", params={"colour": "blue"}).status_code == 200
    assert TestClient(_app(Other.Colour)).get("/item", params={"colour": "red"}).status_code == 422
    assert TestClient(_app(Colour)).get("/item", params={"colour": "blue"}).status_code == 422
    assert _fields(_app(Colour, 1))["n"]._type_adapter is not _fields(_app(Colour, True))["n"]._type_adapter


def test_a_field_that_cannot_be_compared_safely_gets_its_own_adapter() -> None:
    """A set default ({1} == {True}) is never used as a key: the field is built alone, and works."""
    fields = [v2.ModelField(field_info=FieldInfo(annotation=set[int], default={1}), name=n) for n in "st"]
    assert fields[0]._type_adapter is not fields[1]._type_adapter
    assert fields[0]._type_adapter.validate_python([2, 2]) == {2}


def test_fastapis_openapi_models_build_only_when_a_document_is_asked_for() -> None:
    """In a fresh interpreter, as a Lambda cold start: nothing builds FastAPI's OpenAPI models until asked."""
    code = (
        "import sputnik.api.meta as m; from fastapi.openapi.models import OpenAPI;"
        "app = m.create_meta_app(); print(OpenAPI.__pydantic_complete__);"
        "doc = app.openapi(); print(OpenAPI.__pydantic_complete__, '/meta/list' in doc['paths'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_other_models_still_build_when_defined() -> None:
    """Only FastAPI's are deferred: libraries' serializers may use their models' (geojson-pydantic's do)."""
    from geojson_pydantic import Feature

    class Late(BaseModel):
        """A model defined after sputnik.api is imported."""

        a: int

    assert Late.__pydantic_complete__ and Feature.__pydantic_complete__
    feature = Feature(type="Feature", geometry={"type": "Point", "coordinates": [1, 2]}, properties=None)
    assert feature.model_dump(exclude_none=True)["geometry"] == {"type": "Point", "coordinates": (1.0, 2.0)}


FUNCTION_APPS = sorted((REPO / "functions").glob("*/app.py"))


@pytest.mark.parametrize("path", FUNCTION_APPS, ids=lambda p: p.parent.name)
def test_every_function_initialises_between_coldstart_and_initialised(path: Path) -> None:
    """coldstart is imported before anything else and initialised() is the last statement."""
    body = ast.parse(path.read_text()).body
    first, last = body[1], body[-1]  # body[0] is the docstring
    assert isinstance(first, ast.ImportFrom) and first.module == "sputnik.coldstart"
    assert isinstance(last, ast.Expr) and ast.unparse(last) == "initialised()"


@pytest.mark.parametrize("function", ["meta", "stage_plan_months"])
def test_on_lambda_init_runs_no_collection_and_leaves_the_collector_on_and_init_frozen(function: str) -> None:
    code = (
        "import gc, importlib.util, sys, sputnik.coldstart;"  # as app.py's first line would, on Lambda
        "runs = lambda: sum(s['collections'] for s in gc.get_stats());"
        "before, frozen = runs(), gc.get_freeze_count();"
        f"spec = importlib.util.spec_from_file_location('fn', 'functions/{function}/app.py');"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print(gc.isenabled(), gc.get_freeze_count() - frozen, runs() - before)"
    )
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    enabled, frozen, collections = out.stdout.split()
    assert enabled == "True" and int(frozen) > 50_000 and collections == "0"
    # Elsewhere (a test run, the local stack) the collector is left alone: it collects during the load.
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    enabled, frozen, collections = out.stdout.split()
    assert enabled == "True" and frozen == "0" and int(collections) > 0


def test_building_the_apps_imports_no_pydantic_v1_and_v1_models_are_still_refused() -> None:
    """In a fresh interpreter no app loads pydantic.v1; once one does, FastAPI still refuses v1 models."""
    code = """
import sys, warnings
from sputnik.api.cog import create_cog_app
from sputnik.api.meta import create_meta_app
create_cog_app(), create_meta_app()
print('pydantic.v1' in sys.modules)
warnings.simplefilter('ignore')
from pydantic import v1
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
class Old(v1.BaseModel):
    a: int
try:
    FastAPI().get('/old', response_model=Old)(lambda: None)
except Exception as exc:
    print(type(exc).__name__)
try:
    jsonable_encoder(Old(a=1))
except Exception as exc:
    print(type(exc).__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "PydanticV1NotSupportedError", "PydanticV1NotSupportedError"]


def test_the_v1_checks_are_the_ones_fastapi_calls() -> None:
    """The seam: FastAPI's encoder and field builder reach the v1 checks through these names."""
    import fastapi.encoders
    from fastapi._compat import shared

    assert shared.is_pydantic_v1_model_class is startup.is_v1_model_class
    assert fastapi.encoders.is_pydantic_v1_model_instance is startup.is_v1_model_instance
    assert "is_pydantic_v1_model_class(" in inspect.getsource(shared.annotation_is_pydantic_v1)
