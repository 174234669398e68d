"""The map viewer at /, used as a person would: Debian's chromium, driven by Playwright, on the local stack.

The login is the browser's own Basic-auth prompt (Playwright answers it with `http_credentials`).
A screenshot of each test's final state is saved in build/test-artifacts/.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Response,
    Route,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import FIXTURES, REPO, new_user
from tests.support.projects import SCENE_BORDER
from tests.support.tiles import decode_png

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "build" / "test-artifacts"
REAL_SCENE = "S2A_29RKH_20200219_0_L2A"
REAL_ITEM = FIXTURES / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2" / REAL_SCENE / f"{REAL_SCENE}.json"
# A border inside the real scene's footprint (the demo project "Saharan coast").
SAHARA = SCENE_BORDER
DASH = "\N{EN DASH}"  # between the ends of a period or a range, as the page writes it
# How long a person would wait for a task run or tiles before calling it broken (not a speed check).
PATIENCE_MS = 180_000
# Every expectation waits as long (Playwright's default is 5 s, which a loaded machine can pass).
expect.set_options(timeout=PATIENCE_MS)


@dataclass
class Visit:
    """A logged-in browser tab on the viewer, with every request and response it made."""

    page: Page
    base: str
    credentials: tuple[str, str] | None
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def responses_to(self, fragment: str) -> list[Response]:
        """The responses whose URL contains a fragment."""
        return [r for r in self.responses if fragment in r.url]

    def map_pixels(self) -> numpy.ndarray:
        """The map as the person sees it: (rows, cols, RGB)."""
        return numpy.moveaxis(decode_png(self.page.locator("#map").screenshot())[:3], 0, -1)

    def shoot(self, name: str) -> Path:
        """Save a screenshot of the whole page as a test artifact."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (never a browser that Playwright downloads)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo_archive(stack: Any) -> str:
    """The demo archive in the stack: generated scenes and the real one, ingested through S3 events."""
    from sputnik_tools.local import demo

    return demo.load_scenes(stack)


