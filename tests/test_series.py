"""Headless runs: papermill drives every notebook through its parameters cell, and failures are named."""
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from vae_lab.tools.series import NotebookFailed, run_series, series

SMALL = {"epochs": 1, "n_train": 2000, "n_points": 500, "seed": 2, "train_2d": True, "n_test": 100, "iwae_samples": 50,
         "n_samples": 500, "timing_steps": 2}


def parameter_names(path: Path) -> set[str]:
    cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return {line.split("=")[0].strip() for line in "".join(cell["source"]).splitlines() if "=" in line and not line.startswith("#")}


def outputs_text(path: Path) -> str:
    notebook = json.loads(path.read_text())
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in notebook["cells"] for o in c.get("outputs", []))


@pytest.mark.parametrize("path", series(), ids=lambda p: p.stem)
def test_every_notebook_runs_headless_with_small_parameters(path, tmp_path):
    names = parameter_names(path)
    parameters = {k: v for k, v in SMALL.items() if k in names}
    for folder in ("run_dir", "figures_dir"):
        if folder in names:
            parameters[folder] = str(tmp_path / folder)
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(path.parent),
                               kernel_name="python3", progress_bar=False)
    executed = json.loads(out.read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    if "figures_dir" in parameters:
        assert sorted(p.name for p in (tmp_path / "figures_dir").iterdir()) == ["loss_curve.png", "reconstructions.png", "samples.png"]
    if "n_train" in parameters:
        assert re.search(r"\b2,?000\b", outputs_text(out)), "the notebook shows that it trains on 2000 images"


def test_a_bad_parameter_stops_the_notebook_with_one_sentence(tmp_path):
    notebook = next(p for p in series() if "epochs" in parameter_names(p))
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(notebook), str(tmp_path / "bad.ipynb"), parameters={"epochs": -1},
                                   cwd=str(notebook.parent), kernel_name="python3", progress_bar=False)
    assert caught.value.ename == "LessonError"
    assert caught.value.evalue.startswith("epochs must be a positive integer, got -1")
    assert len(caught.value.traceback) == 1  # one sentence, no 40-line traceback


def test_the_series_stops_at_the_first_failing_notebook_and_names_it(tmp_path):
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2"), nbformat.v4.new_code_cell("1 / 0")])
    for name, notebook in [("01_good", good), ("02_bad", bad), ("03_never", good)]:
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    with pytest.raises(NotebookFailed, match=r"02_bad.ipynb failed in cell 1 .*ZeroDivisionError: division by zero"):
        run_series(tmp_path / "out", notebooks_dir=tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_good.ipynb", "02_bad.ipynb"]
