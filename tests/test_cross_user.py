"""Cross-user sweep: every route that takes a user's ids, called by another user with them, is a 404.

Generated from the route list (the template's HttpApi events and each function's OpenAPI): every
operation with a project, product, scene, event or url parameter is called once by its owner (the
control: the request is well formed and answered) and once by a second user with the owner's ids.
Coverage is computed over every operation of every function: each is swept or named id-free.
"""

import re
from typing import Any

import httpx
import morecantile
import pytest

from sputnik_tools.local.front import Front
from sputnik_tools.local.stack import LocalStack
from tests.conftest import new_user
from tests.support.openapi import (
    RealIds,
    api_functions,
    create_real_ids,
    function_openapi,
    openapi_or_skip,
    operations,
)

# Parameter names that carry something a user owns.
OWNED = re.compile(r"project|product|scene|event|task|url", re.IGNORECASE)
# A point well inside the real scene, and what valid requests around it look like.
LON, LAT = -11.43, 24.8
TILE = morecantile.tms.get("WebMercatorQuad").tile(LON, LAT, 10)
VALID: dict[str, Any] = {
    "z": TILE.z,
    "x": TILE.x,
    "y": TILE.y,
    "tileMatrixSetId": "WebMercatorQuad",
    "TileMatrixSetId": "WebMercatorQuad",
    "scale": 1,
    "format": "png",
    "lon": LON,
    "lat": LAT,
    "minx": LON - 0.05,
    "miny": LAT - 0.05,
    "maxx": LON + 0.05,
    "maxy": LAT + 0.05,
    "width": 64,
    "height": 64,
}
FEATURE = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[LON - 0.05, LAT - 0.05], [LON + 0.05, LAT - 0.05], [LON, LAT + 0.05], [LON - 0.05, LAT - 0.05]]
        ],
    },
}


