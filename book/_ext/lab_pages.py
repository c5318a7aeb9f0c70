"""What the book adds to the site edition's lesson pages: a Colab launch button for the student edition, a download
button for the student notebook, the repository and issue buttons, the measured time of each lesson, and a note on
pages whose widgets are shown as pictures saying where they run live.

A Sphinx extension that Jupyter Book loads from book/_config.yml (``local_extensions``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from vae_lab.lessons.setup import colab_url, repository_url
from vae_lab.tools.site_edition import CONTROLS_CLASS, LESSON_TIMES
from vae_lab.tools.student_edition import STUDENT_DIR

STUDENT_DOWNLOADS = "student"  # the folder of the built site that holds the student notebooks
WIDGET_NOTE = ("Each slider and button on this page is a picture of its first state: moving it needs a running "
               "Python kernel, which a web page does not have. They run live when you open this notebook in Colab "
               "(the rocket button at the top of this page) or in JupyterLab on your own machine (run ",
               "make lab", " in a clone of the repository).")


def lesson_notebook(app: Sphinx, docname: str) -> Path | None:
    """The notebook file behind page ``docname``, or None for a page written in Markdown."""
    path = Path(app.env.doc2path(docname))
    return path if path.suffix == ".ipynb" else None


def has_widget_controls(notebook: Path) -> bool:
    """True when a stored output of the site edition's ``notebook`` is a picture of a widget with controls."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(CONTROLS_CLASS in "".join(output.get("data", {}).get("text/html", ""))
               for cell in cells for output in cell.get("outputs", []))


def lesson_times() -> dict:
    """book/lesson_times.json: the seconds each lesson took to run once, and the machine that ran it."""
    return json.loads(LESSON_TIMES.read_text(encoding="utf-8"))


def under_load(times: dict) -> str:
    """'on a machine shared with other jobs (load average 2.1 to 14.0)', from the measurement's load averages."""
    return (f"on a machine shared with other jobs (load average {times['load_average_least']} to "
            f"{times['load_average_most']})")


def minutes(seconds: int) -> str:
    return "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


def time_paragraph(notebook_name: str) -> nodes.paragraph | None:
    """'Running it top to bottom took about N min on …', or None for a lesson that was not timed."""
    times = lesson_times()
    seconds = times["seconds"].get(notebook_name)
    if seconds is None:
        return None
    text = (f"Running this lesson top to bottom took {minutes(seconds)} ({seconds} s) on {times['machine']}, "
            f"measured once with the lab's settings {under_load(times)}; reading it and doing its exercises takes "
            "longer.")
    return nodes.paragraph("", text, classes=["lesson-time"])


def add_lesson_notes(app: Sphinx, doctree: nodes.document) -> None:
    """Under the title of every lesson: its measured time, and on a page with widget controls, where they run live."""
    notebook = lesson_notebook(app, app.env.docname)
    if notebook is None:
        return
    title_section = next(iter(doctree.findall(nodes.section)))
    if has_widget_controls(notebook):
        note = nodes.admonition(classes=["note", "widgets-run-live"])
        note += nodes.title(text="Interactive widgets")
        before, command, after = WIDGET_NOTE
        note += nodes.paragraph("", "", nodes.Text(before), nodes.literal(text=command), nodes.Text(after))
        title_section.insert(1, note)
    timing = time_paragraph(notebook.name)
    if timing is not None:
        title_section.insert(1, timing)


class LessonTimes(SphinxDirective):
    """``{lesson-times}``: a table of every timed lesson and how long it took to run once, with the machine."""

    def run(self) -> list[nodes.Node]:
        times = lesson_times()
        table = nodes.table(classes=["lesson-times"])
        group = nodes.tgroup(cols=2)
        table += group
        group += [nodes.colspec(colwidth=3), nodes.colspec(colwidth=1)]
        head, body = nodes.thead(), nodes.tbody()
        group += [head, body]
        head += nodes.row("", *(nodes.entry("", nodes.paragraph(text=text)) for text in ("lesson", "run once")))
        for name, seconds in times["seconds"].items():
            body += nodes.row("", nodes.entry("", nodes.paragraph(text=name.removesuffix(".ipynb"))),
                              nodes.entry("", nodes.paragraph(text=minutes(seconds))))
        total = sum(times["seconds"].values())
        caption = nodes.paragraph(text=f"Measured on {times['machine']}, each lesson run once top to bottom with the "
                                       f"lab's settings {under_load(times)}: {round(total / 60)} min for these "
                                       f"{len(times['seconds'])}. On a quiet machine they run faster.")
        return [table, caption]


def set_repository_buttons(app: Sphinx, config: Any) -> None:
    """The theme's repository and issue buttons, pointing at pyproject.toml's [project.urls] Repository."""
    config.html_theme_options.update({"repository_url": repository_url(), "use_repository_button": True,
                                      "use_issues_button": True, "path_to_docs": "book"})


def add_student_buttons(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """On each lesson page: a rocket button opening the student edition in Colab, and the download button offering
    the student notebook (not the page's own source, which holds the stored outputs)."""
    notebook = lesson_notebook(app, pagename) if pagename in app.env.all_docs else None
    if notebook is None:
        return
    for group in context["header_buttons"]:
        if group.get("label") == "download-buttons":
            group["buttons"] = [{
                "type": "link", "text": ".ipynb (student edition)", "tooltip": "Download the student notebook",
                "icon": "fas fa-code", "label": "download-student-notebook",
                "url": f"{context['pathto'](STUDENT_DOWNLOADS, 1)}/{notebook.name}"},
                *(button for button in group["buttons"] if button.get("label") == "download-pdf-button")]
    context["header_buttons"].append({
        "type": "group", "tooltip": "Launch the student edition", "icon": "fas fa-rocket", "label": "launch-buttons",
        "buttons": [{"type": "link", "text": "Colab (student edition)", "tooltip": "Open the student edition in Colab",
                     "icon": "_static/images/logo_colab.png", "url": colab_url(f"notebooks/student/{notebook.name}")}],
    })


def copy_student_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Put the student notebooks into the built site, where each page's download button points."""
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / STUDENT_DOWNLOADS
        target.mkdir(exist_ok=True)
        for notebook in STUDENT_DIR.glob("[0-9][0-9]_*.ipynb"):
            shutil.copy2(notebook, target / notebook.name)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the buttons, the notes on each lesson and the ``lesson-times`` directive."""
    app.connect("config-inited", set_repository_buttons)
    app.connect("doctree-read", add_lesson_notes)
    # After sphinx-book-theme has made this page's header_buttons list (priority 500) and before it renders them.
    app.connect("html-page-context", add_student_buttons, priority=501)
    app.connect("build-finished", copy_student_notebooks)
    app.add_directive("lesson-times", LessonTimes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
