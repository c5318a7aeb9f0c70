"""Every notebook follows the lesson shape: badge to itself, the Colab-safe setup cell, a parameters cell, an exercise."""
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from vae_lab.lessons.setup import colab_url, release, repository_url
from vae_lab.tools import notebook_header
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_setup_cell_is_the_one_the_header_tool_writes_naming_the_repository_and_release_once(path):
    setup = source(setup_cell(path))
    assert setup == notebook_header.setup_cell(), "run `make headers` (python -m vae_lab.tools.notebook_header)"
    assert setup.count(repository_url()) == 1 and f'REPO, RELEASE = "{repository_url()}", "{release()}"' in setup


def run_setup_cell(monkeypatch, in_colab, returncode=0):
    calls = []

    def pip(command, **kwargs):
        calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr="ERROR: could not find the tag")

    monkeypatch.setattr(subprocess, "run", pip)
    if in_colab:
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    exec(notebook_header.setup_cell(), {})  # the cell every notebook holds (checked above)
    return calls


def test_in_colab_the_setup_cell_installs_the_release_without_touching_torch_or_ipywidgets(monkeypatch):
    calls = run_setup_cell(monkeypatch, in_colab=True)
    assert len(calls) == 1
    command, options = calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and "--no-deps" in command
    assert f"vae-lab @ git+{repository_url()}@{release()}" in command, "pinned to the release, not to main"
    assert options.get("capture_output"), "pip's own output is kept out of the notebook"
    assert not [arg for arg in command if any(name in arg for name in ("torch", "ipywidgets", "--upgrade", "-U"))]


def test_outside_colab_the_setup_cell_installs_nothing(monkeypatch):
    assert run_setup_cell(monkeypatch, in_colab=False) == []


def test_a_failed_install_raises_one_sentence_naming_the_url_the_release_and_the_fix(monkeypatch):
    with pytest.raises(Exception) as caught:
        run_setup_cell(monkeypatch, in_colab=True, returncode=1)
    shown = caught.value._render_traceback_()  # what IPython shows instead of a traceback
    assert shown == [str(caught.value)] and "\n" not in shown[0]
    assert shown[0].startswith(f"could not install vae_lab {release()} from {repository_url()}: ")
    assert "upload a copy of the repository" in shown[0]


def test_in_a_kernel_a_failed_install_shows_one_line_and_stops_run_all(tmp_path):
    missing = (tmp_path / "no-such-repository").as_uri()
    cell = notebook_header.setup_cell().replace(f'"{repository_url()}"', f'"{missing}"')
    fake_colab = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)
                                               for code in (fake_colab, cell, "print('never runs')")])
    client = NotebookClient(notebook, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    [error] = notebook.cells[1].outputs
    assert error.output_type == "error" and error.ename == "InstallFailed"
    assert error.traceback == [f"could not install vae_lab {release()} from {missing}: " + error.evalue.split(": ", 1)[1]]
    assert notebook.cells[2].outputs == [], "Run all stops at the failed install"
