"""The Root function: the viewer, the combined OpenAPI document, the docs, and the contract's routes."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import create_model

from sputnik.api.root import Bundle, BundleMissing
from sputnik_tools.openapi import OpenApiConflict, combine, combined_document
from sputnik_tools.template import Template
from tests.conftest import REPO, TEMPLATE

BUNDLE = REPO / "functions" / "root" / "static"
CONTRACT = REPO / "docs" / "sputnik-api.md"
# Routes of the Root function that document the API or serve the page's files; not in the contract.
DOCUMENTATION_ROUTES = {("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/assets/{name}")}
# Every file the page or the docs load.
ASSETS = ("viewer.js", "viewer.css", "swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
HEAVY_MODULES = ("numpy", "shapely", "pyproj", "rasterio", "rio_tiler", "titiler")


def contract_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation of the contract copy."""
    routes = set()
    path = None
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("### "):
            match = re.fullmatch(r"### (/\S*)", line)
            path = match.group(1) if match else None
        elif path and (method := re.fullmatch(r"#### (GET|POST|PUT|PATCH|DELETE)", line)):
            routes.add((method.group(1), path))
    return routes


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation of an OpenAPI document."""
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def sample_path(path: str) -> str:
    """A concrete request path for a path template: every `{param}` filled with a plain value."""
    return re.sub(r"\{[^}]+\}", "1", path)


def stock_titiler_routes() -> set[tuple[str, str]]:
    """The routes stock titiler.core serves for COGs, under /cog."""
    from titiler.core.factory import TilerFactory

    app = FastAPI()
    app.include_router(TilerFactory().router, prefix="/cog")
    return {(m, p) for m, p in documented_routes(app.openapi()) if p.startswith("/cog/")}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    """The combined document the Root function ships."""
    path = BUNDLE / "openapi.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make bundle`")
    return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def produced() -> dict[str, Any]:
    """The combined document that the functions' apps produce now."""
    return combined_document(TEMPLATE)


# ---------------------------------------------------------------- the combined document


def test_shipped_document_is_what_the_apps_produce_now(
    shipped: dict[str, Any], produced: dict[str, Any]
) -> None:
    assert shipped == produced, "functions/root/static/openapi.json is stale: run `make bundle`"


def test_combined_document_has_every_route_and_model_of_every_function(produced: dict[str, Any]) -> None:
    from sputnik_tools.openapi import function_apps

    apps = function_apps(Template.load(TEMPLATE))
    assert {"RootFunction", "ProjectsFunction", "MetaFunction", "CogFunction", "RgbFunction"} <= set(apps)
    for name, app in apps.items():
        own = app.openapi()
        assert documented_routes(own) <= documented_routes(produced), name
        for path, ops in own["paths"].items():
            for method, operation in ops.items():
                assert produced["paths"][path][method] == operation
        for model, schema in own.get("components", {}).get("schemas", {}).items():
            assert produced["components"]["schemas"][model] == schema, f"{name}: {model}"
    assert produced["info"]["title"] == "sputnik"
    assert produced["servers"] == [{"url": "."}]  # relative: works under a stage prefix


def test_two_apps_documenting_one_route_do_not_merge() -> None:
    first, second = FastAPI(), FastAPI()
    for app in (first, second):
        app.get("/same")(lambda: {})
    with pytest.raises(OpenApiConflict, match="GET /same"):
        combine({"First": first, "Second": second})


def test_two_models_of_one_name_that_differ_do_not_merge() -> None:
    def app_with_res(field_type: type) -> FastAPI:
        res = create_model("Res", value=(field_type, ...))
        app = FastAPI()
        app.get(f"/{field_type.__name__}", response_model=res)(lambda: None)
        return app

    with pytest.raises(OpenApiConflict, match="'Res'"):
        combine({"First": app_with_res(int), "Second": app_with_res(str)})


# ---------------------------------------------------------------- the contract, both ways


def test_every_contract_route_is_served(produced: dict[str, Any]) -> None:
    missing = contract_routes() - documented_routes(produced)
    assert not missing, f"contract routes no function serves: {sorted(missing)}"


def test_every_served_route_is_in_the_contract_or_stock_titiler(produced: dict[str, Any]) -> None:
    # Beyond the contract, /cog also serves titiler's current paths (README: "titiler's current paths").
    extra = documented_routes(produced) - contract_routes()
    assert extra <= stock_titiler_routes(), (
        f"served but in no contract: {sorted(extra - stock_titiler_routes())}"
    )


