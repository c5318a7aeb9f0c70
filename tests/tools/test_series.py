"""Headless runs with papermill: parameters drive a notebook, a rerun with changed parameters just works, a bad
parameter is one sentence, and the series stops at the first failing notebook, naming it.

Every notebook runs in full once per `make test` under nbval; these runs cover only what nbval does not.
"""
import contextlib
import json
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

from vae_lab import Config, load_checkpoint
from vae_lab.checkpoint import CHECKPOINT_NAME
from vae_lab.lessons.setup import run_folder, runs_root
from vae_lab.tools.series import (NOTEBOOKS_DIR, NotebookFailed, execute_notebook, parameter_names, quick_parameters,
                                  run_series, series)

TRANSPORT_WARNING = "without encryption"


def outputs_text(path: Path) -> str:
    notebook = json.loads(path.read_text())
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in notebook["cells"] for o in c.get("outputs", []))


@pytest.fixture
def new_run_folders():
    """Run folders of notebook 04 that a test creates under runs/ of the checkout; removed again afterwards."""
    existed = {path for path in (runs_root(), runs_root() / "04_training") if path.exists()}
    created: list[Path] = []
    yield created
    for folder in created:
        shutil.rmtree(folder, ignore_errors=True)
    for path in (runs_root() / "04_training", runs_root()):
        if path not in existed and path.exists() and not any(path.iterdir()):
            with contextlib.suppress(OSError):  # nbval's run of notebook 04 may be filling it on the other worker
                path.rmdir()


def test_notebook_04_reruns_with_changed_parameters_and_05_draws_that_run(tmp_path, new_run_folders, capfd):
    first, second = {"epochs": 2, "train_size": 1000}, {"epochs": 1, "seed": 3, "train_size": 1000}
    folders = [run_folder("04_training", Config(**parameters)) for parameters in (first, second)]
    assert folders[0] != folders[1], "changed parameters get their own run folder"
    new_run_folders.extend(folder for folder in folders if not folder.exists())
    for index, parameters in enumerate((first, second)):  # as a student would: run, edit the parameters, run again
        execute_notebook(NOTEBOOKS_DIR / "04_training.ipynb", tmp_path / f"04_run{index}.ipynb", parameters)
        trained = load_checkpoint(folders[index] / CHECKPOINT_NAME)
        assert len(trained.history) == parameters["epochs"] and trained.config.seed == parameters.get("seed", 1)
    executed = json.loads((tmp_path / "04_run1.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    assert "training on 1,000 images" in outputs_text(tmp_path / "04_run1.ipynb")
    assert "seed 3" in outputs_text(tmp_path / "04_run1.ipynb")

    figures = tmp_path / "figures"
    execute_notebook(NOTEBOOKS_DIR / "05_generation.ipynb", tmp_path / "05.ipynb",
                     {"run_dir": str(folders[1]), "figures_dir": str(figures)})
    assert sorted(p.name for p in figures.iterdir()) == ["loss_curve.png", "reconstructions.png", "samples.png"]
    assert TRANSPORT_WARNING not in capfd.readouterr().err, "the kernels start without the transport warning"


@pytest.mark.parametrize("parameters, sentence", [
    ({"epochs": -1}, "epochs must be a positive integer, got -1"),
    ({"n_trian": 500}, "unknown parameter(s) ['n_trian']: this notebook's parameters are ['epochs', 'seed', 'train_size']"),
])
def test_a_bad_parameter_stops_the_notebook_with_one_sentence(parameters, sentence, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        execute_notebook(NOTEBOOKS_DIR / "03_loss.ipynb", tmp_path / "bad.ipynb", parameters)
    assert caught.value.ename == "LessonError"
    assert caught.value.evalue.startswith(sentence)
    assert len(caught.value.traceback) == 1  # one sentence, no 40-line traceback


def test_the_series_stops_at_the_first_failing_notebook_and_names_it(tmp_path, capfd):
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2"), nbformat.v4.new_code_cell("1 / 0")])
    for name, notebook in [("01_good", good), ("02_bad", bad), ("03_never", good)]:
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    with pytest.raises(NotebookFailed, match=r"02_bad.ipynb failed in cell 1 .*ZeroDivisionError: division by zero"):
        run_series(tmp_path / "out", notebooks_dir=tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["01_good.ipynb", "02_bad.ipynb"]
    assert TRANSPORT_WARNING not in capfd.readouterr().err, "make run's kernels start without the transport warning"


@pytest.mark.parametrize("path", series(), ids=lambda p: p.stem)
def test_papermill_reads_every_line_of_the_parameters_cell(path, caplog):
    with caplog.at_level("WARNING", logger="papermill"):
        found = papermill.inspect_notebook(str(path))
    assert not [r.message for r in caplog.records if "Unable to parse" in r.message]
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert set(found) == {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line.split("#")[0]}


def test_a_quick_run_gives_each_notebook_the_small_settings_its_parameters_cell_takes(tmp_path):
    run = tmp_path / "runs" / "04_training"
    assert quick_parameters(NOTEBOOKS_DIR / "04_training.ipynb", run) == \
        {"epochs": 1, "train_size": 2000, "run_dir": str(run)}
    assert quick_parameters(NOTEBOOKS_DIR / "05_generation.ipynb", run) == {"run_dir": str(run)}, \
        "05 draws the quick run of 04"
    assert quick_parameters(NOTEBOOKS_DIR / "01_data_and_encoder.ipynb", run) == {}
    assert quick_parameters(NOTEBOOKS_DIR / "04_training.ipynb") == {"epochs": 1, "train_size": 2000}, \
        "without a run folder, 04 saves where it would"
    for path in series():
        assert set(quick_parameters(path, run)) <= parameter_names(path) | {"run_dir"}


def test_a_finished_notebooks_kernel_is_shut_down_without_a_sigint(tmp_path):
    """jupyter_client interrupts a kernel before shutting it down; landing as ipykernel turns idle, that SIGINT logs
    "KeyboardInterrupt caught in kernel." to stderr. The series' kernels are shut down without it."""
    received = tmp_path / "signals.txt"
    catch_sigint = f"""
import signal
kernel = get_ipython().kernel
kernel.pre_handler_hook = kernel.post_handler_hook = lambda: None  # keep this handler after the cell
signal.signal(signal.SIGINT, lambda *_: open({str(received)!r}, "a").write("SIGINT\\n"))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(catch_sigint)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "catch.ipynb")
    execute_notebook(tmp_path / "catch.ipynb", tmp_path / "out.ipynb")
    assert not received.exists(), "the kernel was sent a SIGINT at shutdown"
    papermill.execute_notebook(str(tmp_path / "catch.ipynb"), str(tmp_path / "plain.ipynb"), kernel_name="python3",
                               progress_bar=False)
    assert received.read_text() == "SIGINT\n", "the check can fail: papermill's own kernel manager does send it"
