"""Generate the course site's edition of the lessons (build/site_edition/, which book/notebooks points at).

    python -m vae_lab.tools.site_edition        # then jupyter-book builds book/ (make site does both)

The site edition is made by the student edition's own nbgrader pipeline (`student_edition.GENERATE_ASSIGNMENT`),
minus the step that clears every output, so a reader sees the lesson's figures without a kernel and never an answer:

- an exercise's answer cell holds the student's stub, and its outputs go (they were printed by the lab's answer);
- a check cell loses its hidden asserts, and its outputs go (they judge the lab's answer, not the reader's);
- a prediction's answer is the student's text stub, and the outputs of the first code cell after it are folded behind
  a "show" button (tag ``hide-output``), so the page gives the prediction away only when the reader asks;
- every other output stays, except that a widget view becomes a static picture of the widget in the state the run
  saved (a slider's first state: nobody moves it in a headless run), and the saved widget state goes, so no page
  loads the widget manager (which the book would fetch from a CDN);
- the setup cell's input is hidden (tag ``remove-input``), and the title's Colab badge and every link to the complete
  edition go: the page header's launch button opens the student edition. A link to a lesson the series does not
  have (yet) becomes its text.

`python -m vae_lab.tools.site_edition --measure-times` runs each complete notebook once and writes how long it took
into book/lesson_times.json, which the site shows on each lesson.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearOutput, NbGraderPreprocessor

from .notebook_header import BADGE_IMAGE
from .series import NOTEBOOKS_DIR, execute_notebook, parameter_names, series
from .student_edition import GENERATE_ASSIGNMENT, through_pipeline

SITE_DIR = NOTEBOOKS_DIR.parent / "build" / "site_edition"
LESSON_TIMES = NOTEBOOKS_DIR.parent / "book" / "lesson_times.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# The class of a widget's static picture; ``controls`` is added when the widget has something to move or press.
SNAPSHOT_CLASS = "widget-snapshot"
CONTROLS_CLASS = "widget-controls"
# A Markdown link to a notebook of the complete edition (notebooks/NN_*.ipynb, not notebooks/student/), on any host.
COMPLETE_EDITION_LINK = re.compile(r"\[([^\]]*)\]\((https?://[^)\s]*/notebooks/\d\d_[^/)\s]*\.ipynb)\)")
# A Markdown link to another lesson of the series, by its file name (``[notebook 05](05_generation.ipynb)``).
LESSON_LINK = re.compile(r"\[([^\]]*)\]\((\d\d_[^/)\s#]*\.ipynb)(#[^)\s]*)?\)")
CONTROLS = {"FloatSliderModel", "IntSliderModel", "FloatLogSliderModel", "FloatRangeSliderModel", "IntRangeSliderModel",
            "ButtonModel", "ToggleButtonsModel", "ToggleButtonModel", "DropdownModel", "IntTextModel",
            "FloatTextModel", "TextModel", "CheckboxModel", "RadioButtonsModel", "SelectModel",
            "BoundedIntTextModel", "BoundedFloatTextModel"}


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def is_check(cell: nbformat.NotebookNode) -> bool:
    grading = cell.metadata.get("nbgrader", {})
    return bool(grading.get("grade")) and not grading.get("solution")


def add_tag(cell: nbformat.NotebookNode, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


class WidgetPicture:
    """A static HTML picture of one saved ipywidgets view, drawn from the notebook's saved widget state: boxes as
    rows and columns, images inline, sliders and buttons as disabled HTML controls at their saved values."""

    def __init__(self, state: dict) -> None:
        self.models = state.get("state", {})
        self.has_controls = False

    def html(self, model_id: str) -> str:
        model = self.models.get(model_id)
        if model is None:
            return "<span>(a widget the notebook did not save)</span>"
        name, values = model["model_name"], model.get("state", {})
        self.has_controls |= name in CONTROLS
        description = html.escape(str(values.get("description", "")))
        label = f"<span class='widget-description'>{description}</span> " if description else ""
        if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
            direction = "column" if name == "VBoxModel" else "row"
            children = "".join(self.html(child.removeprefix("IPY_MODEL_")) for child in values.get("children", []))
            return f"<div style='display:flex;flex-direction:{direction};flex-wrap:wrap;gap:4px'>{children}</div>"
        if name in ("LabelModel",):
            return f"<span>{html.escape(str(values.get('value', '')))}</span>"
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<span>{values.get('value', '')}</span>"  # written by the lab's own code in the run
        if name == "ImageModel":
            data = next((buffer["data"] for buffer in model.get("buffers", []) if buffer.get("path") == ["value"]), "")
            size = f"width='{values.get('width', '')}' height='{values.get('height', '')}'"
            return f"<img alt='widget image' {size} src='data:image/{values.get('format', 'png')};base64,{data}'>"
        if name.endswith("SliderModel"):
            return (f"<label>{label}<input type='range' disabled min='{values.get('min')}' max='{values.get('max')}' "
                    f"step='{values.get('step')}' value='{values.get('value')}'> {values.get('value')}</label>")
        if name.endswith("ProgressModel"):
            return f"<progress max='{values.get('max')}' value='{values.get('value')}'></progress>"
        if name == "ButtonModel":
            return f"<button disabled>{description}</button>"
        if name in ("ToggleButtonsModel", "RadioButtonsModel", "DropdownModel", "SelectModel"):
            options = values.get("_options_labels", [])
            chosen = values.get("index")
            buttons = "".join(f"<button disabled{' class=chosen' if i == chosen else ''}>{html.escape(str(option))}"
                              "</button>" for i, option in enumerate(options))
            return f"<span>{label}{buttons}</span>"
        if "value" in values:
            return f"<label>{label}<input type='text' disabled value='{html.escape(str(values['value']))}'></label>"
        return f"<span>({html.escape(name.removesuffix('Model'))})</span>"


def widget_picture_output(view: dict, state: dict) -> nbformat.NotebookNode:
    """The display output that stands in for the widget view ``view`` on the site."""
    picture = WidgetPicture(state)
    body = picture.html(view["model_id"])
    classes = SNAPSHOT_CLASS + (f" {CONTROLS_CLASS}" if picture.has_controls else "")
    caption = ("<p class='widget-caption'>A picture of this widget as the notebook left it: it moves in Colab or "
               "JupyterLab, not on this page.</p>" if picture.has_controls else "")
    return nbformat.v4.new_output("display_data", data={"text/html": f"<div class='{classes}'>{body}{caption}</div>",
                                                        "text/plain": "(a widget)"})


class SiteView(NbGraderPreprocessor):
    """The site's own step, after nbgrader's: outputs decided per cell (see the module's docstring), widget views as
    pictures, the setup cell's input hidden, no Colab badge and no link to the complete edition."""

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        state = resources.get("widget_state", {})
        lessons = resources.get("lessons", set())
        setup = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
        if setup is not None:
            add_tag(setup, "remove-input")
        after_prediction = False
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = "\n".join(line for line in cell.source.split("\n") if not line.startswith(BADGE_IMAGE))
                cell.source = COMPLETE_EDITION_LINK.sub(r"\1", cell.source)
                cell.source = LESSON_LINK.sub(lambda link: link[0] if link[2] in lessons else link[1], cell.source)
                after_prediction |= is_solution(cell)
                continue
            if is_solution(cell) or is_check(cell):
                cell.outputs = []
            elif after_prediction and cell.outputs:
                add_tag(cell, "hide-output")
            after_prediction = False
            cell.outputs = [widget_picture_output(output.data[WIDGET_VIEW], state)
                            if WIDGET_VIEW in output.get("data", {}) else output for output in cell.outputs]
        nb.metadata.pop("widgets", None)
        return nb, resources


SITE_STEPS = [step for step in GENERATE_ASSIGNMENT if step is not ClearOutput] + [SiteView]


def site_notebook(complete: nbformat.NotebookNode, lessons: set[str]) -> nbformat.NotebookNode:
    """The site edition of one complete notebook of the series whose file names are ``lessons``."""
    state = complete.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return through_pipeline(complete, SITE_STEPS, {"widget_state": state, "lessons": lessons})


def write_site_edition(site_dir: Path = SITE_DIR, complete_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write the site edition of every numbered notebook in ``complete_dir`` into ``site_dir``, replacing it whole."""
    site_dir.mkdir(parents=True, exist_ok=True)
    for stale in site_dir.glob("*.ipynb"):
        stale.unlink()
    written, lessons = [], {path.name for path in series(complete_dir)}
    for path in series(complete_dir):
        target = site_dir / path.name
        nbformat.write(site_notebook(nbformat.read(path, as_version=4), lessons), target)
        written.append(target)
    return written


def machine() -> str:
    """The CPU model and the number of cores this process may use, e.g. 'AMD EPYC, 2 cores'."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def measure_lesson_times(target: Path = LESSON_TIMES) -> dict:
    """Run every complete notebook once, top to bottom with the lab's settings, and write the seconds each took, the
    machine, and the least and most 1-minute load average seen (at the start and after each notebook) into ``target``;
    04 trains into a scratch run folder, as a student's first run does."""
    loads = [os.getloadavg()[0]]
    times: dict = {"machine": machine(), "seconds": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for notebook in series():
            start = time.perf_counter()
            # a run folder of its own, so 04 trains from scratch instead of finding a finished run (05 draws it)
            run_dir = {"run_dir": str(Path(scratch) / "runs" / "04_training")}
            execute_notebook(notebook, Path(scratch) / notebook.name, run_dir if "run_dir" in parameter_names(notebook)
                             else {})
            times["seconds"][notebook.name] = round(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
            print(f"{notebook.name}: {times['seconds'][notebook.name]} s", flush=True)
    times.update(load_average_least=round(min(loads), 1), load_average_most=round(max(loads), 1))
    target.write_text(json.dumps(times, indent=1) + "\n", encoding="utf-8")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="where to write the site edition")
    parser.add_argument("--measure-times", action="store_true",
                        help=f"run every notebook once and write the times into {LESSON_TIMES.name} instead")
    arguments = parser.parse_args()
    if arguments.measure_times:
        measure_lesson_times()
        return
    for path in write_site_edition(arguments.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
