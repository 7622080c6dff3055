"""The search page in a real browser: Debian's Chromium, driven by Playwright.

Served by ``imgsearch serve`` (over the indexed samples, a numpy index) and by the Function
app's own functions (over blobs in Azurite), it must show the right image first for a typed
query, search by a dropped file, offer "more like this", and show each state (loading, empty
index, no results, an error from the service) as a sentence, never a stack trace.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it):
Playwright's own browser download is not reachable here.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from indexer.entrypoints import blob_events as handlers
from indexer.entrypoints import local_host
from indexer.indexing.failures import BlobFailureLog
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.services import build_services
from indexer.settings import Settings

CHROMIUM = Path(os.environ.get("IMGSEARCH_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "search-page.png"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    # The page's Content-Security-Policy forbids eval, which Playwright's waits use; the test
    # bypasses it (test_the_page_is_served_with_a_strict_content_security_policy checks it).
    context = browser.new_context(viewport={"width": 1100, "height": 800}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


def served(run_asgi, settings: Settings, **services_options) -> str:
    services = build_services(settings, storage=False, **services_options)
    return run_asgi(local_host.create_app(services))


@pytest.fixture
def samples_page(indexed_samples, run_asgi) -> str:
    return served(run_asgi, Settings(IMGSEARCH_DATA_DIR=str(indexed_samples.data_dir)))


def result_names(page) -> list[str]:
    return page.locator(".card .name").all_inner_texts()


def search_for(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    page.wait_for_function("document.getElementById('results').getAttribute('aria-busy') === 'false'")


def test_a_typed_query_shows_the_right_image_first_with_its_thumbnail(page, samples_page, tmp_path):
    page.goto(samples_page + "/")
    page.wait_for_function("document.getElementById('about').textContent.includes('images indexed')")
    assert "34 images indexed" in page.inner_text("#about")

    search_for(page, "a cat")

    assert result_names(page)[0] == "cat.jpg"
    assert len(result_names(page)) == 12  # the default number of results
    first = page.locator(".card img").first
    first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())
    assert "12 results" in page.inner_text("#status")
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get("IMGSEARCH_UPDATE_SCREENSHOT"):  # refreshes the README's picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)


def drop_file(page, path: Path) -> None:
    """What dropping a file from the desktop does: a ``drop`` event carrying the file."""
    page.evaluate(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            document.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )


def test_a_dropped_image_finds_itself_and_more_like_this_leaves_it_out(page, samples_page, samples_dir):
    page.goto(samples_page + "/")
    drop_file(page, samples_dir / "dog.jpg")
    page.wait_for_function("document.getElementById('status').textContent.includes('results for images like dog.jpg')")
    assert result_names(page)[0] == "dog.jpg"

    page.get_by_role("button", name="More like dog.jpg").click()
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('12 results for images like dog.jpg')"
    )
    names = result_names(page)
    assert "dog.jpg" not in names and len(names) == 12  # similar images, the example itself left out


def test_details_show_the_metadata_fields(page, samples_page):
    page.goto(samples_page + "/")
    search_for(page, "a red double-decker bus")
    page.get_by_role("button", name="Details of bus.jpg").click()
    dialog = page.locator("dialog#detail")
    assert dialog.is_visible()
    text = dialog.inner_text()
    assert "content type" in text and "image/jpeg" in text and "width" in text and OFFLINE_MULTILINGUAL in text
    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_filters_and_the_threshold_narrow_the_results(page, samples_page):
    page.goto(samples_page + "/")
    page.wait_for_selector("#filters input[data-field='file_name']", state="attached")
    page.click("summary")
    page.fill("#filters input[data-field='file_name']", "zebra.jpg")
    search_for(page, "a cat")
    assert result_names(page) == ["zebra.jpg"]
    assert page.inner_text("#status").startswith("1 result for “a cat”.")

    page.fill("#filters input[data-field='file_name']", "")
    page.check("#use-threshold")
    page.evaluate(
        "() => { const r = document.getElementById('threshold'); r.value = '0.99'; "
        "r.dispatchEvent(new Event('input')); }"
    )
    search_for(page, "a cat")
    assert result_names(page) == []
    assert "No results for “a cat” at or above the score 0.99." in page.inner_text("#status")


def test_on_a_phone_the_page_fits_the_screen_and_works_from_the_keyboard(browser, samples_page):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
    phone = context.new_page()
    try:
        phone.goto(samples_page + "/")
        phone.keyboard.type("a zebra")  # the query box has the focus on arrival
        phone.keyboard.press("Enter")
        phone.wait_for_function("document.getElementById('results').getAttribute('aria-busy') === 'false'")
        assert result_names(phone)[0] == "zebra.jpg"
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    finally:
        context.close()


def test_the_page_is_served_with_a_strict_content_security_policy(page, samples_page):
    response = page.request.get(samples_page + "/")
    policy = response.headers["content-security-policy"]
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "http" not in response.text().split("<script>")[1]  # no script or style from elsewhere


def test_an_empty_index_says_so(page, run_asgi, tmp_path):
    settings = Settings(IMGSEARCH_DATA_DIR=str(tmp_path))
    build_services(settings, storage=False).backend.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    page.goto(served(run_asgi, settings) + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('The index is empty')")
    assert "0 images indexed" in page.inner_text("#about")


def test_a_search_service_that_is_down_shows_its_message_not_a_stack_trace(page, run_asgi, tmp_path):
    settings = Settings(SEARCH_ENDPOINT="http://127.0.0.1:9", SEARCH_KEY="k", IMGSEARCH_DATA_DIR=str(tmp_path))
    page.goto(served(run_asgi, settings) + "/")
    page.wait_for_function("document.getElementById('status').classList.contains('error')", timeout=60_000)
    text = page.inner_text("#status")
    assert text.startswith("Error: ") and "does not answer" in text and "SEARCH_ENDPOINT" in text
    assert "Traceback" not in page.content()


# --- the same page from the Function app's own functions -----------------------------------


def function_app_asgi(module, key: str):
    """A stand-in for the Functions host's HTTP routing: ``/api/<route>`` to the function of
    that route, with the function key checked as the host checks it (``?code=``)."""
    import azure.functions as func
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    functions = {f.get_function_name(): f for f in module.app.get_functions()}

    async def route(request):
        name = request.path_params["name"]
        if request.query_params.get("code") != key:
            return Response(status_code=401)
        call = functions[name].get_user_function()
        params = dict(request.query_params.items())
        answer = call(
            func.HttpRequest(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                params=params,
                body=await request.body(),
            )
        )
        return Response(
            answer.get_body(), status_code=answer.status_code, headers=dict(answer.headers), media_type=answer.mimetype
        )

    return Starlette(routes=[Route("/api/{name}", route, methods=["GET", "POST"])])


@pytest.fixture
def function_app_page(
    azurite, blob_container, blob_service, vision_server, tmp_path, run_asgi, samples_dir, worker_services
):
    from indexer.backends.numpy_index import NumpyIndex

    index = NumpyIndex(tmp_path / "index", "images")
    index.ensure_index(load_schema(OFFLINE_MULTILINGUAL))
    settings = Settings(
        IMAGES_STORAGE=azurite.connection_string,
        IMAGES_CONTAINER=blob_container.container_name,
        VISION_ENDPOINT=vision_server.url,
        VISION_KEY=vision_server.key or "",
        VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL,
    )
    failures = BlobFailureLog(blob_service.get_container_client(f"{blob_container.container_name}-failures"))
    services = build_services(settings, backend=index, failures=failures)
    worker_services(services)
    for name in ("cat.jpg", "dog.jpg", "bus.jpg", "coffee.jpg"):
        blob_container.upload_blob(name, (samples_dir / name).read_bytes())
        assert handlers.index_blob(f"{blob_container.container_name}/{name}").status == "indexed"
    spec = importlib.util.spec_from_file_location("function_app_for_the_page", REPO / "functions" / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield run_asgi(function_app_asgi(module, key="page-key"))


def test_the_page_works_from_the_function_apps_route_with_its_key(page, function_app_page):
    page.goto(function_app_page + "/api/page?code=page-key")
    search_for(page, "a cat")
    assert result_names(page)[0] == "cat.jpg"
    thumbnail = page.locator(".card img").first.get_attribute("src")
    assert urlsplit(thumbnail).path == "/api/thumbnail" and "code=page-key" in thumbnail
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=page.locator(".card img").first.element_handle()
    )
    refused = page.request.get(function_app_page + "/api/search?text=a+cat")
    assert refused.status == 401  # without the key, as the Functions host answers
