"""The course site (Jupyter Book, book/, from the site edition) in a real browser: it never shows an answer, a marker
or a link to the complete edition; every page loads with the network blocked; the index lists every lesson in order;
a lesson shows its maths, its stored figures, a picture in place of each widget and one launch target, the student
edition; the results table and long equations stay inside their boxes; the search works.

Set VAE_LAB_SITE to a built site's HTML folder to test that site instead of building one (e.g. a site built from the
complete edition, on which the answer test fails).
"""
from __future__ import annotations

import ast
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vae_lab.lessons.setup import colab_url, repository_url
from vae_lab.tools.series import series
from vae_lab.tools.site_edition import WIDGET_STATE, WIDGET_VIEW, write_site_edition

from .conftest import ROOT

pytestmark = pytest.mark.browser
pytest.importorskip("jupyter_book", reason="jupyter-book is missing: pip install -e '.[site]' to build the site")

JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
SITE_EDITION = ROOT / "build" / "site_edition"  # where book/notebooks points
LESSON = ROOT / "notebooks" / "07_latent_space.ipynb"  # maths, stored figures and widget sliders on one page
SOLUTIONS = ROOT / "vae_lab" / "lessons" / "solutions.py"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
# A link to a notebook of the complete edition: notebooks/NN_*.ipynb on any host, not notebooks/student/.
COMPLETE_EDITION_HREF = re.compile(r"(^|/)notebooks/\d\d_[^/]*\.ipynb")
SHORTEST_ANSWER = 16  # characters: a shorter line ("return z", "loss = bce + kl") says nothing of its own
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 800}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site's HTML folder: VAE_LAB_SITE's, or the book built once as `make site` builds it (the site edition,
    then Jupyter Book with every warning an error) into a temporary folder."""
    if os.environ.get("VAE_LAB_SITE"):
        return Path(os.environ["VAE_LAB_SITE"])
    write_site_edition(SITE_EDITION)
    out = tmp_path_factory.mktemp("book")
    build = subprocess.run([str(JUPYTER_BOOK), "build", "book", "--path-output", str(out), "--all", "-W",
                            "--keep-going"], cwd=ROOT, capture_output=True, text=True)
    warnings = [line for line in build.stdout.splitlines() + build.stderr.splitlines() if "WARNING" in line]
    assert build.returncode == 0 and not warnings, f"the book builds with no warning: {warnings or build.stdout[-2000:]}"
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


@pytest.fixture
def sized_page(browser):
    """A function giving a fresh page of a given viewport whose requests beyond 127.0.0.1 are aborted and recorded,
    with every failed request recorded too; all closed at the end."""
    contexts = []

    def make(viewport: dict) -> tuple:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        failed: list[str] = []

        def only_local(route) -> None:
            if route.request.url.startswith(("http://127.0.0.1:", "data:")):
                route.continue_()
            else:
                failed.append(f"blocked {route.request.url}")
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.on("requestfailed", lambda request: failed.append(f"failed {request.url} ({request.failure})"))
        page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} "
                                                                                        f"{response.url}"))
        return page, failed

    yield make
    for context in contexts:
        context.close()


def pages(site: Path) -> list[str]:
    """Every page of the built site, relative to its folder: the home page, the lessons, running, results (not the
    redirect index.html, nor the index and search pages Sphinx adds)."""
    return sorted(path.relative_to(site).as_posix() for path in [*site.glob("*.html"), *site.glob("notebooks/*.html")]
                  if path.name not in ("index.html", "genindex.html", "search.html"))


def normalised(text: str) -> str:
    return " ".join(text.split())


def prose_fragments(line: str) -> list[str]:
    """The plain-text stretches of a Markdown line (between emphasis, code and maths), as a browser shows them."""
    without_maths = re.sub(r"\$[^$]*\$", "|", line)
    return [normalised(piece) for piece in re.split(r"[*_`|\\]|\[|\]|\(http[^)]*\)", without_maths)
            if len(normalised(piece)) >= SHORTEST_ANSWER]


def between_markers(source: str, begin: str, end: str) -> list[str]:
    """The lines of ``source`` between each ``### BEGIN …`` marker and its ``### END …``."""
    found, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            found.append(line.strip())
    return found