@contextmanager
def open_viewer(browser: Browser, front: Any, credentials: tuple[str, str] | None) -> Iterator[Visit]:
    """Open the viewer in a fresh browser context, logged in with the credentials if any."""
    context: BrowserContext = browser.new_context(
        http_credentials={"username": credentials[0], "password": credentials[1]} if credentials else None,
        viewport={"width": 1280, "height": 860},
    )
    page = context.new_page()
    page.set_default_timeout(PATIENCE_MS)
    visit = Visit(page, front.url, credentials)
    page.on("request", lambda request: visit.requests.append(request))
    page.on("response", lambda response: visit.responses.append(response))
    page.on("pageerror", lambda exc: visit.errors.append(str(exc)))
    # What the page's Content-Security-Policy blocked: the page must need nothing it forbids.
    page.on(
        "console",
        lambda msg: visit.errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        yield visit
    finally:
        context.close()


@pytest.fixture
def visit(browser: Browser, front: Any, demo_archive: str) -> Iterator[Visit]:
    """A fresh user in a fresh browser, logged in and on the viewer's page."""
    with open_viewer(browser, front, new_user("viewer")) as visit:
        response = visit.page.goto(f"{front.url}/")
        assert response is not None and response.status == 200
        expect(visit.page.locator("#project-list")).to_contain_text("No projects yet.")
        yield visit
        # Everything the page loaded came from the stack itself (data: URLs are inline images).
        foreign = [r.url for r in visit.requests if not r.url.startswith((front.url, "data:"))]
        assert not foreign, f"requests beyond the stack: {foreign}"
        assert not visit.errors, f"script errors: {visit.errors}"


def create_project(page: Page, name: str, border: str, start: str, end: str) -> int:
    """Fill in and send the new-project form; the id the page announces."""
    if not page.locator("#new-project").evaluate("details => details.open"):
        page.locator("#new-project summary").click()
    form = page.locator("#project-form")
    form.locator("[name=name]").fill(name)
    form.locator("[name=start_date]").fill(start)
    form.locator("[name=end_date]").fill(end)
    if border:
        form.locator("[name=border]").fill(border)
    form.get_by_role("button", name="Create project").click()
    expect(page.locator("#notice")).to_contain_text("created")
    found = re.search(r"Project (\d+) created", page.locator("#notice").inner_text())
    assert found, page.locator("#notice").inner_text()
    return int(found.group(1))


def hover_footprint(page: Page) -> None:
    """Move the mouse over the middle of the scene footprints drawn on the map."""
    page.wait_for_function("() => !document.querySelector('.leaflet-zoom-anim')")
    footprint = page.locator(".leaflet-overlay-pane path").last.bounding_box()
    assert footprint is not None
    page.mouse.move(footprint["x"] + footprint["width"] / 2, footprint["y"] + footprint["height"] / 2)


def wait_for_tiles(page: Page) -> None:
    """Wait until every tile layer on the map has had all its tiles in view arrive (or fail).

    Leaflet's `load` event, which the viewer marks on the layer's element; an image count alone
    can pass while a slow layer has not yet added the rest of its tiles.
    """
    page.wait_for_function(
        """() => {
            const layers = [...document.querySelectorAll('.leaflet-tile-pane .leaflet-layer')];
            const tiles = [...document.querySelectorAll('.leaflet-tile-pane img')];
            return layers.length > 0 && layers.every((layer) => layer.dataset.loaded === 'true')
                && tiles.length > 0 && tiles.every((img) => img.complete);
        }""",
        timeout=PATIENCE_MS,
    )
    page.wait_for_timeout(300)  # a frame for the loaded tiles to be drawn


def wait_for_imagery(visit: Visit, before: numpy.ndarray, what: str) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Wait until a layer changed over 30 % of the map from `before`; the map's pixels and which changed.

    Leaflet fades loaded tiles in, so the picture may need a moment after the last response.
    """
    for _ in range(40):
        shown = visit.map_pixels()
        changed = numpy.any(numpy.abs(shown.astype(int) - before) > 12, axis=-1)
        if changed.mean() > 0.3:
            break
        visit.page.wait_for_timeout(250)
    assert changed.mean() > 0.3, f"{what} changed only {changed.mean():.0%} of the map"
    return shown, changed


def test_a_person_creates_a_project_sees_its_scenes_runs_a_task_and_views_the_product(
    visit: Visit, front: Any
) -> None:
    page = visit.page
    project_id = create_project(page, "Saharan coast", json.dumps(SAHARA), "2020-02-01", "2020-02-29")
    expect(page.locator("#project-title")).to_have_text(f"Saharan coast (project {project_id})")
    expect(page.locator("#project-list li.selected")).to_contain_text("Saharan coast")

    # The project's dates; the real scene's footprint, product name, cloud cover and quicklook.
    page.locator("#date-select").select_option("2020-02-19")
    row = page.locator(f'#scene-table tr[data-scene-id="{REAL_SCENE}"]')
    item = json.loads(REAL_ITEM.read_text())
    expect(row.locator(".product")).to_have_text(item["properties"]["s2:product_uri"].removesuffix(".SAFE"))
    expect(row.locator(".cloud")).to_have_text(f"{round(item['properties']['eo:cloud_cover'])} %")
    quicklook = row.locator("img.quicklook")
    expect(quicklook).to_have_js_property("complete", True)
    assert quicklook.evaluate("img => img.naturalWidth") > 0
    assert page.locator(".leaflet-overlay-pane path").count() >= 2  # the border and the footprint
    # Hovering the footprint names its product and cloud cover.
    hover_footprint(page)
    product_name = item["properties"]["s2:product_uri"].removesuffix(".SAFE")
    expect(page.locator(".leaflet-tooltip")).to_have_text(
        f"{product_name} · cloud {round(item['properties']['eo:cloud_cover'])} %"
    )

    # Run s2_load_data on that scene and watch the run until it is DONE.
    expect(page.locator("#task-select option")).to_contain_text(["s2_load_meta", "s2_load_data"])
    page.locator("#task-select").select_option("s2_load_data")
    row.locator(".product").click()  # offers the scene as the task's parameters
    params = page.locator("#task-form [name=params]")
    expect(params).to_have_value(re.compile("scene_ids"))
    assert json.loads(params.input_value()) == {"scene_ids": [REAL_SCENE]}
    page.locator("#task-form [name=title]").fill("true colour of the February scene")
    polled = len(visit.responses_to("/proc/list"))
    page.locator("#task-form").get_by_role("button", name="Run").click()
    expect(page.locator("#notice")).to_contain_text("s2_load_data started", timeout=PATIENCE_MS)
    run = page.locator("#proc-table tbody tr").first
    expect(run).to_have_attribute("data-status", "DONE", timeout=PATIENCE_MS)
    expect(run).to_have_attribute("data-result", "SUCCESS")
    # The page polled by itself while the run was in progress, and stopped once it was DONE.
    seen = [r.json()["procs"][0]["status"] for r in visit.responses_to("/proc/list")[polled:]]
    assert seen[-1] == "DONE" and len(seen) >= 2 and set(seen[:-1]) <= {"WAIT", "RUN"}, seen
    page.wait_for_timeout(3 * 1500)
    assert len(visit.responses_to("/proc/list")) == polled + len(seen)

    # The run's RGB product appears; switched on, its tiles load and the map shows imagery.
    product = page.locator(f'#product-list li[data-product-id="{REAL_SCENE}-rgb"] input')
    before = visit.map_pixels()  # the border and the footprint over the empty map
    product.check()
    wait_for_tiles(page)
    tiles = visit.responses_to(f"/rgb/tile/{project_id}/{REAL_SCENE}-rgb/")
    assert len(tiles) >= 4
    assert {(t.status, t.headers["content-type"]) for t in tiles} == {(200, "image/png")}
    # The product fills the border, about half of the map here: imagery, not one flat colour.
    shown, changed = wait_for_imagery(visit, before, "the RGB layer")
    assert shown[changed].std() > 5
    visit.shoot("viewer-rgb")

    # The date's layer is its mosaic: one layer of every scene of the date, through /mosaic/tile.
    product.uncheck()
    before = visit.map_pixels()
    page.locator("#mosaic-toggle").check()
    wait_for_tiles(page)
    mosaic = visit.responses_to(f"/mosaic/tile/{project_id}/2020-02-19/")
    assert len(mosaic) >= 4 and {(t.status, t.headers["content-type"]) for t in mosaic} == {
        (200, "image/png")
    }
    shown, changed = wait_for_imagery(visit, before, "the date's mosaic")
    assert shown[changed].std() > 5
    assert not visit.responses_to("/cog/tiles/")  # no layer per scene
    # Masking clouds asks for the same tiles with mask=clouds.
    page.locator("#mosaic-clouds").check()
    wait_for_tiles(page)
    masked = [t for t in visit.responses_to("/mosaic/tile/") if t.url.endswith("?mask=clouds")]
    assert masked and {t.status for t in masked} == {200}
    expect(page.locator("#error")).to_be_hidden()
    page.locator("#proc-table").scroll_into_view_if_needed()  # the finished run in the screenshot
    assert visit.shoot("viewer-final").stat().st_size > 10_000


def test_a_hostile_product_name_in_a_tooltip_is_text_not_html(visit: Visit) -> None:
    from sputnik.models import MetaModel

    page = visit.page
    project_id = create_project(page, "Saharan coast", json.dumps(SAHARA), "2020-02-01", "2020-02-29")
    (real,) = MetaModel.query(project_id)
    hostile = "<img src=x onerror=\"document.title='pwned'\">"
    MetaModel(project_id, real.date_scene + "~", **{**real.attribute_values, "filename": hostile}).save()
    page.locator("#date-select").select_option("2020-02-19")
    expect(page.locator("#scene-table tbody tr")).to_have_count(2)
    hover_footprint(page)
    tooltip = page.locator(".leaflet-tooltip")
    expect(tooltip).to_contain_text(hostile)  # shown as the characters it is
    assert tooltip.locator("img").count() == 0
    assert page.title() == "sputnik"


def test_the_page_runs_no_script_but_its_own(browser: Browser, front: Any) -> None:
    with open_viewer(browser, front, new_user("viewer")) as visit:
        response = visit.page.goto(f"{front.url}/")
        assert response is not None and response.status == 200
        expect(visit.page.locator("#project-list")).to_contain_text("No projects yet.")
        # A script slipped into the page (as an injection would) is refused by the policy.
        visit.page.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = "document.title = 'injected'"; document.body.append(s); }"""
        )
        assert visit.page.title() == "sputnik"
        assert any("Content Security Policy" in e for e in visit.errors)