@pytest.fixture(scope="module")
def owner(stack: LocalStack, front: Front) -> RealIds:
    """The first user, whose project, product and product url the second user tries."""
    real = create_real_ids(stack, front.url, "owner")
    # The archive is everyone's; the owner's own file is the project's product.
    real.values["url"] = real.product_url
    # A task the API lists, for the routes that run one.
    listed = httpx.get(f"{front.url}/task/list", auth=real.auth, timeout=60)
    if listed.status_code == 200:
        real.values["task"] = listed.json()["tasks"][0]["name"]
    return real


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref` (to the document's components) followed."""
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def body_schema(document: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """The JSON body's schema of an operation ({} without one)."""
    content = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
    return resolved(document, content.get("schema") or {})


def owned_parameters(document: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """The names of an operation's parameters (and body fields) that carry owned ids."""
    names = [p["name"] for p in op.get("parameters", [])] + list(
        body_schema(document, op).get("properties", {})
    )
    return [n for n in names if OWNED.search(n)]


def value_for(name: str, schema: dict[str, Any], real: RealIds) -> Any:
    """A valid value of a parameter: the owner's id, a value around the scene, or the schema's own."""
    if name in real.values:
        return real.values[name]
    if name in VALID:
        return VALID[name]
    for key in ("default", "example"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    return 1 if schema.get("type") in ("integer", "number") else "1"


def build_request(
    document: dict[str, Any], method: str, path: str, op: dict[str, Any], real: RealIds
) -> dict[str, Any]:
    """httpx.request arguments for a well-formed call of an operation with the owner's ids."""
    query: dict[str, Any] = {}
    for param in op.get("parameters", []):
        if param["in"] not in ("path", "query") or not (
            param.get("required") or param["name"] in real.values
        ):
            continue
        value = value_for(param["name"], param.get("schema") or {}, real)
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", str(value))
        else:
            query[param["name"]] = value
    request: dict[str, Any] = {"method": method, "url": path, "params": query}
    body = body_schema(document, op)
    fields = body.get("properties", {})
    if op.get("requestBody") and (not fields or "geometry" in fields):
        request["json"] = FEATURE  # the tilers' bodies: a GeoJSON Feature (or collection)
    elif fields:
        # A body of named fields: the required ones (and owned ids), each valid.
        wanted = [n for n in fields if n in body.get("required", []) or n in real.values]
        request["json"] = {n: value_for(n, resolved(document, fields[n]), real) for n in wanted}
    return request


def owner_data(real: RealIds) -> list[str]:
    """Strings that appear only in the owner's data."""
    return [str(real.product_id), real.product_url, f"projects/{real.project_id}/"]


@pytest.mark.parametrize("function", api_functions())
def test_second_user_gets_404_from_every_route_that_takes_ids(
    function: str, stack: LocalStack, front: Front, owner: RealIds, capsys: pytest.CaptureFixture[str]
) -> None:
    document = openapi_or_skip(stack, function)
    swept = [(m, p, op) for m, p, op in operations(document) if owned_parameters(document, op)]
    if not swept:
        pytest.skip(f"no route of {function} takes a project, product, scene, event or url")
    problems = []
    with (
        httpx.Client(base_url=front.url, auth=owner.auth, timeout=60) as mine,
        httpx.Client(base_url=front.url, auth=new_user("intruder"), timeout=60) as theirs,
    ):
        for method, path, op in swept:
            request = build_request(document, method, path, op, owner)
            control = mine.request(**request)
            if not control.is_success:
                problems.append(
                    f"{method} {path}: the owner's own call is {control.status_code} {control.text[:200]}"
                )
            r = theirs.request(**request)
            leaked = [s for s in owner_data(owner) if s in r.text]
            if r.status_code != 404 or leaked:
                problems.append(f"{method} {path}: another user got {r.status_code} {r.text[:200]}")
            elif "detail" not in r.json():
                problems.append(f"{method} {path}: 404 without detail: {r.text[:200]}")
    with capsys.disabled():
        print(f"\n{function}: {len(swept)} routes with owned ids, {2 * len(swept)} requests")
    assert not problems, "\n".join(problems)


# Operations that take nothing a user owns, so another user has nothing of anyone's to try with
# them: (function, METHOD, path) -> why. Every other operation of every function is swept.
ID_FREE: dict[tuple[str, str, str], str] = {
    ("RootFunction", "GET", "/"): "the map viewer's page, the same for everyone",
    ("ProjectsFunction", "POST", "/project/new"): "creates a project of the caller's own",
    ("ProjectsFunction", "GET", "/project/list"): "lists only the caller's own projects",
    ("TasksFunction", "GET", "/task/list"): "the tasks anyone may run, the same for everyone",
    ("RgbFunction", "GET", "/product/legend"): "an index's colormap over a range, the same for everyone",
}
# Template routes that no app documents, each id-free: route key -> why.
UNDOCUMENTED_ID_FREE: dict[str, str] = {
    "GET /docs": "the API's documentation page, the same for everyone",
    "GET /openapi.json": "the combined OpenAPI document, the same for everyone",
    "GET /assets/{name}": "the viewer's scripts and styles, the same for everyone",
}


def test_every_operation_of_every_function_is_swept_or_named_id_free(stack: LocalStack) -> None:
    documents = {f: d for f in api_functions() if (d := function_openapi(stack, f)) is not None}
    every = {(f, m, p): op for f, d in documents.items() for m, p, op in operations(d)}
    swept = {key for key, op in every.items() if owned_parameters(documents[key[0]], op)}
    neither = sorted(set(every) - swept - set(ID_FREE))
    assert not neither, f"operations neither swept nor named id-free: {neither}"
    stale = sorted(set(ID_FREE) - (set(every) - swept))
    assert not stale, f"named id-free but taking ids, or gone: {stale}"
    assert swept, "the sweep found no operation that takes ids"
    # Every template route reaches a documented operation of its function, or is named id-free.
    for route in stack.routes:
        reached = any(route.match(m, p) is not None for f, m, p in every if f == route.function)
        assert reached or route.route_key in UNDOCUMENTED_ID_FREE, route.route_key
    assert set(UNDOCUMENTED_ID_FREE) <= {route.route_key for route in stack.routes}


@pytest.fixture(scope="module")
def departed(stack: LocalStack, front: Front) -> RealIds:
    """A user's ids after their login was deleted and made again, same password, for someone else."""
    from sputnik import auth
    from sputnik.models import UserModel

    real = create_real_ids(stack, front.url, "departed")
    real.values["url"] = real.product_url
    real.values["task"] = "s2_load_meta"
    UserModel.get(real.auth[0]).delete()  # as a removal that left the data behind would
    auth.add_user(*real.auth)
    return real


def test_a_login_made_again_gets_404_from_every_route_with_the_old_users_ids(
    stack: LocalStack, front: Front, departed: RealIds
) -> None:
    problems, swept = [], []
    with httpx.Client(base_url=front.url, auth=departed.auth, timeout=60) as again:
        assert again.get("/project/list").json() == {"projects": []}
        for function in api_functions():
            if (document := function_openapi(stack, function)) is None:
                continue
            for method, path, op in operations(document):
                if not owned_parameters(document, op):
                    continue
                swept.append(path)
                r = again.request(**build_request(document, method, path, op, departed))
                if r.status_code != 404 or any(s in r.text for s in owner_data(departed)):
                    problems.append(
                        f"{method} {path}: the login's new user got {r.status_code} {r.text[:200]}"
                    )
    assert {"/project/info", "/proc/list", "/rgb/list", "/cog/info"} <= set(swept)
    assert not problems, "\n".join(problems)
