"""Run notebooks the way Colab would, in this virtualenv's own kernel (Colab's widget and IPython versions).

Usage: .venv-colab/bin/python tests/colab/run_notebooks.py NOTEBOOK...   (what `make test-colab` runs)

Each notebook runs in a scratch folder (as /content is in Colab) with small parameters, then every slider is moved and
every button pressed from Python, and each must change a picture. It fails on an error, on any stderr text or warning a
student would see in a cell's output, and on a widget that changes nothing.

Notebook 05, run in the folder where notebook 04 saved its run, must say it uses that run. Two more checks of the
Colab path follow, each in a fresh kernel and folder (a fresh Colab runtime): the setup cell, with google.colab
simulated and the repository URL pointed at a missing path, must stop Run all with one sentence, not a traceback;
and notebook 05, with no runs/ folder, must say in plain words that it uses the shipped weights.
"""
from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from vae_lab.lessons.setup import assigned_names
from vae_lab.tools.series import QUICK

KERNEL = "colab"
ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks
# The series' quick settings, with another seed than the lab's, and the folder where 04 saves its run with them
SMALL = {**QUICK, "seed": 2, "run_dir": "runs/04_training/epochs=1,seed=2,train_size=2000"}
DRIVE_WIDGETS = """
import json as _json, ipywidgets as _w
_registry = _w.Widget.widgets if hasattr(_w.Widget, "widgets") else _w.Widget._active_widgets  # ipywidgets 7 / 8
_live = lambda kind: [w for w in list(_registry.values()) if isinstance(w, kind)]
_pictures = lambda: [bytes(w.value) for w in _live(_w.Image)]
_moved = []
for _control in _live((_w.FloatSlider, _w.IntSlider)) + _live(_w.Button):
    _before = _pictures()
    if isinstance(_control, _w.Button):
        _control.click()
    else:
        _control.value = _control.min if _control.value != _control.min else _control.max
    _moved.append([type(_control).__name__, _control.description, _pictures() != _before])
print(_json.dumps(_moved))
"""


def install_kernel() -> None:
    """This virtualenv's own kernel, started with frozen modules off as ipykernel 7 does: with ipykernel 6.17 on
    Python 3.11 the debugger otherwise prints a warning about frozen modules at every start."""
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab's stack", "language": "python"}))


def parameter_cell(notebook: nbformat.NotebookNode) -> int | None:
    return next((i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])), None)


