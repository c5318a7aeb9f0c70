"""Run the notebook series headless with papermill, stopping at the first failing notebook."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lessons.setup import assigned_names

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
# Small settings for a quick run of the series, a smoke test of a few minutes: each notebook takes the ones its
# parameters cell has. Notebook 04 then trains into the run folder that notebook 05 draws.
QUICK = {"epochs": 1, "train_size": 2000, "repeats": 1000, "warmup_epochs": 1, "n_points": 500, "n_test": 100,
         "iwae_samples": 50, "n_samples": 500, "timing_steps": 2, "train_2d": True}


class NotebookFailed(RuntimeError):
    """A notebook of the series raised; the message names the notebook, the cell and the error."""


def series(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in teaching order."""
    found = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks_dir}; run from a checkout of the lab")
    return found


def read_notebook(path: Path) -> Any:
    """``path`` read as a valid Jupyter notebook (nbformat 4), or `NotebookFailed` saying in one sentence what it is
    instead: not JSON, JSON that is no notebook, or a notebook that breaks nbformat's schema."""
    import nbformat

    if not path.is_file():  # a pipe or a device named like a notebook: never read
        raise NotebookFailed(f"{path} is not a file; move it out of {path.parent}")
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        if not all(isinstance(cell.get("source"), str) for cell in notebook.cells):
            raise ValueError("a cell's source is not text")
        return notebook
    except OSError as error:
        raise NotebookFailed(f"cannot read {path} ({error.strerror or error})") from None
    except Exception as error:  # nbformat and jsonschema fail in many ways on a file that is no notebook
        detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise NotebookFailed(f"{path} is not a valid Jupyter notebook ({detail}); restore it (git checkout -- "
                             f"{path.name} in a checkout), or move it out of {path.parent}") from None


def parameter_names(notebook: Path) -> set[str]:
    """The names that ``notebook``'s cell tagged ``parameters`` assigns."""
    cell = next((c for c in read_notebook(notebook).cells if "parameters" in c.metadata.get("tags", [])), None)
    try:
        return assigned_names(cell.source) if cell else set()
    except SyntaxError as error:
        raise NotebookFailed(f"{notebook}: its parameters cell is not valid Python ({error.msg}, line "
                             f"{error.lineno}); fix that cell") from None


def quick_parameters(notebook: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """``QUICK``'s settings that ``notebook`` takes, and ``run_dir``, if given, as its training run if it names one."""
    names = parameter_names(notebook)
    wanted = QUICK if run_dir is None else {**QUICK, "run_dir": str(run_dir)}
    return {name: value for name, value in wanted.items() if name in names}


def kernel_manager_class() -> type:
    """jupyter_client's kernel manager, minus the SIGINT it sends a kernel just before asking it to shut down.

    A finished notebook's kernel has nothing to interrupt, but on a busy machine the signal can land while ipykernel
    is still leaving its last message handler, which then logs "KeyboardInterrupt caught in kernel." to stderr.
    The shutdown request itself, and the terminate and kill that back it up, are unchanged.
    """
    from jupyter_client.manager import AsyncKernelManager

    class WithoutShutdownInterrupt(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

    return WithoutShutdownInterrupt


def execute_notebook(notebook: Path, target: Path, parameters: dict[str, Any] | None = None) -> None:
    """Execute ``notebook`` into ``target`` with papermill, in the notebook's folder as a student would run it.

    The kernel gets CurveZMQ keys from its manager: without them ipykernel ≥ 7.4 warns on every start that it is
    "running over TCP without encryption" (jupyter_client provisions keys only when asked: 'auto' does so for a
    kernelspec that declares curve support, as ipykernel's does).
    """
    import papermill
    from traitlets.config import Config as JupyterConfig

    papermill.execute_notebook(str(notebook), str(target), parameters=parameters or {}, cwd=str(notebook.parent),
                               kernel_name="python3", progress_bar=False, kernel_manager_class=kernel_manager_class(),
                               config=JupyterConfig({"KernelManager": {"transport_encryption": "auto"}}))


def run_series(out_dir: Path, parameters: dict[str, dict[str, Any]] | None = None,
               notebooks_dir: Path = NOTEBOOKS_DIR, progress: bool = True, quick: bool = False) -> list[Path]:
    """Execute every notebook in order into ``out_dir``; ``parameters`` maps a notebook's stem to its papermill
    parameters. ``quick`` adds the ``QUICK`` settings, with notebook 04's run in ``out_dir/runs``."""
    from papermill.exceptions import PapermillExecutionError

    notebooks = series(notebooks_dir)
    for notebook in notebooks:  # every notebook is checked before the first one runs
        read_notebook(notebook)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        target = out_dir / notebook.name
        chosen = quick_parameters(notebook, out_dir.resolve() / "runs" / "04_training") if quick else {}
        if progress:
            print(f"running {notebook.name} ...", flush=True)
        try:
            execute_notebook(notebook, target, {**chosen, **(parameters or {}).get(notebook.stem, {})})
        except PapermillExecutionError as error:
            raise NotebookFailed(f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
                                 f"{error.ename}: {error.evalue}; the executed notebook is {target}") from None
        written.append(target)
    return written


def refresh_notebook(notebook: Path) -> None:
    """Re-execute ``notebook`` in place, its stored outputs becoming nbval's new reference, without the timings and
    timestamps papermill and nbclient add to every cell (they would change on every run and say nothing)."""
    import nbformat

    execute_notebook(notebook, notebook)
    executed = nbformat.read(notebook, as_version=4)
    executed.metadata.pop("papermill", None)
    for cell in executed.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    nbformat.write(executed, notebook)


if __name__ == "__main__":  # python -m vae_lab.tools.series NOTEBOOK...: refresh the stored outputs of each
    import sys

    for path in sys.argv[1:]:
        refresh_notebook(Path(path))
