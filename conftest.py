"""How `make test` shares the machine: two pytest-xdist workers (`-n 2 --dist loadscope`), one per core.

Each worker, and every kernel or child process it starts, computes on one thread, so the two never fight over the
cores. Each test module (or class) and each notebook's cells stay on one worker, in order; notebooks 04 and 05 share
one, because 05 draws the run that 04 trains.
"""
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # set before torch is imported anywhere: its thread pool reads them once
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

RUN_TOGETHER = {"notebooks/05_generation.ipynb": "notebooks/04_training.ipynb"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist's scope scheduling, with notebook 05 in notebook 04's scope."""
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return RUN_TOGETHER.get(scope, scope)

    return NotebookScopes(config, log)