def function_bodies(path: Path) -> list[str]:
    """The lines of every function body in ``path`` (methods included), without their docstrings."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            for statement in body:
                found += [line.strip() for line in lines[statement.lineno - 1:statement.end_lineno]]
    return found


@functools.cache
def reference_answers() -> tuple[set[str], set[str]]:
    """(code lines, prose fragments) a page must not show: every function body of the lessons' solutions and every
    line between the complete edition's solution or hidden-test markers, less the lines its teaching cells show too."""
    code, prose, teaching = set(function_bodies(SOLUTIONS)), set(), []
    for notebook in series():
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            hidden = (between_markers(source, "BEGIN SOLUTION", "END SOLUTION")
                      + between_markers(source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
            if cell["cell_type"] == "markdown":
                prose.update(fragment for line in hidden for fragment in prose_fragments(line))
            else:
                code.update(hidden)
            teaching += [line.strip() for line in source.splitlines() if line.strip() not in hidden]
    shown = normalised("\n".join(teaching))  # what the lessons show outside their answers, code and prose
    return ({line for line in code if len(line) >= SHORTEST_ANSWER and normalised(line) not in shown},
            {fragment for fragment in prose if fragment not in shown})


def widget_views(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(WIDGET_VIEW in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))


def has_widget_controls(notebook: Path) -> bool:
    """True when a widget view of the complete ``notebook`` holds a slider, a button or a text box."""
    state = json.loads(notebook.read_text(encoding="utf-8"))["metadata"].get("widgets", {}).get(WIDGET_STATE, {})
    names = {model["model_name"] for model in state.get("state", {}).values()}
    return widget_views(notebook) > 0 and any(name.endswith(("SliderModel", "ButtonModel", "ButtonsModel",
                                                             "TextModel")) for name in names)


def test_no_page_shows_an_answer_a_marker_or_a_link_to_the_complete_edition(site, site_url, page):
    code, prose = reference_answers()
    assert len(code) > 50 and len(prose) > 20, "the reference answers were found"
    found = []
    for name in pages(site):
        page.goto(site_url + name)
        html = page.content()
        text = normalised(page.evaluate("document.body.textContent"))
        found += [f"{name}: the marker {marker!r}" for marker in MARKERS if marker in html or marker in text]
        found += [f"{name}: the answer line {line!r}" for line in sorted(code) if normalised(line) in text]
        found += [f"{name}: the answer text {fragment!r}" for fragment in sorted(prose) if fragment in text]
        hrefs = page.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        found += [f"{name}: a link to the complete edition {href}" for href in hrefs if COMPLETE_EDITION_HREF.search(href)]
    assert not found, f"{len(found)} answers shown:\n" + "\n".join(found[:40])


def test_every_page_loads_with_no_network_and_no_failed_request(site, site_url, sized_page):
    page, failed = sized_page(WIDE)
    for name in pages(site):
        page.goto(site_url + name, wait_until="networkidle")
        settled(page)
    assert not failed, "every page needs only this machine:\n" + "\n".join(sorted(set(failed))[:20])
    built = "".join((site / name).read_text(encoding="utf-8") for name in pages(site))
    assert WIDGET_STATE not in built and "require.min.js" not in built, "no saved widget state, no widget manager"


def settled(page) -> None:
    """Wait until MathJax has typeset the page and its fonts have loaded, so that leaving it aborts no request."""
    page.evaluate("() => (window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve())"
                  ".then(() => document.fonts.ready).then(() => true)")
    page.wait_for_load_state("networkidle")


def assert_maths_rendered(page, where: str) -> None:
    """MathJax (served by the site itself) has typeset the page, and no TeX source is left in its text."""
    page.wait_for_selector("mjx-container", timeout=20_000)
    prose = "\n".join(page.locator("main p, main li").all_inner_texts())
    assert "\\mathcal" not in prose and "$" not in prose, f"{where} shows raw TeX"


def test_the_index_lists_every_lesson_in_order_with_its_maths_rendered(site_url, page):
    page.goto(site_url + "index.html")
    page.wait_for_url("**/intro.html")
    assert_maths_rendered(page, "the index")
    sidebar = page.locator("nav.bd-docs-nav ul.bd-sidenav:not(.bd-sidenav__home-link) > li > a")
    hrefs = sidebar.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    lessons = [f"notebooks/{notebook.with_suffix('.html').name}" for notebook in series()]
    assert hrefs == lessons + ["running.html", "results.html"], "every lesson in order, then running, then results"
    times = page.locator("main table.lesson-times tbody tr").count()
    assert times == len(json.loads((ROOT / "book" / "lesson_times.json").read_text())["seconds"]) > 0


def test_a_lesson_shows_maths_figures_widget_pictures_and_one_launch_target(site, site_url, page):
    page.goto(site_url + "intro.html")
    page.locator("nav.bd-docs-nav a", has_text=LESSON.name[:2] + " ·").click()
    page.wait_for_url(f"**/notebooks/{LESSON.stem}.html")
    assert_maths_rendered(page, LESSON.name)
    figures = page.locator(".cell_output img")
    figures.last.scroll_into_view_if_needed()
    widths = figures.evaluate_all("images => images.map(image => image.complete ? image.naturalWidth : 0)")
    assert widths and all(width > 0 for width in widths), f"every stored figure and widget picture loads ({widths})"
    assert page.locator(".cell_output .widget-snapshot").count() == widget_views(LESSON) > 0
    assert page.locator(".widgets-run-live").inner_text().count("make lab") == 1
    if LESSON.name in json.loads((ROOT / "book" / "lesson_times.json").read_text())["seconds"]:
        assert "Running this lesson top to bottom took" in page.locator("p.lesson-time").inner_text()
    launch = page.locator(".dropdown-launch-buttons a").evaluate_all("links => links.map(a => a.href)")
    assert launch == [colab_url(f"notebooks/student/{LESSON.name}")], "one launch target: the student edition"
    assert "colab-badge" not in page.content(), "no Colab badge in the page body"
    assert "# Setup: in Colab" not in page.evaluate("document.body.textContent"), "the setup cell's input is hidden"
    download = page.locator(".dropdown-download-buttons a[href$='.ipynb']").get_attribute("href")
    served = page.request.get(page.url.rsplit("/", 1)[0] + "/" + download).body()
    assert served == (ROOT / "notebooks" / "student" / LESSON.name).read_bytes(), "the download is the student notebook"


def test_each_widget_has_its_picture_and_exactly_the_pages_with_controls_carry_the_note(site):
    with_note, pictures = set(), {}
    for notebook in series():
        built = (site / "notebooks" / notebook.with_suffix(".html").name).read_text(encoding="utf-8")
        pictures[notebook.name] = (built.count("class='widget-snapshot"), widget_views(notebook))
        if "widgets-run-live" in built:
            with_note.add(notebook.name)
    assert all(shown == stored for shown, stored in pictures.values()), f"a picture per widget: {pictures}"
    assert with_note == {notebook.name for notebook in series() if has_widget_controls(notebook)} != set()


def test_the_header_has_repository_and_issue_buttons_a_logo_and_a_favicon(site_url, page):
    page.goto(site_url + "intro.html")
    hrefs = page.locator(".article-header-buttons a").evaluate_all("links => links.map(a => a.href)")
    assert repository_url() in hrefs, f"a repository button ({hrefs})"
    assert any(href.startswith(f"{repository_url()}/issues/new") for href in hrefs), f"an issue button ({hrefs})"
    logo = page.locator("img.logo__image").first
    assert logo.evaluate("image => image.complete && image.naturalWidth > 0"), "the logo loads"
    favicon = page.locator("link[rel='icon']").get_attribute("href")
    assert page.request.get(page.url.rsplit("/", 1)[0] + "/" + favicon).ok


def test_tables_and_equations_stay_inside_their_boxes_at_1280_and_375_px(site_url, sized_page, screenshots):
    for viewport in (WIDE, NARROW):
        page, _ = sized_page(viewport)
        for name in ("intro.html", "notebooks/03_loss.html", "notebooks/06_your_own_vae.html",
                     "notebooks/07_latent_space.html", "results.html"):
            page.goto(site_url + name, wait_until="networkidle")
            settled(page)
            overflowing = page.evaluate("""() => {
                const article = document.querySelector('main article') || document.querySelector('main');
                const right = article.getBoundingClientRect().right + 1;
                const boxes = [...article.querySelectorAll('table, mjx-container[display="true"]')];
                return boxes.filter(box => box.getBoundingClientRect().right > right
                                    && getComputedStyle(box.closest('table, div.math, mjx-container') || box)
                                       .overflowX === 'visible').map(box => box.outerHTML.slice(0, 80));
            }""")
            assert not overflowing, f"{name} at {viewport['width']} px: cut off {overflowing}"
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], \
                f"{name} scrolls sideways at {viewport['width']} px"
            page.screenshot(path=screenshots / f"site_{Path(name).stem}_{viewport['width']}.png", full_page=False)


def test_the_results_page_has_its_figures_table_and_literature_and_the_search_works_offline(site_url, page):
    page.goto(site_url + "results.html")
    models = page.locator("main table tbody tr td:first-child").all_inner_texts()
    assert "vae" in models and "conv_vae" in models
    figures = page.locator("main img").evaluate_all("images => images.map(image => image.naturalWidth)")
    assert len(figures) >= 3 and all(figures), "the three figures of docs/ load"
    assert "Burda" in page.locator("main").inner_text(), "the comparison with the literature"
    page.goto(site_url + "search.html?q=reparameterization")
    page.locator("#search-results ul.search li a").first.wait_for(timeout=20_000)
    assert page.locator("#search-results ul.search li a[href*='02_reparameterization']").count() >= 1
