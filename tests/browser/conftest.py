"""Real-browser tests: Debian's Chromium driven by Playwright, talking only to servers on 127.0.0.1.

Every test here is marked ``browser`` and skips when /usr/bin/chromium or the playwright package is missing.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# Every request to another host goes to this dead proxy and fails at once (CDN scripts, fonts, the Colab badge).
# A proxy, unlike page.route, needs no Python callback, so a test may wait with time.sleep without stalling the page.
LOCAL_ONLY = {"server": "http://127.0.0.1:9", "bypass": "127.0.0.1,localhost"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real Chromium through Playwright (skips without one)")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """build/screenshots/ at the repository root, where the browser tests leave pictures for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (Playwright never downloads a browser of its own here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright package is missing: pip install -e '.[dev]' to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                              proxy=LOCAL_ONLY)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page, 1400×1000, whose traffic can only reach this machine."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()
