"""vae_lab.tools.notebook_header: one template for every notebook's badge and setup cell, pinned to the release."""
import subprocess
from pathlib import Path

import nbformat
import pytest

from vae_lab.lessons.setup import colab_url, release, repository_url
from vae_lab.tools.notebook_header import (BADGE_IMAGE, README, at_release, badge, setup_cell, stale_headers,
                                           with_header, write_headers)
from vae_lab.tools.series import NotebookFailed, series

ROOT = Path(__file__).resolve().parents[2]
OLD_LINK = "https://colab.research.google.com/github/old-owner/old-name/blob/main/notebooks/05_generation.ipynb"


def old_notebook() -> nbformat.NotebookNode:
    """A notebook as it was before the tool: badge and links at main, a setup cell that installs whatever main is."""
    title = nbformat.v4.new_markdown_cell(f"# 05 · Generation\n\nOne sentence.\n\n{BADGE_IMAGE}({OLD_LINK})")
    setup = nbformat.v4.new_code_cell('REPO = "https://github.com/old-owner/old-name"', execution_count=1)
    imports = nbformat.v4.new_code_cell("import torch", metadata={"tags": ["parameters"]}, execution_count=2)
    imports.outputs = [nbformat.v4.new_output("stream", text="done\n")]
    closing = nbformat.v4.new_markdown_cell(f"The [complete edition]({OLD_LINK}); [06](06_your_own_vae.ipynb).")
    return nbformat.v4.new_notebook(cells=[title, setup, imports, closing])


def test_the_header_pins_the_badge_the_setup_cell_and_every_colab_link_to_the_release():
    notebook = with_header(old_notebook(), "notebooks/05_generation.ipynb")
    title, setup, imports, closing = notebook.cells
    assert title.source == f"# 05 · Generation\n\nOne sentence.\n\n{badge('notebooks/05_generation.ipynb')}"
    assert f"/blob/{release()}/notebooks/05_generation.ipynb" in badge("notebooks/05_generation.ipynb")
    assert setup.source == setup_cell() and setup.execution_count == 1
    assert f'REPO, RELEASE = "{repository_url()}", "{release()}"' in setup_cell()
    assert 'f"vae-lab @ git+{REPO}@{RELEASE}"' in setup_cell()
    assert imports.source == "import torch" and imports.metadata == {"tags": ["parameters"]} and imports.outputs
    assert closing.source == (f"The [complete edition]({colab_url('notebooks/05_generation.ipynb')}); "
                              "[06](06_your_own_vae.ipynb).")
    assert with_header(nbformat.from_dict(notebook), "notebooks/05_generation.ipynb") == notebook, "idempotent"


def test_a_notebook_without_the_badge_line_is_refused_in_one_sentence():
    notebook = old_notebook()
    notebook.cells[0].source = "# 05 · Generation"
    with pytest.raises(ValueError, match="must be the markdown title cell holding the line"):
        with_header(notebook, "notebooks/05_generation.ipynb")


@pytest.mark.parametrize("repository, version, match", [
    ('https://github.com/some-owner/some-lab"; import os; print("ran"); "', "0.1.0",
     r"Repository is .* not a GitHub URL such as https://github.com/OWNER/NAME"),
    ("https://gitlab.com/some-owner/some-lab", "0.1.0", "not a GitHub URL"),
    ("https://github.com/some-owner/some-lab", '0.1.0"\nimport os', r"gives the tag .* which is not a version tag"),
], ids=["code-in-the-url", "not-github", "code-in-the-version"])
def test_pyproject_values_that_would_be_written_into_every_notebook_are_checked(monkeypatch, repository, version, match):
    """The URL and the release go into every notebook's setup cell, which Colab runs: a hostile pyproject is refused."""
    monkeypatch.setattr("vae_lab.tools.notebook_header.repository_url", lambda: repository)
    monkeypatch.setattr("vae_lab.tools.notebook_header.release", lambda: f"v{version}")
    with pytest.raises(ValueError, match=match):
        with_header(old_notebook(), "notebooks/05_generation.ipynb")


def test_notebooks_without_a_title_or_setup_cell_and_files_that_are_no_notebooks_are_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="the first cell must be the markdown title cell"):
        with_header(nbformat.v4.new_notebook(cells=[]), "notebooks/05_generation.ipynb")
    title_only = old_notebook()
    title_only.cells = title_only.cells[:1]
    with pytest.raises(ValueError, match="has no code cell to hold the setup cell"):
        with_header(title_only, "notebooks/05_generation.ipynb")
    (tmp_path / "05_generation.ipynb").write_text('{"cells": "none"}')
    with pytest.raises(NotebookFailed, match=r"05_generation.ipynb is not a valid Jupyter notebook \("):
        stale_headers([tmp_path / "05_generation.ipynb"])


def test_write_headers_rewrites_only_what_is_stale(tmp_path):
    stale, fresh, readme = tmp_path / "05_generation.ipynb", tmp_path / "06_your_own_vae.ipynb", tmp_path / "README.md"
    nbformat.write(old_notebook(), stale)
    nbformat.write(with_header(old_notebook(), "notebooks/06_your_own_vae.ipynb"), fresh)
    readme.write_text(f"[![Open the complete edition in Colab](badge.svg)]({OLD_LINK})\n")
    assert stale_headers([stale, fresh]) == [stale]
    assert write_headers([stale, fresh], readme) == [stale, readme]
    assert stale_headers([stale, fresh]) == [] and write_headers([stale, fresh], readme) == []
    assert readme.read_text() == f"[![Open the complete edition in Colab](badge.svg)]({colab_url('notebooks/05_generation.ipynb')})\n"


def test_the_release_and_the_repository_are_pyprojects():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert release() == f"v{project['version']}", "reinstall (make setup): the installed metadata is stale"
    assert repository_url() == project["urls"]["Repository"]


@pytest.mark.parametrize("path", series(), ids=lambda p: p.stem)
def test_every_notebook_header_is_what_the_tool_writes(path):
    assert stale_headers([path]) == [], "run `make headers` (python -m vae_lab.tools.notebook_header)"


def test_the_readme_colab_links_open_the_release():
    assert at_release(README.read_text()) == README.read_text(), "run `make headers` to point README at the release"


def test_no_other_file_hard_codes_the_repository_url():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    written_or_checked = {"pyproject.toml", "README.md"}  # the one place, and the README the tool writes
    naming = [name for name in tracked if (ROOT / name).is_file() and not name.startswith("notebooks/")
              and name not in written_or_checked
              and repository_url().removeprefix("https://") in (ROOT / name).read_text(errors="ignore")]
    assert naming == [], "read the URL from pyproject (vae_lab.lessons.setup.repository_url) instead"
