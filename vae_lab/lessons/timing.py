"""How long a lesson's step took, printed by the notebook from its own run instead of promised in its prose."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Print "{what} took N s on this machine" when the block ends (tests/sanitize.cfg masks the N s for nbval)."""
    started = time.perf_counter()
    yield
    print(f"{what} took {time.perf_counter() - started:.0f} s on this machine")