def with_small_parameters(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Insert a cell after the parameters cell that overrides the ones SMALL names, as papermill would."""
    index = parameter_cell(notebook)
    if index is None:
        return notebook
    lines = [f"{name} = {SMALL[name]!r}" for name in sorted(assigned_names(notebook.cells[index].source) & set(SMALL))]
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell("\n".join(lines)))
    return notebook


SIMULATED_COLAB = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
REPO_LINE = re.compile(r'^REPO, RELEASE = "([^"]+)", "([^"]+)"', re.M)  # the setup cell's one naming of the URL
SHIPPED_WEIGHTS = "Using the weights shipped with vae_lab ('vae'), because notebook 04 has saved no run in runs/04_training/"


def run_until_error(sources: list[str], scratch: Path) -> nbformat.NotebookNode:
    """Run ``sources`` as the cells of a new notebook in a fresh kernel in ``scratch``, stopping at the first error as
    Run all does; return the notebook with its outputs."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=900, resources={"metadata": {"path": str(scratch)}})
    try:
        client.execute()
    except CellExecutionError:
        pass
    return notebook


def install_failure_problems(path: Path) -> list[str]:
    """Run ``path``'s setup cell in simulated Colab with the repository URL pointed at a missing path: it must show one
    sentence naming that URL (no traceback, no CalledProcessError or ModuleNotFoundError) and stop Run all."""
    setup = next(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    named = REPO_LINE.search(setup)
    if named is None:
        return [f"{path}: the setup cell has no line REPO, RELEASE = \"…\", \"…\" (run make headers)"]
    with tempfile.TemporaryDirectory(prefix="colab-install-") as scratch:
        missing = (Path(scratch) / "no-such-repository").as_uri()
        failing = setup.replace(f'"{named[1]}"', f'"{missing}"', 1)
        notebook = run_until_error([SIMULATED_COLAB, failing, "print('Run all went on')"], Path(scratch))
    outputs, after = notebook.cells[1].outputs, notebook.cells[2].outputs
    shown = [ANSI_COLOURS.sub("", line) for output in outputs for line in output.get("traceback", [output.get("text", "")])]
    problems = []
    if len(shown) != 1 or "\n" in shown[0].strip() or not shown[0].startswith("could not install vae_lab"):
        problems.append(f"{path}: a failed install showed {shown!r}, not one sentence starting 'could not install vae_lab'")
    elif missing not in shown[0] or any(word in shown[0] for word in ("Traceback", "CalledProcessError", "ModuleNotFound")):
        problems.append(f"{path}: the install failure does not name {missing} plainly: {shown[0]!r}")
    if after:
        problems.append(f"{path}: Run all went on after the failed install")
    return problems


def model_sentence(notebook: nbformat.NotebookNode) -> str:
    """What notebook 05's model-loading cell printed."""
    loading = next(cell for cell in notebook.cells if "load_run_or_pretrained(" in cell.source)
    return "".join(output.get("text", "") for output in loading.get("outputs", [])).strip()


def shared_runtime_problems(path: Path, notebook: nbformat.NotebookNode, scratch: Path) -> list[str]:
    """Notebook 05, run in the runtime where notebook 04 saved its run (SMALL's run_dir), must use that run and say so;
    without that run, it must say it uses the shipped weights."""
    run_saved = (scratch / SMALL["run_dir"] / "checkpoint.pt").is_file()
    expected = f"Using notebook 04's run in {SMALL['run_dir']}: " if run_saved else "Using the weights shipped with vae_lab"
    said = model_sentence(notebook)
    return [] if said.startswith(expected) else [f"{path}: the model cell said {said[:300]!r}, expected {expected!r}"]


def fresh_runtime_problems(path: Path) -> list[str]:
    """Run notebook 05 up to its model-loading cell in a fresh folder (no runs/): it must say in plain words that it
    uses the shipped weights because notebook 04 saved no run here."""
    cells = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    loading = next(i for i, source in enumerate(cells) if "load_run_or_pretrained(" in source)
    with tempfile.TemporaryDirectory(prefix="colab-fresh-") as scratch:
        said = model_sentence(run_until_error(cells[: loading + 1], Path(scratch)))
    if not said.startswith(SHIPPED_WEIGHTS) or "\n" in said:
        return [f"{path}: in a fresh runtime the model cell said {said[:300]!r}, not one sentence starting "
                f"{SHIPPED_WEIGHTS!r}"]
    return []


def student_visible_noise(notebook: nbformat.NotebookNode) -> list[str]:
    """Every stderr stream, warning or error shown under a cell."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") + output.get("data", {}).get("text/plain", "")
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.get("name") == "stderr" or "Warning" in text:
                found.append(f"cell {index}: {text.strip()[:300]}")
    return found


def run(path: Path, scratch: Path) -> list[str]:
    """Execute one notebook and drive its widgets; return what went wrong (nothing: an empty list)."""
    notebook = with_small_parameters(nbformat.read(path, as_version=4))
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=900, resources={"metadata": {"path": str(scratch)}})
    problems = []
    with client.setup_kernel():
        probe = nbformat.v4.new_code_cell(DRIVE_WIDGETS)
        notebook.cells.append(probe)
        try:
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
        except CellExecutionError as error:
            last_line = ANSI_COLOURS.sub("", str(error)).strip().splitlines()[-1]
            return [f"{path} raised: {last_line[:300]}"]
    problems += [f"{path} {line}" for line in student_visible_noise(notebook)]
    if path.stem == "05_generation":
        problems += shared_runtime_problems(path, notebook, scratch)
    # the kernel may send one print in several stream messages ('[...]', then '\n'): join them before parsing
    printed = "".join(output.get("text", "") for output in probe.outputs if output.get("name") == "stdout")
    try:
        moved = json.loads(printed)
    except json.JSONDecodeError:
        return problems + [f"{path}: the widget probe printed {printed[:300]!r}, not its JSON list"]
    for kind, description, changed in moved:
        if not changed:
            problems.append(f"{path}: the {kind} {description!r} changed no picture")
    return problems


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: run_notebooks.py NOTEBOOK...", file=sys.stderr)
        return 2
    install_kernel()
    problems = []
    with tempfile.TemporaryDirectory(prefix="colab-content-") as scratch:
        for path in map(Path, paths):
            started = time.perf_counter()
            found = run(path, Path(scratch))
            print(f"{'ok  ' if not found else 'FAIL'} {path} ({time.perf_counter() - started:.0f} s)", flush=True)
            problems += found
    checks = [("a failed install says one sentence", install_failure_problems, Path(paths[0]))]
    checks += [("a fresh runtime says it uses the shipped weights", fresh_runtime_problems, Path(path))
               for path in paths if Path(path).stem == "05_generation"]
    for label, check, path in checks:
        found = check(path)
        print(f"{'ok  ' if not found else 'FAIL'} {path}: {label}", flush=True)
        problems += found
    print("\n".join(problems) or f"all {len(paths)} notebooks ran clean on Colab's stack")
    print(f"{len(paths) - len({p.split()[0].rstrip(':') for p in problems})} passed, "
          f"{len({p.split()[0].rstrip(':') for p in problems})} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
