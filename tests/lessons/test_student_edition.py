"""The student edition: generated from the complete edition, committed in sync, free of solutions, and runnable untouched."""
import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vae_lab.lessons import solutions
from vae_lab.lessons.setup import colab_url
from vae_lab.tools.series import NOTEBOOKS_DIR, series
from vae_lab.tools.student_edition import CODE_STUB, STUDENT_DIR, write_student_edition

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def sources(path: Path) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook(path)["cells"]]


def outputs(path: Path) -> list[str]:
    """Every stored output of a notebook as text: streams, errors and every data field."""
    texts = []
    for cell in notebook(path)["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")) + "\n".join(output.get("traceback", [])))
            texts.extend("".join(value) if isinstance(value, list) else str(value) for value in output.get("data", {}).values())
    return texts


def solution_lines() -> dict[str, list[str]]:
    """For each function of vae_lab/lessons/solutions.py, the lines of its body after the docstring."""
    bodies = {}
    for name, function in inspect.getmembers(solutions, inspect.isfunction):
        if function.__module__ != solutions.__name__:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
        statements = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
        lines = textwrap.dedent(inspect.getsource(function)).splitlines()[statements[0].lineno - 1:tree.end_lineno]
        bodies[name] = [line.strip() for line in lines if len(line.strip()) > 12]
    return bodies


def leaks(text: str) -> list[str]:
    """The nbgrader markers in ``text``, and the solutions whose every body line ``text`` contains (a lesson may show
    one line of an answer, such as `optimizer.step()`, but never all of it)."""
    return [marker for marker in MARKERS if marker in text] + \
        [name for name, lines in solution_lines().items() if all(line in text for line in lines)]


STUDENT = series(STUDENT_DIR) if STUDENT_DIR.is_dir() else []


def test_the_student_edition_is_what_the_generator_makes_of_the_complete_edition(tmp_path):
    written = write_student_edition(student_dir=tmp_path)
    assert sorted(p.name for p in STUDENT_DIR.glob("*.ipynb")) == sorted(p.name for p in written), \
        "notebooks/student/ lists other notebooks than notebooks/: run `make student` and commit notebooks/student/"
    stale = [p.name for p in written if p.read_bytes() != (STUDENT_DIR / p.name).read_bytes()]
    assert not stale, f"notebooks/student/ is out of date for {stale}: run `make student` and commit notebooks/student/"


def test_the_leak_search_finds_every_reference_answer_in_the_complete_edition():
    found = {leak for path in series() for text in sources(path) for leak in leaks(text)}
    unfound = set(solution_lines()) - found
    assert len(solution_lines()) >= 10 and not unfound, \
        f"no complete notebook holds {sorted(unfound)} as written in solutions.py, so searching for it proves nothing"
    assert {"BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"} <= found


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.stem)
def test_no_student_cell_or_output_holds_solution_code_or_markers(path):
    assert not [leak for text in sources(path) + outputs(path) for leak in leaks(text)]
    assert sum(CODE_STUB in text for text in sources(path)) >= 1, "every exercise is a stub in the student edition"
    assert not [text for text in outputs(path) if text], "the student edition stores no outputs"
    assert "widgets" not in notebook(path)["metadata"], "nor the widget state of the complete edition's outputs"


@pytest.mark.parametrize("path", series(), ids=lambda p: p.stem)
def test_no_stored_output_of_the_complete_edition_shows_solution_code(path):
    assert not [leak for text in outputs(path) for leak in leaks(text)]


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.stem)
def test_the_student_badge_opens_the_student_file(path):
    title = sources(path)[0]
    assert colab_url(f"notebooks/student/{path.name}") in title and title.count("colab.research.google.com/github/") == 1


def test_the_student_edition_runs_untouched_as_a_quick_series_with_nothing_on_stderr(tmp_path):
    """`python -m vae_lab notebooks --quick` over the student edition, as an instructor would check it: every notebook
    runs with its exercises unsolved, each check says "not attempted", and the whole run writes nothing to stderr
    (the kernels' own start-up included: that is where "running over TCP without encryption" used to appear)."""
    run = subprocess.run([sys.executable, "-m", "vae_lab", "notebooks", "--quick", "--notebooks", str(STUDENT_DIR),
                          "--out", str(tmp_path)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == "", f"the series printed to stderr: {run.stderr[:2000]}"
    assert run.stdout.splitlines()[:len(STUDENT)] == [f"running {p.name} ..." for p in STUDENT]
    for executed in sorted((tmp_path / "notebooks").glob("*.ipynb")):
        checks = [c for c in notebook(executed)["cells"] if c["metadata"].get("nbgrader", {}).get("grade")
                  and c["cell_type"] == "code"]
        assert checks, f"{executed.name}: a student notebook has at least one check"
        for check in checks:
            printed = "".join("".join(o.get("text", "")) for o in check["outputs"])
            assert "not attempted" in printed, f"{executed.name}: {check['metadata']['nbgrader']['grade_id']} printed {printed!r}"
        streams = [o for c in notebook(executed)["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"]
        assert not streams, f"{executed.name} shows stderr under a cell: {streams}"


def test_nbgrader_generate_assignment_with_the_readme_config_writes_the_committed_student_edition(tmp_path):
    source = tmp_path / "source" / "vae_lab"
    source.mkdir(parents=True)
    for path in series():
        shutil.copy(path, source / path.name)
    (tmp_path / "nbgrader_config.py").write_text(
        "from vae_lab.tools.student_edition import configure_nbgrader\n\nc = get_config()\n"
        'c.CourseDirectory.course_id = "vae-lab"\nconfigure_nbgrader(c)\n')
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # alembic
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "vae_lab"], cwd=tmp_path, env=environment,
                   check=True, capture_output=True)
    released = sorted((tmp_path / "release" / "vae_lab").glob("*.ipynb"))
    assert [p.name for p in released] == [p.name for p in series()]
    assert [p.name for p in released if p.read_bytes() != (STUDENT_DIR / p.name).read_bytes()] == []