def test_a_border_drawn_on_the_map_becomes_the_project_border(visit: Visit) -> None:
    page = visit.page
    for _ in range(8):  # from the whole world down to a town's size, as a person would zoom in
        page.locator(".leaflet-control-zoom-in").click()
        page.wait_for_function("() => !document.querySelector('.leaflet-zoom-anim')")
    page.locator("#new-project summary").click()
    page.get_by_role("button", name="Draw on map").click()
    box = page.locator("#map").bounding_box()
    assert box is not None
    corners = [(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)]
    for fx, fy in [*corners, corners[0]]:  # clicking the first corner again closes the ring
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    drawn = json.loads(page.locator("#project-form [name=border]").input_value())
    assert drawn["type"] == "Polygon"
    ring = drawn["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    project_id = create_project(page, "Drawn", "", "2021-06-01", "2021-06-30")
    with httpx.Client(base_url=visit.base, auth=visit.credentials, timeout=60) as api:
        stored = json.loads(api.get("/project/info", params={"project_id": project_id}).json()["border_gj"])
    assert numpy.allclose(sorted(map(tuple, stored["coordinates"][0])), sorted(map(tuple, ring)), atol=1e-6)
    visit.shoot("viewer-drawn")


@pytest.mark.parametrize(
    ("border", "start", "end", "words"),
    [
        (
            '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}',
            "2021-06-01",
            "2021-06-30",
            "Self-intersection",
        ),
        (json.dumps(SAHARA), "2021-07-01", "2021-06-01", "start_date"),
        ("not json at all", "2021-06-01", "2021-06-30", "border"),
    ],
)
def test_api_errors_are_shown_in_words(visit: Visit, border: str, start: str, end: str, words: str) -> None:
    page = visit.page
    page.locator("#new-project summary").click()
    form = page.locator("#project-form")
    form.locator("[name=name]").fill("Refused")
    form.locator("[name=start_date]").fill(start)
    form.locator("[name=end_date]").fill(end)
    form.locator("[name=border]").fill(border)
    form.get_by_role("button", name="Create project").click()
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("POST project/new failed (422)")
    expect(error).to_contain_text(words)
    expect(page.locator("#project-list")).to_contain_text("No projects yet.")  # nothing was created
    visit.shoot(f"viewer-error-{words.lower()}")


def test_the_viewer_works_under_an_api_gateway_stage_prefix(visit: Visit, front: Any) -> None:
    page = visit.page
    stage = f"{front.url}/prod"

    def through_stage(route: Route) -> None:
        # What API Gateway does for a named stage: strip /prod before the route is matched.
        route.fulfill(response=route.fetch(url=front.url + route.request.url.removeprefix(stage)))

    page.route(f"{stage}/**", through_stage)
    page.route(stage, through_stage)
    start = len(visit.requests)
    page.goto(stage)  # without the trailing slash, as people type it
    expect(page).to_have_url(f"{stage}/")
    project_id = create_project(page, "Staged", json.dumps(SAHARA), "2020-02-01", "2020-02-29")
    page.locator("#date-select").select_option("2020-02-19")
    expect(page.locator(f'#scene-table tr[data-scene-id="{REAL_SCENE}"] img.quicklook')).to_have_js_property(
        "complete", True
    )
    made = [r.url for r in visit.requests[start:]]
    assert f"{stage}/assets/viewer.js" in made and f"{stage}/project/info?project_id={project_id}" in made
    outside = [url for url in made if not url.startswith((f"{stage}/", "data:")) and url != stage]
    assert not outside, f"requests that left the stage: {outside}"


def test_a_quota_refusal_is_explained_in_words(visit: Visit, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from sputnik import quotas
    from sputnik.tasks import runner

    limits = replace(quotas.limits(), running_procs=1)
    monkeypatch.setattr(quotas, "limits", lambda: limits)
    # The first run's execution is never started, so it holds the user's one running slot.
    monkeypatch.setattr(runner, "start_execution", lambda proc: f"event-{proc.event_id}")
    page = visit.page
    create_project(page, "Saharan coast", json.dumps(SAHARA), "2020-02-01", "2020-02-29")
    page.locator("#task-select").select_option("s2_load_meta")
    page.locator("#task-form [name=title]").fill("first")
    page.locator("#task-form").get_by_role("button", name="Run").click()
    expect(page.locator("#notice")).to_contain_text("s2_load_meta started")
    page.locator("#task-form [name=title]").fill("second")
    page.locator("#task-form").get_by_role("button", name="Run").click()
    expect(page.locator("#error")).to_contain_text(
        "POST task/run failed (429): limit reached: at most 1 running procs per user; wait until one ends "
        "(try again in 60 seconds)"
    )
    expect(page.locator("#proc-table tbody tr")).to_have_count(1)  # the second was not started


@pytest.mark.parametrize(
    ("title", "params", "words"),
    [
        ("   ", "", "POST task/run failed (422): title must not be empty"),
        ("nope", '{"scene_ids": "S2A"}', "POST task/run failed (422): params of s2_load_data"),
        ("nope", '{"scene_ids": [', "The parameters are not valid JSON"),
    ],
)
def test_a_refused_task_run_is_explained_in_words(visit: Visit, title: str, params: str, words: str) -> None:
    page = visit.page
    create_project(page, "Saharan coast", json.dumps(SAHARA), "2020-02-01", "2020-02-29")
    page.locator("#task-select").select_option("s2_load_data")
    page.locator("#task-form [name=title]").fill(title)
    page.locator("#task-form [name=params]").fill(params)
    page.locator("#task-form").get_by_role("button", name="Run").click()
    expect(page.locator("#error")).to_contain_text(words)
    expect(page.locator("#proc-table tbody tr")).to_have_count(0)  # nothing was started


@pytest.mark.parametrize("password", [None, "wrong password"])
def test_the_login_is_the_browser_prompt(browser: Browser, front: Any, password: str | None) -> None:
    credentials = None if password is None else (new_user("viewer")[0], password)
    with open_viewer(browser, front, credentials) as visit:
        # A Basic challenge makes a person's browser prompt for the login. Headless chromium, with no
        # answer or a refused one, either shows the 401 page or gives up on the page: both are a refusal.
        try:
            visit.page.goto(f"{front.url}/")
        except PlaywrightError as exc:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
        assert visit.responses, "the server was not asked"
        for response in visit.responses:
            assert response.status == 401
            assert response.headers["www-authenticate"].startswith("Basic")
        assert not visit.responses_to("/assets/")  # nothing of the viewer without a login


def test_the_api_docs_render_every_route_from_the_stack(visit: Visit, front: Any) -> None:
    page = visit.page
    page.goto(f"{front.url}/docs")
    document = page.evaluate("() => fetch('openapi.json').then(r => r.json())")
    operations = sum(len(ops) for ops in document["paths"].values())
    expect(page.locator(".opblock")).to_have_count(operations)
    # "Try it out" reaches the API through the document's relative server, with the page's login.
    listing = page.locator("#operations-default-project_list_project_list_get")
    listing.locator(".opblock-summary").click()
    listing.get_by_role("button", name="Try it out").click()
    seen = len(visit.responses_to("/project/list"))  # the viewer's own call before /docs
    listing.get_by_role("button", name="Execute").click()
    expect(listing.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    (answer,) = visit.responses_to("/project/list")[seen:]
    assert answer.url == f"{front.url}/project/list" and answer.json() == {"projects": []}
    visit.shoot("viewer-docs")


def test_scenes_carry_cloud_cover_and_a_tci_url_that_cog_serves(api: httpx.Client, demo_archive: str) -> None:
    project_id = api.post(
        "/project/new",
        json={
            "name": "Sahara",
            "start_date": "2020-02-01",
            "end_date": "2020-02-29",
            "border": json.dumps(SAHARA),
        },
    ).json()["project_id"]
    (meta,) = api.get("/meta/list", params={"project_id": project_id, "date": "2020-02-19"}).json()["metas"]
    item = json.loads(REAL_ITEM.read_text())
    assert meta["cloud_cover"] == pytest.approx(item["properties"]["eo:cloud_cover"])
    assert meta["tci_url"].endswith(f"/29/R/KH/2020/2/{REAL_SCENE}/TCI.tif")
    info = api.get("/cog/info", params={"url": meta["tci_url"]})
    assert info.status_code == 200
    assert info.json()["band_descriptions"][0][0] == "b1"


def test_a_person_charts_an_index_series_shows_a_date_on_the_map_and_downloads_the_csv(
    visit: Visit, stack: Any
) -> None:
    from sputnik.models import ProductModel
    from sputnik_tools.local.demo import DEMO_PROJECTS

    page = visit.page
    name, start, end, border = DEMO_PROJECTS[0]  # over the generated scenes: three dates, clouds
    project_id = create_project(page, name, border, start, end)
    expect(page.locator("#series-empty")).to_be_visible(timeout=PATIENCE_MS)  # no index product yet

    # The person runs s2_index for NDVI; when the run ends the series appears by itself.
    page.locator("#task-select").select_option("s2_index")
    page.locator("#task-form [name=title]").fill("NDVI")
    page.locator("#task-form [name=params]").fill('{"index": "ndvi"}')
    page.locator("#task-form").get_by_role("button", name="Run").click()
    run = page.locator("#proc-table tbody tr").first
    expect(run).to_have_attribute("data-status", "DONE", timeout=PATIENCE_MS)
    expect(run).to_have_attribute("data-result", "SUCCESS")
    made = list(ProductModel.query(project_id, ProductModel.product_id.startswith("index:ndvi:")))
    records = [{"date": p.date, "scene_id": p.scene_id, **p.stats} for p in made]
    dates = sorted({r["date"] for r in records})
    assert len(dates) >= 3, dates

    # The chart: one point per date (its clearest scene), the cloudy ones (below the 50 % asked for) apart.
    chart = page.locator("#series-chart")
    expect(chart).to_have_attribute("data-dates", str(len(dates)), timeout=PATIENCE_MS)
    clearest = [max((r for r in records if r["date"] == d), key=lambda r: r["valid_pixels"]) for d in dates]
    expect(chart).to_have_attribute("data-cloudy", str(sum(r["clear_fraction"] < 0.5 for r in clearest)))
    expect(page.locator("#series-index")).to_have_value("ndvi")
    canvas = chart.locator("canvas")
    expect(canvas).to_be_visible()
    drawn = decode_png(canvas.screenshot())[:3]
    assert drawn.std() > 10  # lines, a band and bars, not a blank canvas
    expect(page.locator("#series-info")).to_contain_text(f"{len(dates)} dates, {len(records)} scenes")

    # Clicking the last date shows its NDVI layer through /product/tile, with its legend.
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    last = records[-1]
    expect(chart).to_have_attribute("data-shown", dates[-1], timeout=PATIENCE_MS)
    wait_for_tiles(page)
    tiles = visit.responses_to(f"/product/tile/{project_id}/")
    assert tiles and {(t.status, t.headers["content-type"]) for t in tiles} == {(200, "image/png")}
    assert all(f"{dates[-1]}" in t.url for t in tiles)
    legend = page.locator("#index-legend")
    expect(legend).to_have_attribute("data-colormap", "rdylgn", timeout=PATIENCE_MS)
    expect(legend).to_contain_text("-1")
    expect(page.locator("#series-info")).to_contain_text(last["scene_id"])

    # The CSV: the dates at least as clear as asked, as the records hold them.
    with page.expect_download() as download:
        page.locator("#series-csv").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    kept = [r for r in records if r["clear_fraction"] >= 0.5]
    assert [(r["date"], r["scene_id"]) for r in rows] == [(r["date"], r["scene_id"]) for r in kept]
    assert [float(r["median"]) for r in rows] == [r["median"] for r in kept]
    assert len(kept) > 0
    assert download.value.suggested_filename == f"sputnik-project-{project_id}-ndvi.csv"
    expect(page.locator("#error")).to_be_hidden()
    visit.shoot("viewer-series")


def test_a_person_sees_a_composite_turns_it_on_and_is_told_why_a_bad_period_is_refused(
    visit: Visit, stack: Any
) -> None:
    from sputnik.models import ProjectModel
    from sputnik.tasks import runner
    from sputnik_tools.local import demo

    # The demo's projects for this person and the demo's composite of the village, started as
    # `make run` does; the page, opened now, sees the run end (or finds it ended) and lists it.
    assert visit.credentials is not None
    login = visit.credentials[0]
    village = demo.load_projects(login)[2]
    owner = str(ProjectModel.get(village).owner)
    runner.run_task(owner, login, "s2_composite", "demo composite", village, demo.DEMO_COMPOSITE)
    page = visit.page
    page.reload()
    page.locator("#project-list button", has_text="Pannonian village").click()
    expect(page.locator("#project-title")).to_have_text(f"Pannonian village (project {village})")
    start, end = demo.DEMO_COMPOSITE["start_date"], demo.DEMO_COMPOSITE["end_date"]
    product_id = f"composite:rgb:median:{start}:{end}"
    item = page.locator(f'#composite-list li[data-product-id="{product_id}"]')
    expect(item).to_contain_text("rgb · median", timeout=PATIENCE_MS)
    with httpx.Client(base_url=visit.base, auth=visit.credentials, timeout=60) as api:
        listed = api.get("/product/list", params={"project_id": village, "kind": "composite"}).json()
    (record,) = listed["products"]
    coverage = record["details"]["coverage"]
    expect(item).to_contain_text(f"{start} {DASH} {end}")
    expect(item).to_contain_text(f"{record['details']['scenes']} scenes")
    observed = f"{round(coverage['observed_fraction'] * 1000) / 10:g}% observed"
    counts = f"{coverage['min_count']}{DASH}{coverage['max_count']} per pixel"
    expect(item).to_contain_text(f"{observed}, {counts}")

    # Switched on, its tiles come from /product/tile: imagery, not a blank picture.
    item.locator("input[type=checkbox]").check()
    wait_for_tiles(page)
    tiles = visit.responses_to(f"/product/tile/{village}/{product_id.replace(':', '%3A')}/")
    assert tiles and {(t.status, t.headers["content-type"]) for t in tiles} == {(200, "image/png")}
    drawn = [decode_png(t.body()) for t in tiles]
    opaque = [pixels[:3, pixels[3] == 255] for pixels in drawn]
    assert sum(rgb.shape[1] for rgb in opaque) > 1000, "no tile drew the composite"
    assert max(rgb.std() for rgb in opaque if rgb.size) > 5  # imagery, not one flat colour
    expect(page.locator(".legend")).to_have_count(0)  # an RGB composite has no colormap
    visit.shoot("viewer-composite")

    # A period that ends before it starts is refused, in words, and starts nothing.
    runs = page.locator("#proc-table tbody tr")
    expect(runs).to_have_count(1)
    page.locator("#new-composite summary").click()
    form = page.locator("#composite-form")
    expect(form.locator("[name=start_date]")).to_have_value(start)  # the project's dates
    expect(form.locator("[name=end_date]")).to_have_value(end)
    form.locator("[name=start_date]").fill(end)
    form.locator("[name=end_date]").fill(start)
    form.locator("[name=product]").select_option("ndvi")
    form.locator("[name=method]").select_option("max_ndvi")
    form.get_by_role("button", name="Make composite").click()
    error = page.locator("#error")
    expect(error).to_contain_text("POST task/run failed (422)")
    expect(error).to_contain_text("end_date is before start_date")
    expect(runs).to_have_count(1)
    visit.shoot("viewer-composite-refused")


def test_an_index_composite_switched_on_shows_its_legend(visit: Visit, stack: Any) -> None:
    from sputnik.models import ProjectModel
    from sputnik.tasks import runner
    from sputnik_tools.local import demo

    # An NDVI composite of the demo's village, started as the composite form would start it.
    assert visit.credentials is not None
    login = visit.credentials[0]
    village = demo.load_projects(login)[2]
    owner = str(ProjectModel.get(village).owner)
    params = {**demo.DEMO_COMPOSITE, "product": "ndvi"}
    runner.run_task(owner, login, "s2_composite", "ndvi composite", village, params)
    page = visit.page
    page.reload()
    page.locator("#project-list button", has_text="Pannonian village").click()
    start, end = params["start_date"], params["end_date"]
    product_id = f"composite:ndvi:median:{start}:{end}"
    item = page.locator(f'#composite-list li[data-product-id="{product_id}"]')
    expect(item).to_contain_text("ndvi · median", timeout=PATIENCE_MS)
    legend = page.locator(f'.legend[data-product-id="{product_id}"]')
    expect(legend).to_have_count(0)

    # Switched on: its tiles, and the legend of NDVI's colormap, as /product/legend gives it.
    item.locator("input[type=checkbox]").check()
    with httpx.Client(base_url=visit.base, auth=visit.credentials, timeout=60) as api:
        stops = api.get("/product/legend", params={"index": "ndvi"}).json()
    expect(legend).to_have_attribute("data-colormap", stops["colormap_name"])
    expect(legend).to_contain_text(f"ndvi · median {start} {DASH} {end}")
    low, high = stops["rescale"]
    expect(legend.locator(".legend-ends")).to_have_text(f"{low:g}{(low + high) / 2:g}{high:g}")
    wait_for_tiles(page)
    tiles = visit.responses_to(f"/product/tile/{village}/{product_id.replace(':', '%3A')}/")
    assert tiles and {(t.status, t.headers["content-type"]) for t in tiles} == {(200, "image/png")}
    visit.shoot("viewer-composite-legend")

    # Switched off, the legend goes with the layer.
    item.locator("input[type=checkbox]").uncheck()
    expect(legend).to_have_count(0)
    expect(page.locator("#error")).to_be_hidden()
