"""The search page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright, against
``graphhash serve`` running as its own process on 127.0.0.1; and ``dvc plots show``'s page, offline.

The browser is the system's: Playwright's own browser downloads are not used. ``.ci/run`` installs it; without
it the tests skip, saying so. The screenshot is saved under ``.artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx2
import pytest
from conftest import REPO, run_in, serving

from graphhash.files.codes import read_codes
from graphhash.retrieval.retriever import Retriever

CHROMIUM = os.environ.get("GRAPHHASH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install chromium (.ci/run does), or set GRAPHHASH_CHROMIUM"
)
ARTIFACTS = REPO / ".artifacts"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def server(search_run) -> Iterator[str]:
    """``graphhash serve`` on a free port of 127.0.0.1, stopped after the module."""
    with serving(search_run) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(server)
        tab.wait_for_selector("body[data-ready='1']")
        yield tab
        browser.close()


def grid_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results .cell", "cells => cells.map(c => c.dataset.id)")


def test_uploading_an_image_shows_the_apis_top_k(page, server, search_run, tmp_path):
    retriever = Retriever.from_run(search_run)
    item = read_codes(search_run / "data" / "codes" / "nrdh-gcn" / "nrdh-gcn-24-image.h5").query_ids[0]
    image = tmp_path / "query.png"
    retriever.image(item).resize((64, 64)).save(image)
    page.fill("#k", "12")
    page.set_input_files("#upload", str(image))
    page.wait_for_function("document.querySelectorAll('#results .cell').length === 12")
    api = httpx2.post(f"{server}/api/search?k=12", content=image.read_bytes(), headers={"Content-Type": "image/png"})
    assert grid_ids(page) == [hit["id"] for hit in api.json()["hits"]]
    assert "nrdh-gcn, 24 bits, flat index of 180 items" in page.inner_text("#run")
    assert page.eval_on_selector("#query-image", "img => img.naturalWidth") > 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-page.png"), full_page=True)


def test_clicking_a_database_image_searches_it_with_relevance_marks(page, server):
    page.fill("#k", "8")
    first = page.eval_on_selector("#browse .cell", "c => c.dataset.id")
    page.click("#browse .cell")
    page.wait_for_function(f"document.querySelector('#query-caption').textContent.includes('{first}')")
    page.wait_for_function("document.querySelectorAll('#results .cell').length === 8")
    api = httpx2.post(f"{server}/api/search", json={"id": first, "k": 8}).json()
    assert grid_ids(page) == [hit["id"] for hit in api["hits"]]
    marks = page.eval_on_selector_all("#results .cell", "cells => cells.map(c => c.className)")
    assert marks == [f"cell {'relevant' if hit['relevant'] else 'irrelevant'}" for hit in api["hits"]]
    assert grid_ids(page)[0] == first  # a database item is its own nearest item


def test_paging_typing_an_id_and_a_bad_upload(page, server, tmp_path):
    before = page.eval_on_selector_all("#browse .cell", "cells => cells.map(c => c.dataset.id)")
    page.click("#next")
    page.wait_for_function(f"document.querySelector('#browse .cell').dataset.id !== '{before[0]}'")
    assert "items 49\u201396 of 180" in page.inner_text("#page-info")  # an en dash
    page.fill("#query-id", "digits/not-there")
    page.press("#query-id", "Enter")
    page.wait_for_selector("#status.error")
    assert "not a query or database item" in page.inner_text("#status")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    page.set_input_files("#upload", str(bad))
    page.wait_for_function("document.querySelector('#status').textContent.includes('cannot decode image')")
    assert httpx2.get(f"{server}/api/info").status_code == 200  # still serving


def test_the_page_adds_an_image_when_the_server_allows_writes(page, search_run, tmp_path):
    """Started with --allow-writes, the page shows "Add to the database": an image chosen there joins the database
    (the last page of the browser shows it, its thumbnail drawn) and is found by a search; the page of a server
    started without it shows no such control."""
    from PIL import Image

    assert page.locator("#add-form").is_hidden()
    run = tmp_path / "run"
    shutil.copytree(search_run, run, symlinks=True)
    image = tmp_path / "added.png"
    Image.new("RGB", (40, 40), "orange").save(image)
    with serving(run, "--allow-writes") as url:
        tab = page.context.browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(url)
        tab.wait_for_selector("body[data-ready='1']")
        tab.set_input_files("#add-file", str(image))
        tab.wait_for_function("document.querySelector('#status').textContent.startsWith('added ')")
        assert "181 items" in tab.inner_text("#run") and "the database holds 181 items" in tab.inner_text("#status")
        [added] = httpx2.get(f"{url}/api/items?offset=180&limit=1").json()["items"]
        tab.wait_for_function(f"[...document.querySelectorAll('#browse .cell')].some(c => c.dataset.id === "
                              f"'{added['id']}')")  # fmt: skip
        cell = tab.locator(f"#browse .cell[data-id='{added['id']}'] img")
        tab.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=cell.element_handle())
        cell.click()
        tab.wait_for_function(f"JSON.parse(document.querySelector('#results').dataset.ids || '[]').includes("
                              f"'{added['id']}')")  # fmt: skip
        tab.close()


def test_dvc_plots_show_draws_every_chart_with_the_network_cut_off(search_run, page):
    """`graphhash plots` writes the chart library and runs `dvc plots show`: the page draws every chart while the
    browser (the module's, in a tab of its own) may fetch nothing but files; before the library exists, plain `dvc
    plots show`'s page says what to run."""
    library = search_run / ".dvc" / "plots" / "vega.js"
    assert not library.exists()
    run_in(search_run, "dvc", "plots", "show")
    page_file = search_run / "dvc_plots" / "index.html"
    charts = page_file.read_text().count("vegaEmbed('#")
    assert charts >= 6  # three curves at two code lengths, and the loss plots
    run_in(search_run, "graphhash", "plots")
    assert library.is_file()
    asked: list[str] = []

    def offline(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    tab = page.context.browser.new_page()  # a context of its own, in the module's browser
    tab.route("**/*", offline)
    tab.goto(page_file.as_uri())
    drawn = ".vega-embed canvas, .vega-embed svg.marks"
    tab.wait_for_function(f"document.querySelectorAll('{drawn}').length >= {charts}", timeout=30_000)
    assert tab.query_selector("#missing") is None
    library.unlink()  # without the library: one line saying what to run, no chart, still nothing fetched
    tab.goto(page_file.as_uri())
    assert "run graphhash plots" in tab.inner_text("#missing")
    assert tab.eval_on_selector_all(drawn, "found => found.length") == 0
    tab.close()
    assert asked == []
