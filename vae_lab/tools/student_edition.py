"""Generate the student edition (notebooks/student/) from the complete edition with nbgrader's own preprocessors.

    python -m vae_lab.tools.student_edition        # or: make student

The complete edition (notebooks/NN_*.ipynb) holds each answer between nbgrader's solution markers and each check's
assert between its hidden-test markers. The student edition is what `nbgrader generate_assignment` makes of it, run
here in-process (no course folder, no gradebook, no kernel): solutions become a `raise NotImplementedError` stub,
hidden tests disappear and every output is cleared. One step of the lab's own follows: the answer cells, collapsed
in the complete edition, are shown, the saved widget state goes, and the Colab badge opens the student file.
`configure_nbgrader` gives an instructor's `nbgrader_config.py` the same pipeline, so `nbgrader generate_assignment`
writes the same files.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions,
                                    ComputeChecksums, IncludeHeaderFooter, InstantiateTests, LockCells,
                                    NbGraderPreprocessor, SaveCells)
from traitlets.config import Config

from .series import NOTEBOOKS_DIR, series

STUDENT_DIR = NOTEBOOKS_DIR / "student"
CODE_STUB = "raise NotImplementedError  # your code here"
TEXT_STUB = "YOUR ANSWER HERE"
# nbgrader's limit on one cell while autograding, in seconds (its default is 30). The slowest cell of the series, 06's
# training, took 186 s on 2 cores at load averages of 8 to 15 (benchmarks/slowest_cells.py, December 2026); the limit
# is about ten times that, so only a cell that hangs (a student's endless loop) reaches it.
CELL_TIMEOUT_S = 1800


class StudentView(NbGraderPreprocessor):
    """Show the answer cells the complete edition collapses, drop the saved widget state (the state of outputs that are
    cleared), and point the title cell's Colab badge at notebooks/student/."""

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.metadata.pop("cellView", None)
                cell.metadata.get("jupyter", {}).pop("source_hidden", None)
                if cell.metadata.get("jupyter") == {}:
                    del cell.metadata["jupyter"]
        nb.metadata.pop("widgets", None)
        title = nb.cells[0]
        title.source = re.sub(r"(/blob/[\w.-]+/notebooks/)(\d\d_[^/)]+\.ipynb\))", r"\1student/\2", title.source,
                              count=1)
        return nb, resources


# nbgrader generate_assignment's own order, then the lab's step. SaveCells (the gradebook) runs only under nbgrader.
GENERATE_ASSIGNMENT = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, ClearOutput, CheckCellMetadata,
                       ComputeChecksums, SaveCells, ClearHiddenTests, ClearMarkScheme, ComputeChecksums,
                       CheckCellMetadata, StudentView]


def configure_nbgrader(config: Config) -> Config:
    """Set an nbgrader config (``c = get_config()`` in nbgrader_config.py) to make exactly the lab's student edition,
    and to give each cell `CELL_TIMEOUT_S` when autograding."""
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    config.ClearSolutions.text_stub = TEXT_STUB
    config.GenerateAssignment.preprocessors = GENERATE_ASSIGNMENT
    config.Execute.timeout = CELL_TIMEOUT_S
    return config


def through_pipeline(complete: nbformat.NotebookNode, steps: list[type[NbGraderPreprocessor]],
                     resources: dict | None = None) -> nbformat.NotebookNode:
    """``complete`` passed through ``steps`` (a version of `GENERATE_ASSIGNMENT`) in-process, without the gradebook."""
    config = configure_nbgrader(Config())
    resources = dict(resources or {})
    for step in steps:
        if step is not SaveCells:
            complete, resources = step(config=config).preprocess(complete, resources)
    return complete


def student_notebook(complete: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student edition of one complete notebook: nbgrader's pipeline in-process, without the gradebook."""
    return through_pipeline(complete, GENERATE_ASSIGNMENT)


def write_student_edition(complete_dir: Path = NOTEBOOKS_DIR, student_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write the student edition of every numbered notebook in ``complete_dir`` into ``student_dir``."""
    student_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in series(complete_dir):
        target = student_dir / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STUDENT_DIR, help="where to write the student edition")
    for path in write_student_edition(student_dir=parser.parse_args().out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
