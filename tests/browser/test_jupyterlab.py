"""JupyterLab in a real browser: notebook 05 top to bottom with its figures; notebooks 07 and 10 top to bottom,
then their sliders moved with the keyboard and a digit button clicked.

The tests share one `jupyter lab` on 127.0.0.1 (random port and token) in a temporary folder holding copies of the
notebooks with small settings, with temporary config, runtime, data, settings and workspace folders, so nothing in the
repository or the home folder is touched. Teardown always stops the server and its kernels and checks that none
survives.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill.parameterize
import pytest
from papermill.iorw import load_notebook_node

from vae_lab.tools.series import quick_parameters, series

from .conftest import ROOT

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="jupyterlab is missing: pip install -e '.[dev]' to run the browser tests")
if not Path("/proc").is_dir():
    pytest.skip("these tests follow the server's processes through /proc (Linux)", allow_module_level=True)

NOTEBOOK = ROOT / "notebooks" / "07_latent_space.ipynb"
NOTEBOOK_10 = ROOT / "notebooks" / "10_conditional_vae.ipynb"  # its own test below also clicks a digit
# One whole-notebook smoke test besides the two widget notebooks: nbval already executes every notebook in full.
SMOKE_NOTEBOOK = ROOT / "notebooks" / "05_generation.ipynb"
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _process_tree(root: int) -> dict[int, str]:
    """``root`` and all its descendants, each with its start time (to tell a reused pid from ours)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields:
            tree[pid] = fields[19]
            todo.extend(children.get(pid, []))
    return tree


