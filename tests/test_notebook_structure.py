"""Every notebook follows the lesson shape: badge to itself, the Colab-safe setup cell, a parameters cell, an exercise."""
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from vae_lab.lessons.setup import colab_url, repository_url
from vae_lab.tools.series import series

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = series()


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def setup_cell(path):
    return next(c for c in cells(path) if c["cell_type"] == "code")


def test_the_series_has_the_seven_core_lessons_in_order():
    core = ["01_data_and_encoder", "02_reparameterization", "03_loss", "04_training", "05_generation", "06_your_own_vae",
            "07_latent_space"]
    assert [p.stem for p in NOTEBOOKS if p.stem in core] == core


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_points_to_the_notebooks_own_path(path):
    first = source(cells(path)[0])
    assert cells(path)[0]["cell_type"] == "markdown" and first.startswith("# ")
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(f'notebooks/{path.name}')})"
    assert badge in first
    assert first.count("colab.research.google.com/github/") == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_shape(path):
    all_cells = cells(path)
    text = "\n".join(source(c) for c in all_cells)
    tags = [c.get("metadata", {}).get("tags", []) for c in all_cells]
    assert sum("parameters" in t for t in tags) == 1, "exactly one cell tagged 'parameters'"
    assert "lesson_config(" in text, "parameters are validated through vae_lab.lesson.lesson_config"
    assert "Learning goals" in text or "learning goals" in text
    assert "$$" in text or "\\begin{" in text, "the maths in LaTeX"
    assert ".check_" in text, "an exercise checked by a check_… function"
    assert any(source(c).lstrip().startswith("assert") or "\nassert " in source(c) for c in all_cells if c["cell_type"] == "code")
    assert "Summary" in text
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3"


def nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_is_a_collapsed_answer_between_solution_markers_then_a_check_with_a_hidden_assert(path):
    all_cells = cells(path)
    answers = [i for i, c in enumerate(all_cells) if c["cell_type"] == "code" and nbgrader(c).get("solution")]
    assert answers, "an exercise: a code cell with nbgrader solution metadata"
    for i in answers:
        answer, check = all_cells[i], all_cells[i + 1]
        lines = source(answer).splitlines()
        assert lines[0].startswith(("def ", "class ", "import ")), f"cell {i} starts with the stub's signature"
        markers = [line.strip() for line in lines if "SOLUTION" in line]
        assert markers[:2] == ["### BEGIN SOLUTION", "### END SOLUTION"], f"cell {i}: the answer sits between markers"
        assert answer["metadata"].get("jupyter", {}).get("source_hidden"), f"cell {i}: the answer is collapsed"
        assert nbgrader(check).get("grade") and check["cell_type"] == "code", f"cell {i + 1}: a graded check follows"
        first, *hidden = source(check).splitlines()
        passed = re.fullmatch(r"(passed\w*) = \w+\.check_\w+\(.*\)", first)
        assert passed, f"cell {i + 1} starts by calling the check: {first!r}"
        assert hidden[0] == "### BEGIN HIDDEN TESTS" and hidden[-1] == "### END HIDDEN TESTS", f"cell {i + 1}: hidden assert"
        assert hidden[1].startswith(f"assert {passed.group(1)}, "), f"cell {i + 1}: the hidden test asserts the check passed"
    ids = [nbgrader(c)["grade_id"] for c in all_cells if nbgrader(c)]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids), "unique nbgrader grade ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_two_or_three_predict_then_run_questions_with_hidden_answers(path):
    all_cells = cells(path)
    predictions = [i for i, c in enumerate(all_cells) if c["cell_type"] == "markdown" and nbgrader(c).get("solution")]
    assert 2 <= len(predictions) <= 3, "two or three 'predict, then run' questions"
    for i in predictions:
        assert "Predict" in source(all_cells[i - 1]), f"cell {i - 1} asks the question"
        assert "### BEGIN SOLUTION" in source(all_cells[i]) and nbgrader(all_cells[i])["points"] == 0
        assert all_cells[i + 1]["cell_type"] == "code", f"cell {i + 1}: the cell that shows the answer comes right after"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_stored_outputs_without_errors(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "execute the notebook so nbval has a reference"
    assert not [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_the_setup_cell_is_the_same_everywhere_and_names_the_repository_once():
    setups = {source(setup_cell(p)) for p in NOTEBOOKS}
    assert len(setups) == 1
    assert f'REPO = "{repository_url()}"' in setups.pop()


def run_setup_cell(monkeypatch, in_colab):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    if in_colab:
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    exec(source(setup_cell(NOTEBOOKS[0])), {})
    return calls


def test_in_colab_the_setup_cell_installs_vae_lab_without_touching_torch_or_ipywidgets(monkeypatch):
    calls = run_setup_cell(monkeypatch, in_colab=True)
    assert len(calls) == 1
    command = calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and "--no-deps" in command
    assert f"vae-lab @ git+{repository_url()}" in command
    assert not [arg for arg in command if any(name in arg for name in ("torch", "ipywidgets", "--upgrade", "-U"))]


def test_outside_colab_the_setup_cell_installs_nothing(monkeypatch):
    assert run_setup_cell(monkeypatch, in_colab=False) == []
