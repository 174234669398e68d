"""Security headers on every answer of every function, and state-changing requests of other sites refused."""

import base64
import hashlib
import json
import re
import tomllib
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO
from tests.support.projects import SCENE_BORDER

SAHARA = json.dumps(SCENE_BORDER)


def policy(response: httpx.Response) -> dict[str, str]:
    """A Content-Security-Policy as {directive: sources}."""
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: (d[1] if len(d) > 1 else "") for d in directives if d[0]}


def assert_secured(response: httpx.Response) -> None:
    """The headers every answer carries."""
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = policy(response)
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "logged_in", "status"),
    [
        ("/", True, 200),
        ("/docs", True, 200),
        ("/openapi.json", True, 200),
        ("/assets/viewer.js", True, 200),
        ("/", False, 401),
        ("/project/list", True, 200),
        ("/project/list", False, 401),
        ("/project/info?project_id=999999", True, 404),
        ("/project/info?project_id=x", True, 422),
        ("/meta/dates?project_id=999999", True, 404),
        ("/rgb/list?project_id=999999", True, 404),
        ("/task/list", True, 200),
        ("/proc/list?project_id=999999", True, 404),
        ("/cog/info?url=file:///etc/passwd", True, 403),
        ("/cog/tiles/WebMercatorQuad/0/0/0?url=s3://nowhere/x.tif", True, 403),
    ],
)
def test_every_answer_carries_the_security_headers(
    front: Any, user: tuple[str, str], path: str, logged_in: bool, status: int
) -> None:
    r = httpx.get(front.url + path, auth=user if logged_in else None, timeout=60)
    assert r.status_code == status, r.text
    assert_secured(r)
    if r.headers["content-type"].startswith("application/json"):
        assert policy(r) == {
            "default-src": "'none'",
            "frame-ancestors": "'none'",
            "base-uri": "'none'",
            "form-action": "'none'",
        }


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_a_page_may_run_only_its_own_scripts_and_talk_only_to_its_origin(
    front: Any, user: tuple[str, str], path: str
) -> None:
    r = httpx.get(front.url + path, auth=user, timeout=60)
    csp = policy(r)
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert inline  # the page has inline scripts, and each is allowed by its hash alone
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in inline
    }
    assert set(csp["script-src"].split()) == {"'self'", *hashes}
    assert csp["connect-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["default-src"] == "'none'"
    images = set(csp["img-src"].split())
    assert images == {"'self'", "blob:", "data:"} | (
        {"https://tile.openstreetmap.org"} if path == "/" else set()
    )


def test_titilers_map_page_is_not_served(front: Any, user: tuple[str, str]) -> None:
    for path in ("/cog/WebMercatorQuad/map.html", "/cog/map.html"):
        r = httpx.get(front.url + path, auth=user, timeout=60)
        assert r.status_code == 404
        assert "html" not in r.headers["content-type"]


def _new_project(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """POST /project/new of a small valid project, with extra request headers."""
    return client.post("/project/new", json={"name": "csrf", "border": SAHARA}, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another host of the same site is another origin
    ],
)
def test_a_state_changing_request_another_site_sent_is_refused_and_writes_nothing(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    r = _new_project(api, headers)
    assert r.status_code == 403
    assert r.json() == {"detail": "refused: the request was sent by another site"}
    assert_secured(r)
    assert api.get("/project/list").json() == {"projects": []}
    ran = api.post("/task/run", json={"task": "s2_load_meta", "title": "x", "project_id": 1}, headers=headers)
    assert ran.status_code == 403


def test_requests_of_the_page_itself_and_of_clients_without_a_browser_pass(
    api: httpx.Client, front: Any
) -> None:
    assert _new_project(api, {"Origin": front.url, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _new_project(api, {}).status_code == 200  # curl sends neither header
    # Reads are not refused: a cross-site GET cannot read the answer anyway.
    listed = api.get(
        "/project/list", headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert listed.status_code == 200
    assert len(listed.json()["projects"]) == 2


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_sent_as_anything_but_json_is_refused(
    api: httpx.Client, content_type: str | None
) -> None:
    body = json.dumps({"name": "plain", "border": SAHARA}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    request = api.build_request("POST", "/project/new", content=body, headers=headers)
    assert request.headers.get("Content-Type") == content_type
    r = api.send(request)
    assert r.status_code == 422
    assert api.get("/project/list").json() == {"projects": []}


def test_the_fastapi_floor_refuses_non_json_bodies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (fastapi,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "fastapi"]
    # 0.132.0 made FastAPI check that a JSON body comes with a JSON Content-Type (strict_content_type).
    assert not fastapi.specifier.contains("0.131.0")
    assert fastapi.specifier.contains("0.132.0")
