"""Each notebook's slowest cell, executed as nbgrader's autograder executes it: the basis of the grading cell timeout.

    python benchmarks/slowest_cells.py                    # every numbered notebook, in order
    python benchmarks/slowest_cells.py 04 06 --load 2     # two notebooks beside two busy processes

Each notebook runs in a copy in a temporary folder (as autograde runs a submission in its own folder), with no cell
timeout, and the kernel choosing its own thread count (`configure_process`) unless the environment sets one.
`--load N` starts N processes that spin on the CPU for the whole run, as another user's job would. One row per
notebook: its whole time, its slowest cell's time, index and first line; then the load average before and after.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config as JupyterConfig

from vae_lab.tools.series import NOTEBOOKS_DIR, kernel_manager_class, series

SPIN = "while True: pass"


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """A cell's execution time from nbclient's timestamps (execute_input to execute_reply)."""
    timing = cell.metadata.get("execution", {})
    start, end = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                  for key in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def run_notebook(path: Path) -> tuple[float, float, int, str]:
    """Execute ``path`` in a temporary copy; its whole seconds and its slowest cell's seconds, index and first line."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        shutil.copy(path, copy)
        notebook = nbformat.read(copy, as_version=4)
        client = NotebookClient(notebook, timeout=None, kernel_name="python3", record_timing=True,
                                resources={"metadata": {"path": folder}}, kernel_manager_class=kernel_manager_class(),
                                config=JupyterConfig({"KernelManager": {"transport_encryption": "auto"}}))
        started = time.perf_counter()
        client.execute()
        total = time.perf_counter() - started
    timed = [(cell_seconds(cell), index, cell.source.splitlines()[0] if cell.source else "")
             for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    slowest, index, line = max(timed)
    return total, slowest, index, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers (04) or paths; default: every one")
    parser.add_argument("--load", type=int, default=0, help="processes spinning on the CPU meanwhile (default 0)")
    args = parser.parse_args()
    chosen = [path for path in series(NOTEBOOKS_DIR)
              if not args.notebooks or path.name[:2] in args.notebooks or str(path) in args.notebooks]
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.load)]
    try:
        print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]} | {args.load} spinning "
              f"process(es) started by this script", flush=True)
        print(f"{'notebook':<34} {'whole s':>8} {'slowest s':>9}  slowest cell", flush=True)
        for path in chosen:
            total, slowest, index, line = run_notebook(path)
            print(f"{path.name:<34} {total:>8.0f} {slowest:>9.0f}  #{index}: {line[:60]}", flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