def test_every_contract_route_is_routed_by_the_template_to_the_function_that_serves_it() -> None:
    from sputnik_tools.openapi import function_apps

    template = Template.load(TEMPLATE)
    routes = template.routes()
    serving = {
        route: name
        for name, app in function_apps(template).items()
        for route in documented_routes(app.openapi())
    }
    for method, path in sorted(contract_routes()):
        taken = next((r for r in routes if r.match(method, sample_path(path)) is not None), None)
        assert taken is not None, f"{method} {path} has no HttpApi event in template.yaml"
        assert taken.function == serving.get((method, path)), f"{method} {path} is routed to {taken.function}"


def test_every_template_route_is_in_the_contract_or_documentation() -> None:
    contract = contract_routes()
    for route in Template.load(TEMPLATE).routes():
        if (route.method, route.path) in DOCUMENTATION_ROUTES:
            assert route.function == "RootFunction"
            continue
        assert any(route.match(m, sample_path(p)) is not None for m, p in contract), (
            f"{route.route_key} of {route.function} is in no contract route"
        )


def test_root_is_served_by_the_root_function_only() -> None:
    taking_root = {r.function for r in Template.load(TEMPLATE).routes() if r.match("GET", "/") is not None}
    assert taking_root == {"RootFunction"}


# ---------------------------------------------------------------- the pages through the local stack


def test_root_serves_the_viewer_page_with_relative_urls(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == (BUNDLE / "index.html").read_text()
    # Tags and the script that adds the page's files once the URL ends with a slash.
    links = re.findall(r'(?:src|href)(?:=|: )"([^"]+)"', page.text)
    assert "assets/viewer.js" in links and "assets/viewer.css" in links
    # Relative links only: the page works under a stage prefix and loads nothing from elsewhere.
    assert all(not link.startswith(("/", "http:", "https:")) for link in links), links


@pytest.mark.parametrize("name", ASSETS)
def test_every_asset_is_served_from_the_bundle(api: httpx.Client, name: str) -> None:
    response = api.get(f"/assets/{name}")
    assert response.status_code == 200
    assert response.content == (BUNDLE / "assets" / name).read_bytes()
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}[Path(name).suffix]
    assert response.headers["content-type"].startswith(expected)
    assert response.headers["cache-control"] == "private, no-cache"


def test_an_unchanged_asset_answers_304(api: httpx.Client) -> None:
    first = api.get("/assets/viewer.css")
    again = api.get("/assets/viewer.css", headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    stale = api.get("/assets/viewer.css", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


def test_large_assets_are_compressed_when_the_browser_accepts_it(api: httpx.Client) -> None:
    response = api.get("/assets/viewer.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == (BUNDLE / "assets" / "viewer.js").read_bytes()  # httpx decoded it


@pytest.mark.parametrize(
    "name", ["nothing.js", "%2e%2e", "index.html", "..%2Fopenapi.json", "..%2F..%2Ftemplate.yaml"]
)
def test_unknown_assets_are_404_with_a_detail(api: httpx.Client, name: str) -> None:
    response = api.get(f"/assets/{name}")
    assert response.status_code == 404
    assert response.json()  # API Gateway's or the function's JSON answer, never a file


def test_openapi_json_is_the_shipped_combined_document(api: httpx.Client, shipped: dict[str, Any]) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == shipped


def test_docs_is_swagger_ui_over_the_combined_document_with_its_own_assets(api: httpx.Client) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    assert "SwaggerUIBundle" in page.text and "url: 'openapi.json'" in page.text
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(links) == ["assets/favicon.png", "assets/swagger-ui-bundle.js", "assets/swagger-ui.css"]
    assert "http" not in page.text  # no CDN


@pytest.mark.parametrize("path", ["/", "/docs", "/openapi.json", "/assets/viewer.js", "/assets/nothing.js"])
def test_every_root_route_needs_credentials(anon: httpx.Client, user: tuple[str, str], path: str) -> None:
    response = anon.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    wrong = anon.get(path, auth=(user[0], "wrong password"))
    assert wrong.status_code == 401


# ---------------------------------------------------------------- the function itself


def test_a_missing_bundle_is_named_not_guessed(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    with pytest.raises(BundleMissing, match="make bundle"):
        bundle.file("index.html")
    with pytest.raises(BundleMissing, match="make bundle"):
        bundle.asset("viewer.js")


def test_the_root_function_imports_no_geometry_or_pixel_library() -> None:
    code = (
        "import runpy, sys; runpy.run_path('functions/root/app.py'); "
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
