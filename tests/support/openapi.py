"""The API as deployed, for suites generated from it: template routes, each function's OpenAPI, real ids."""

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sputnik_tools.local.runtime import LocalFunction
from sputnik_tools.local.stack import LocalStack
from sputnik_tools.template import Route, Template
from tests.conftest import FIXTURES, TEMPLATE, new_user
from tests.support.projects import SCENE_BORDER
from tests.support.real_scene import SCENE, SCENE_DIR

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def api_functions() -> list[str]:
    """Logical ids of the template's functions that serve HttpApi routes, in template order."""
    seen = [route.function for route in Template.load(TEMPLATE).routes()]
    return sorted(set(seen), key=seen.index)


def served_openapi(handler: Any, routes: list[Route]) -> dict[str, Any] | None:
    """The OpenAPI document of a handler's app, cut to the operations the routes let through.

    None when the handler wraps no app with an OpenAPI document.
    """
    app = getattr(inspect.unwrap(handler), "app", None)
    if app is None or not hasattr(app, "openapi"):
        return None
    document: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        kept = {
            method: op
            for method, op in item.items()
            if method not in HTTP_METHODS or any(r.match(method.upper(), path) is not None for r in routes)
        }
        if any(method in HTTP_METHODS for method in kept):
            paths[path] = kept
    document["paths"] = paths
    return document


def function_openapi(stack: LocalStack, logical: str) -> dict[str, Any] | None:
    """A function's served OpenAPI document, from its handler in the running stack."""
    handler = stack.functions[stack.function_for(logical)].handler()
    return served_openapi(handler, [route for route in stack.routes if route.function == logical])


def all_operations() -> list[tuple[str, str, str]]:
    """(function, METHOD, path) of every served operation, read without a running stack.

    For test ids at collection: each function's module is loaded as the stack loads it, which
    builds its app and touches no AWS service.
    """
    template = Template.load(TEMPLATE)
    glob = (template.data.get("Globals") or {}).get("Function") or {}
    found = []
    for logical in api_functions():
        props = template.resources[logical].get("Properties") or {}
        function = LocalFunction(
            logical,
            template.physical_name(logical),
            template.root / str(props.get("CodeUri", glob.get("CodeUri", "."))),
            str(props.get("Handler", glob.get("Handler", "app.handler"))),
        )
        routes = [route for route in template.routes() if route.function == logical]
        document = served_openapi(function.handler(), routes)
        found += [(logical, method, path) for method, path, _ in operations(document or {"paths": {}})]
    return found


def openapi_or_skip(stack: LocalStack, logical: str) -> dict[str, Any]:
    """A function's served OpenAPI document; skip the test for a handler without one."""
    document = function_openapi(stack, logical)
    if document is None:
        pytest.skip(f"{logical}'s handler has no OpenAPI document")
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every operation of a document."""
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


@dataclass
class RealIds:
    """A real user's data in the stack: what a fuzzer or a second user substitutes into requests."""

    auth: tuple[str, str]
    project_id: int
    product_id: str
    scene_id: str
    date: str
    url: str
    product_url: str
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Index the ids by the parameter names the API gives them."""
        self.values = {
            "project_id": self.project_id,
            "product_id": self.product_id,
            "scene_id": self.scene_id,
            "date": self.date,
            "url": self.url,
        }


BORDER = SCENE_BORDER


def create_real_ids(stack: LocalStack, front_url: str, prefix: str) -> RealIds:
    """A fresh user with a project over the real scene, the scene's RGB product, and the scene's url.

    The project is created through the API as a user would; the scene is uploaded to the archive
    (its S3 notification ingests it) and copied into the project as its RGB product.
    """
    from sputnik.settings import get_settings
    from sputnik_tools.archive import upload_fixture_scene
    from sputnik_tools.local.demo import load_rgb_product

    bucket = get_settings().archive_bucket
    item_key = upload_fixture_scene(stack.client("s3"), bucket, FIXTURES / SCENE_DIR)
    login = new_user(prefix)
    with httpx.Client(base_url=front_url, auth=login, timeout=60) as api:
        created = api.post(
            "/project/new",
            json={
                "name": prefix,
                "start_date": "2020-02-01",
                "end_date": "2020-02-29",
                "border": json.dumps(BORDER),
            },
        )
        assert created.status_code == 200, created.text
        project_id = int(created.json()["project_id"])
    product_id = load_rgb_product(stack, project_id, SCENE)
    return RealIds(
        auth=login,
        project_id=project_id,
        product_id=product_id,
        scene_id=SCENE,
        date="2020-02-19",
        url=f"s3://{bucket}/{item_key.rsplit('/', 1)[0]}/TCI.tif",
        product_url=f"s3://{get_settings().products_bucket}/projects/{project_id}/rgb/{product_id}.tif",
    )
