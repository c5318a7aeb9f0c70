"""The README's nbgrader workflow, run as an instructor runs it: `nbgrader generate_assignment` and `nbgrader autograde`
on the command line, in a course folder whose nbgrader_config.py calls `configure_nbgrader`, for three students:
one who hands in the release untouched, one whose every answer is the complete edition's, and one with a realistic
bug in one graded exercise of each notebook. The scores are read back from nbgrader's gradebook.

The source notebooks get the series' quick settings (`series.QUICK`) appended to their parameters cell, so 06 trains
for one epoch on 2,000 images; everything else is the complete edition as committed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from vae_lab.tools.series import NOTEBOOKS_DIR, quick_parameters
from vae_lab.tools.student_edition import CELL_TIMEOUT_S, configure_nbgrader

NBGRADER = Path(sys.executable).with_name("nbgrader")
ASSIGNMENT = "vae_lab"
NOTEBOOKS = ("01_data_and_encoder", "03_loss", "06_your_own_vae")
STUDENTS = ("untouched", "correct", "buggy")
MARKER = re.compile(r"^[ \t]*#*[ \t]*(BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
# One realistic bug per notebook: its answer cell, the line as the lab writes it, and the line with the bug.
BUGS = {
    "01_data_and_encoder": ("encode", "h = torch.relu(layer(encoder.hidden, x))", "h = layer(encoder.hidden, x)"),
    "03_loss": ("gaussian_kl", "torch.sum(1 + logvar", "torch.mean(1 + logvar"),
    "06_your_own_vae": ("negative_elbo", 'F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)',
                        "F.binary_cross_entropy_with_logits(logits, x)"),  # PyTorch's default: the mean over pixels
}
# The graded checks each bug fails: its own, and in 06 the training check, since the lab's VAE is trained instead.
BROKEN = {"01_data_and_encoder": {"check_encode"}, "03_loss": {"check_gaussian_kl"},
          "06_your_own_vae": {"check_negative_elbo", "check_training"}}
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_config() -> str:
    """The README's nbgrader_config.py, as an instructor copies it."""
    return next(block for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
                if "configure_nbgrader(c)" in block)


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def quick_source(name: str) -> nbformat.NotebookNode:
    """The complete notebook with the series' quick settings appended to its parameters cell."""
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "".join(f"\n{key} = {value!r}" for key, value in quick_parameters(path).items())
    return notebook


def answered(release: nbformat.NotebookNode, complete: nbformat.NotebookNode, bug: tuple[str, str, str] | None = None
             ) -> nbformat.NotebookNode:
    """``release`` with every answer cell as the complete edition writes it, markers left out, and ``bug`` applied."""
    answers = {grade_id(cell): MARKER.sub("", cell.source) for cell in complete.cells
               if cell.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
            if bug and grade_id(cell) == bug[0]:
                assert bug[1] in cell.source, f"the bug's line is no longer in {bug[0]}"
                cell.source = cell.source.replace(bug[1], bug[2])
    return release


def run_seconds(notebook: nbformat.NotebookNode) -> float:
    """From the first code cell's start to the last one's reply, by nbclient's timestamps in the executed notebook."""
    timings = [cell.metadata["execution"] for cell in notebook.cells if "execution" in cell.metadata]
    start, end = (datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                  for stamp in (timings[0]["iopub.execute_input"], timings[-1]["shell.execute_reply"]))
    return (end - start).total_seconds()


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course`` as in an activated venv: nbgrader calls the venv's alembic by name."""
    path = f"{NBGRADER.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run([str(NBGRADER), *args], cwd=course, capture_output=True, text=True,
                            env={**os.environ, "PATH": path})
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Generate, submit three ways, autograde; then every student's score per notebook and the points each check
    scored, from the gradebook."""
    from nbgrader.api import Gradebook

    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(readme_config())
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    complete = {name: quick_source(name) for name in NOTEBOOKS}
    for name, notebook in complete.items():
        nbformat.write(notebook, source / f"{name}.ipynb")
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    for student in STUDENTS:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name in NOTEBOOKS:
            release = nbformat.read(course / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
            if student != "untouched":
                release = answered(release, complete[name], BUGS[name] if student == "buggy" else None)
            nbformat.write(release, folder / f"{name}.ipynb")
    log = nbgrader(course, "autograde", ASSIGNMENT, "--create")
    assert "Timeout" not in log.stdout + log.stderr, "a cell hit the timeout while grading"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {(student, name): gradebook.find_submission_notebook(name, ASSIGNMENT, student).score
                  for student in STUDENTS for name in NOTEBOOKS}
        maximum = {name: gradebook.find_notebook(name, ASSIGNMENT).max_score for name in NOTEBOOKS}
        checks = {(student, name): {grade.name: grade.score for grade in
                                    gradebook.find_submission_notebook(name, ASSIGNMENT, student).grades}
                  for student in STUDENTS for name in NOTEBOOKS}
    autograded = {(student, name): nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb",
                                                 as_version=4) for student in STUDENTS for name in NOTEBOOKS}
    print(f"\n{'student':<10}" + "".join(f"{name[:2]:>13}" for name in NOTEBOOKS) + "   (score, seconds it ran)")
    for student in STUDENTS:
        print(f"{student:<10}" + "".join(f"{scores[student, name]:>5g}/{maximum[name]:<2g}"
                                         f"{run_seconds(autograded[student, name]):>5.0f} s" for name in NOTEBOOKS))
    return {"scores": scores, "maximum": maximum, "checks": checks, "autograded": autograded}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_an_untouched_notebook_scores_nothing(graded, name):
    assert graded["maximum"][name] > 0
    assert graded["scores"]["untouched", name] == 0


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_complete_editions_answers_score_full_marks(graded, name):
    assert graded["scores"]["correct", name] == graded["maximum"][name]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_bug_loses_exactly_the_points_of_the_checks_it_breaks(graded, name):
    correct, buggy = graded["checks"]["correct", name], graded["checks"]["buggy", name]
    lost = {check for check in buggy if buggy[check] != correct[check]}
    assert lost == BROKEN[name]
    assert all(buggy[check] == 0 for check in lost)
    assert graded["scores"]["buggy", name] == graded["maximum"][name] - sum(correct[check] for check in lost)


def test_the_capstones_training_check_names_the_failing_piece_in_the_graded_notebook(graded):
    cell = next(c for c in graded["autograded"]["buggy", "06_your_own_vae"].cells if grade_id(c) == "check_training")
    text = "".join(output.get("text", "") for output in cell.outputs)
    assert "your negative_elbo has not passed yet, so the training cell used the lab's VAE" in text
    assert "not attempted" not in text


def test_nbgraders_executor_takes_the_labs_cell_timeout():
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    assert Execute().timeout == 30  # nbgrader's default, too short for a training cell on a busy machine
    assert Execute(config=configure_nbgrader(Config())).timeout == CELL_TIMEOUT_S == 1800
