"""The static site in a real browser: the index links every notebook, and each page shows its title and figures."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("nbconvert", reason="nbconvert is missing: pip install -e '.[dev]'")

from vae_lab.tools.series import series  # noqa: E402
from vae_lab.tools.site import build_site  # noqa: E402


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def site_url(tmp_path):
    """The site built into a temporary folder and served on 127.0.0.1 (random port) from a thread; always shut down."""
    index = build_site(out_dir=tmp_path / "site")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(index.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_index_links_every_notebook_and_each_page_shows_its_title_and_figures(site_url, page, screenshots):
    page.goto(site_url + "index.html")
    page.screenshot(path=screenshots / "site_index.png", full_page=True)
    links = page.locator("main ol > li a")
    hrefs = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    titles = links.all_inner_texts()
    assert hrefs == [notebook.with_suffix(".html").name for notebook in series()], "every numbered notebook, in order"

    for href, title in zip(hrefs, titles):
        page.goto(site_url + "index.html")
        page.get_by_role("link", name=title, exact=True).click()
        page.wait_for_load_state("load")
        assert page.url == site_url + href
        assert page.title() == title
        assert page.locator("h1").first.inner_text().strip() == title, f"{href} shows its title"
        figures = page.locator('img[src^="data:image/"]')
        widths = figures.evaluate_all("images => images.map(image => image.complete ? image.naturalWidth : 0)")
        assert widths and all(width > 0 for width in widths), f"{href}: every embedded figure decodes ({widths})"
        figures.first.evaluate("figure => figure.scrollIntoView({block: 'center'})")
        page.screenshot(path=screenshots / f"site_{href.removesuffix('.html')}.png")