def _processes_mentioning(folder: Path) -> list[int]:
    """Processes whose command line names ``folder``: a Jupyter server serving it, or a kernel using its runtime."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(folder).encode() in (entry / "cmdline").read_bytes() and (_stat(int(entry.name)) or "Z")[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int, start: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class LabServer:
    """One `jupyter lab` process serving ``root``; ``family`` collects its processes (the server and its kernels)."""

    process: subprocess.Popen
    port: int
    token: str
    folder: Path
    log: Path
    family: dict[int, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def get(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(path), method=method, data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def kernel_idle(self, notebook: str) -> bool:
        """True once the kernel of ``notebook``'s session has started and is idle (other notebooks' kernels may
        be running too: the tests share one server)."""
        try:
            sessions = self.get("api/sessions")
        except urllib.error.HTTPError as error:
            # jupyter_server answers 500 while a kernel is still starting (its last_activity is not set yet)
            if error.code == 500:
                return False
            raise
        states = [s["kernel"]["execution_state"] for s in sessions if Path(s["path"]).name == notebook]
        return states == ["idle"]

    def survivors(self) -> list[int]:
        return [pid for pid, start in self.family.items() if _alive(pid, start)]

    def stop(self) -> None:
        """SIGTERM the server's process group (it shuts its kernels down), SIGKILL whatever is left, by pid."""
        self.family.update(_process_tree(self.process.pid))
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_lab(folder: Path) -> LabServer:
    """Start `jupyter lab` on 127.0.0.1 serving ``folder``/root, everything else of Jupyter's under ``folder``."""
    root, config = folder / "root", folder / "config"
    root.mkdir(parents=True, exist_ok=True)
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {ANNOUNCEMENTS: True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
           "JUPYTER_DATA_DIR": str(folder / "data"), "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"), "IPYTHONDIR": str(folder / "ipython"),
           "PYTHONUNBUFFERED": "1"}
    port, token, log = _free_port(), secrets.token_hex(24), folder / "jupyter-lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
               "--ServerApp.terminals_enabled=False"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(process, port, token, folder, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.get("api/status")
            return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise TimeoutError(f"jupyter lab did not answer /api/status within 90 s:\n{log.read_text()[-3000:]}")


def assert_stopped(server: LabServer) -> None:
    assert server.process.returncode is not None, "the jupyter lab process is still running"
    assert not server.survivors(), f"processes of the jupyter lab server survived: {server.survivors()}"
    assert not _port_open(server.port), f"port {server.port} still accepts connections"
    assert not _processes_mentioning(server.folder), "a process still uses the server's temporary folders"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab whose root holds copies of the notebooks with the series' quick settings injected after
    their parameters cell, as papermill injects them (nbval runs every notebook in full); always stopped and checked
    afterwards."""
    folder = tmp_path_factory.mktemp("lab")
    (folder / "root").mkdir()
    for notebook in series():
        quick = papermill.parameterize.parameterize_notebook(load_notebook_node(str(notebook)),
                                                             quick_parameters(notebook))
        nbformat.write(quick, folder / "root" / notebook.name)
    server = start_lab(folder)
    try:
        yield server
    finally:
        server.stop()
    assert_stopped(server)


def wait_until(condition, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def sliders(page, description: str):
    """The ipywidgets 8 sliders whose description matches the regular expression ``description`` in full."""
    label = page.locator("label.widget-label", has_text=re.compile(f"^{description}$"))
    return page.locator(".widget-hslider", has=label)


def picture_after(page, caption: str):
    """The widgets.Image right below the Label ``caption``."""
    label = page.locator(".widget-label", has_text=re.compile(f"^{re.escape(caption)}$"))
    return label.locator("xpath=following-sibling::img[1]")


def settled_screenshot(image, different_from: bytes | None = None, timeout: float = 30) -> bytes:
    """A screenshot of ``image`` once it differs from ``different_from`` and two shots 0.5 s apart agree."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        shot = image.screenshot()
        if shot == previous and shot != different_from:
            return shot
        previous = shot
        time.sleep(0.5)
    return previous


def press_and_compare(page, handle, image, key: str, presses: int, before_path: Path, after_path: Path):
    """Screenshot ``image``, press ``key`` on the focused slider ``handle`` ``presses`` times, screenshot again."""
    image.scroll_into_view_if_needed()
    before = settled_screenshot(image)
    before_path.write_bytes(before)
    value = float(handle.get_attribute("aria-valuenow"))
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
    after = settled_screenshot(image, different_from=before)
    after_path.write_bytes(after)
    return value, float(handle.get_attribute("aria-valuenow")), before, after


def run_all_cells(lab, page, notebook: Path, timeout: float = 300) -> list[dict]:
    """Open ``notebook`` in JupyterLab, Run All Cells, wait for the kernel, and check every cell ran cleanly."""
    page.goto(lab.url(f"lab/workspaces/{notebook.stem}/tree/{notebook.name}"))  # a workspace of its own: no tabs of earlier tests
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=90_000)
    wait_until(lambda: lab.kernel_idle(notebook.name), 90, "the kernel to start")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt")  # read as text: JupyterLab hides cells scrolled out of view
    wait_until(lambda: any(re.fullmatch(r"\[(\*|\d+)\]:", p) for p in prompts.all_text_contents()), 15,
               "Run All Cells to start")
    wait_until(lambda: lab.kernel_idle(notebook.name) and "[*]:" not in prompts.all_text_contents(), timeout,
               "Run All Cells to finish")

    code = [c for c in json.loads((lab.folder / "root" / notebook.name).read_text())["cells"] if c["cell_type"] == "code"]
    shown = [f"[{n}]:" for n, c in enumerate(code, 1) if not c["metadata"].get("jupyter", {}).get("source_hidden")]
    numbers = [p for p in prompts.all_text_contents() if p]
    assert numbers == shown, "every cell ran once, in order (a cell with hidden code runs too, without a prompt)"
    assert page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    assert "Error displaying widget" not in page.locator("body").text_content()
    return code


def test_a_whole_notebook_runs_top_to_bottom_with_its_figures(lab, page, screenshots):
    run_all_cells(lab, page, SMOKE_NOTEBOOK)
    stored = sum("image/png" in o.get("data", {}) for c in json.loads(SMOKE_NOTEBOOK.read_text())["cells"]
                 for o in c.get("outputs", []))
    figures = page.locator(".jp-OutputArea-output img")
    assert figures.count() >= stored > 0, "every figure the stored notebook shows is drawn again"
    page.screenshot(path=screenshots / f"jupyterlab_{SMOKE_NOTEBOOK.stem}_after_run_all.png")


