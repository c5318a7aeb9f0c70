"""What the book adds to each lesson page: a Colab launch button for its student edition, and a note where widgets run.

A Sphinx extension that Jupyter Book loads from book/_config.yml (``local_extensions``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

from vae_lab.lessons.setup import colab_url

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("The sliders and buttons on this page need a running Python kernel, which a web page does not have, "
               "so here they do nothing. They run live when you open this notebook in Colab (the rocket button at "
               "the top of this page) or in JupyterLab on your own machine (run ",
               "make lab", " in a clone of the repository).")


def lesson_notebook(app: Sphinx, docname: str) -> Path | None:
    """The notebook file behind page ``docname``, or None for a page written in Markdown."""
    path = Path(app.env.doc2path(docname))
    return path if path.suffix == ".ipynb" else None


def has_widgets(notebook: Path) -> bool:
    """True when a stored output of ``notebook`` is an ipywidgets view."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(WIDGET_VIEW in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))


def add_widget_note(app: Sphinx, doctree: nodes.document) -> None:
    """Put a note under the title of every lesson page that shows widgets, saying where they run live."""
    notebook = lesson_notebook(app, app.env.docname)
    if notebook is None or not has_widgets(notebook):
        return
    note = nodes.admonition(classes=["note", "widgets-run-live"])
    note += nodes.title(text="Interactive widgets")
    before, command, after = WIDGET_NOTE
    note += nodes.paragraph("", "", nodes.Text(before), nodes.literal(text=command), nodes.Text(after))
    title_section = next(iter(doctree.findall(nodes.section)))
    title_section.insert(1, note)


def add_colab_button(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Give each lesson page a rocket button opening ``notebooks/student/<same file name>`` in Colab."""
    notebook = lesson_notebook(app, pagename) if pagename in app.env.all_docs else None
    if notebook is None:
        return
    context["header_buttons"].append({
        "type": "group", "tooltip": "Launch the student edition", "icon": "fas fa-rocket", "label": "launch-buttons",
        "buttons": [{"type": "link", "text": "Colab (student edition)", "tooltip": "Open the student edition in Colab",
                     "icon": "_static/images/logo_colab.png", "url": colab_url(f"notebooks/student/{notebook.name}")}],
    })


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the widget note (on each page as it is read) and the Colab button (on each page as it is written)."""
    app.connect("doctree-read", add_widget_note)
    # After sphinx-book-theme has made this page's header_buttons list (priority 500) and before it renders them.
    app.connect("html-page-context", add_colab_button, priority=501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
