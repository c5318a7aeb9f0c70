"""The lab as a static website: each numbered notebook as an HTML page with its stored outputs, and an index.

Run ``python -m vae_lab.site build/site`` and open ``build/site/index.html``.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:  # both come with the dev extra
    import nbformat
    from nbconvert import HTMLExporter
except ImportError as error:
    raise ImportError(f"building the site needs {error.name}: pip install -e '.[dev]'") from error

from ..files import write_atomically
from .series import NOTEBOOKS_DIR, series

# nbconvert's lab template, plus a link back to the index above each notebook page, and each cell whose code
# JupyterLab hides (a solution) folded away in <details>.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block body_header %}{{ super() }}
{%- if resources.back_to_index -%}
<nav style="padding: 8px 24px; font-family: var(--jp-ui-font-family)"><a href="index.html">← all notebooks</a></nav>
{%- endif -%}
{% endblock body_header %}
{% block any_cell %}
{%- if cell.metadata.get('jupyter', {}).get('source_hidden') -%}
<details class="vae-lab-hidden"><summary style="font-family: var(--jp-ui-font-family); padding: 4px 24px">
Hidden cell (click to show)</summary>{{ super() }}</details>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock any_cell %}
"""


@dataclass(frozen=True)
class Lesson:
    """A notebook as the index lists it: its ``title`` (the first heading) and its one-sentence ``summary``."""

    notebook: Path
    title: str
    summary: str

    @property
    def page(self) -> str:
        """The file name of its HTML page, e.g. ``07_latent_space.html``."""
        return self.notebook.with_suffix(".html").name


def describe(notebook: Path) -> Lesson:
    """Read the title (``# NN · Title``) and the sentence below it from the notebook's first cell."""
    cells = nbformat.read(notebook, as_version=4).cells
    first = cells[0].source.strip() if cells and cells[0].cell_type == "markdown" else ""
    heading, _, rest = first.partition("\n")
    paragraphs = [" ".join(p.split()) for p in rest.split("\n\n") if p.strip() and not p.strip().startswith("[![")]
    if not heading.startswith("# ") or not paragraphs:
        raise ValueError(f"{notebook} should open with a markdown cell '# NN · Title' and one sentence on what "
                         "you will learn (see DEVELOPERS.md, notebook conventions)")
    return Lesson(notebook, heading[2:].strip(), paragraphs[0])


def render(notebook: nbformat.NotebookNode, title: str, back_to_index: bool = True) -> str:
    """``notebook`` with its stored outputs as one HTML page: figures embedded as data: URIs, lesson links to .html."""
    exporter = HTMLExporter(template_name="lab")
    exporter.raw_template = TEMPLATE
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title},
                                                               "back_to_index": back_to_index})
    return re.sub(r'href="(\d\d_[\w-]+)\.ipynb"', r'href="\1.html"', body)


def index_notebook(lessons: list[Lesson]) -> nbformat.NotebookNode:
    """The index as a one-cell notebook, so it renders like the pages: each title linked, its sentence below."""
    items = "\n".join(f"{n}. **[{lesson.title}]({lesson.page})**  \n   {lesson.summary}"
                      for n, lesson in enumerate(lessons, start=1))
    intro = "Variational autoencoders on MNIST, one notebook at a time, with the outputs of a full run."
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# VAE Lab\n\n{intro}\n\n{items}")])


def write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 through `write_atomically`: a failed build leaves the previous page whole."""
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def build_site(notebooks_dir: Path = NOTEBOOKS_DIR, out_dir: Path = Path("build/site")) -> Path:
    """Write a page for each numbered notebook of ``notebooks_dir``, then ``index.html``, into ``out_dir``."""
    lessons = [describe(notebook) for notebook in series(Path(notebooks_dir))]
    out_dir = Path(out_dir)
    for lesson in lessons:
        write_text(out_dir / lesson.page, render(nbformat.read(lesson.notebook, as_version=4), lesson.title))
    write_text(out_dir / "index.html", render(index_notebook(lessons), "VAE Lab", back_to_index=False))
    return out_dir / "index.html"


def main(argv: list[str] | None = None) -> int:
    """``python -m vae_lab.site [OUT_DIR] [--notebooks DIR]``: build the site and say where its index is."""
    parser = argparse.ArgumentParser(prog="python -m vae_lab.site", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("build/site"), help="default: build/site")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help=f"default: {NOTEBOOKS_DIR}")
    args = parser.parse_args(argv)
    print(f"wrote the site; open {build_site(args.notebooks, args.out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