def test_run_all_renders_the_widgets_and_the_sliders_redraw(lab, page, screenshots):
    code = run_all_cells(lab, page, NOTEBOOK)
    page_config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert ANNOUNCEMENTS in page_config["disabledExtensions"], "labconfig/page_config.json was not read"
    assert page.locator(".jp-CodeCell", has_text="def linear_interpolation").count() == 1, "the hidden solution is there"
    check = page.locator(".jp-CodeCell", has_text="check_linear_interpolation").last
    assert check.locator(".jp-OutputArea-output", has_text="✅").count() == 1, "the solution ran and passed its check"
    assert page.locator(".Toastify__toast", has_text="Jupyter news").count() == 0, "the announcements plugin is off"
    n_sliders = int(re.search(r"^n_sliders = (\d+)", "\n".join("".join(c["source"]) for c in code), re.M)[1])
    z_sliders = sliders(page, r"z\[\d+\]")
    assert z_sliders.count() == n_sliders, "the explorer shows one slider per ranked dimension"
    assert sliders(page, "t").count() == 1, "the interpolation slider"

    z_sliders.first.evaluate("slider => slider.scrollIntoView({block: 'start'})")
    page.screenshot(path=screenshots / "jupyterlab_06_after_run_all.png")

    handle = z_sliders.first.locator(".noUi-handle")
    key = "ArrowRight" if float(handle.get_attribute("aria-valuenow")) < 2 else "ArrowLeft"
    start, end, before, after = press_and_compare(page, handle, picture_after(page, "decoder(z)"), key, 15,
                                                  screenshots / "jupyterlab_06_explorer_before.png",
                                                  screenshots / "jupyterlab_06_explorer_after.png")
    assert abs(end - start) == pytest.approx(1.5), "15 arrow presses move the slider 15 steps of 0.1"
    assert before != after, "moving a latent slider decodes a different image"

    tops = [picture_after(page, caption).bounding_box()["y"]
            for caption in ("digit A (t = 0)", "decoder(z(t))", "digit B (t = 1)")]
    assert max(tops) - min(tops) < 1, f"the interpolation's three pictures share one row, tops at {tops}"
    t_slider = sliders(page, "t").bounding_box()
    assert t_slider["y"] + t_slider["height"] <= min(tops), "the slider t sits above the pictures"
    handle = sliders(page, "t").locator(".noUi-handle")
    start, end, before, after = press_and_compare(page, handle, picture_after(page, "decoder(z(t))"), "ArrowRight", 10,
                                                  screenshots / "jupyterlab_06_interpolation_before.png",
                                                  screenshots / "jupyterlab_06_interpolation_after.png")
    assert (start, end) == pytest.approx((0.0, 0.5)), "ten arrow presses move t from 0 to 0.5 in steps of 0.05"
    assert before != after, "moving t decodes a different image"


def test_the_conditional_vae_runs_and_a_digit_button_redraws_the_style(lab, page, screenshots):
    run_all_cells(lab, page, NOTEBOOK_10)
    stored = sum("image/png" in o.get("data", {}) for c in json.loads(NOTEBOOK_10.read_text())["cells"]
                 for o in c.get("outputs", []))
    assert page.locator(".jp-OutputArea-output img").count() >= stored > 0, "every stored figure is drawn again"
    picture = picture_after(page, "decoder(z, digit)")
    picture.scroll_into_view_if_needed()
    before = settled_screenshot(picture)
    button = page.locator(".widget-toggle-button", has_text=re.compile("^3$"))
    button.click()
    after = settled_screenshot(picture, different_from=before)
    page.screenshot(path=screenshots / "jupyterlab_09_digit_style_explorer.png")
    assert "mod-active" in button.get_attribute("class"), "the clicked digit is the selected one"
    assert before != after, "picking another digit decodes the same style as that digit"


def test_the_server_stops_cleanly_twice_in_a_row(tmp_path):
    for attempt in range(2):
        server = start_lab(tmp_path / f"server{attempt}")
        try:
            server.get("api/kernels", method="POST")  # a kernel too, so stopping must end it as well
            server.family.update(_process_tree(server.process.pid))
            assert len(server.family) >= 2, "the server and its kernel are visible in /proc"
            assert len(_processes_mentioning(server.folder)) >= 2, "both name the server's temporary folders"
        finally:
            server.stop()
        assert_stopped(server)
