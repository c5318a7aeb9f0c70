"""The course site (Jupyter Book, book/) in a real browser: the index lists every lesson in order with its maths
rendered; a lesson shows its maths, its stored figures, the note on where its widgets run live, and a Colab button
for its student edition; the results table and the search work with no network beyond this machine.
"""
from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vae_lab.lessons.setup import colab_url
from vae_lab.tools.series import series

from .conftest import ROOT

pytestmark = pytest.mark.browser
pytest.importorskip("jupyter_book", reason="jupyter-book is missing: pip install -e '.[site]' to build the site")

JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
LESSON = ROOT / "notebooks" / "09_beta_vae.ipynb"  # maths, stored figures and widgets on one page
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The book built once, as `make site` builds it, into a temporary folder; its HTML folder."""
    out = tmp_path_factory.mktemp("book")
    subprocess.run([str(JUPYTER_BOOK), "build", "book", "--path-output", str(out), "--quiet"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def site_url(site):
    """The built site served on 127.0.0.1 (random port) from a thread; always shut down."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def assert_maths_rendered(page, where: str) -> None:
    """MathJax (served by the site itself) has typeset the page, and no TeX source is left in its text."""
    page.wait_for_selector("mjx-container", timeout=20_000)
    prose = "\n".join(page.locator("main p, main li").all_inner_texts())
    assert "\\mathcal" not in prose and "$" not in prose, f"{where} shows raw TeX"


def has_widgets(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(WIDGET_VIEW in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))


def test_the_index_lists_every_lesson_in_order_with_its_maths_rendered(site_url, page, screenshots):
    page.goto(site_url + "index.html")
    page.wait_for_url("**/intro.html")
    assert_maths_rendered(page, "the index")
    page.screenshot(path=screenshots / "site_index.png", full_page=True)
    sidebar = page.locator("nav.bd-docs-nav ul.bd-sidenav:not(.bd-sidenav__home-link) > li > a")
    hrefs = sidebar.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    lessons = [f"notebooks/{notebook.with_suffix('.html').name}" for notebook in series()]
    assert hrefs == lessons + ["results.html"], "every numbered lesson in order, then the results"


def test_a_lesson_shows_its_maths_figures_widget_note_and_student_colab_button(site_url, page, screenshots):
    page.goto(site_url + "intro.html")
    title = page.locator("nav.bd-docs-nav a", has_text=LESSON.name[:2] + " ·")
    title.click()
    page.wait_for_url(f"**/notebooks/{LESSON.stem}.html")
    assert_maths_rendered(page, LESSON.name)
    figures = page.locator(".cell_output img")
    figures.last.scroll_into_view_if_needed()
    widths = figures.evaluate_all("images => images.map(image => image.complete ? image.naturalWidth : 0)")
    assert widths and all(width > 0 for width in widths), f"every stored figure loads ({widths})"
    assert page.locator(".widgets-run-live").inner_text().count("make lab") == 1
    colab = page.locator(".dropdown-launch-buttons a")
    assert colab.get_attribute("href") == colab_url(f"notebooks/student/{LESSON.name}")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=screenshots / f"site_{LESSON.stem}.png")


def test_exactly_the_lessons_with_widgets_carry_the_note(site):
    with_note = {notebook.name for notebook in series()
                 if "widgets-run-live" in (site / "notebooks" / notebook.with_suffix(".html").name).read_text()}
    assert with_note == {notebook.name for notebook in series() if has_widgets(notebook)}
    assert with_note, "some lessons have widgets"


def test_the_results_table_and_the_search_work_offline(site_url, page):
    page.goto(site_url + "results.html")
    models = page.locator("main table tbody tr td:first-child").all_inner_texts()
    assert "vae" in models and "conv_vae" in models
    page.goto(site_url + "search.html?q=reparameterization")
    found = page.locator("#search-results ul.search li a").first
    found.wait_for(timeout=20_000)
    assert page.locator("#search-results ul.search li a[href*='02_reparameterization']").count() >= 1
