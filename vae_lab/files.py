"""Files that are never left half-written: write to a temporary name beside the target, then rename.

Ctrl-C waits until a write has finished, and the temporary files of a killed process are removed by the next write.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


@contextmanager
def interruptions_deferred() -> Iterator[None]:
    """Run a block to its end before acting on Ctrl-C: a SIGINT that arrives meanwhile is raised as KeyboardInterrupt
    once the block is done. Only where Python's own SIGINT handler is active (the main thread, no custom handler)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that killed processes left beside ``path`` (``.<name>.<pid>-….tmp`` whose process
    is gone); return them. Writes in progress in living processes are left alone."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)-[^/]*\.tmp")
    stale = [candidate for candidate in path.parent.glob(f".{path.name}.*.tmp")
             if (match := pattern.fullmatch(candidate.name)) and _process_is_gone(int(match.group(1)))]
    for candidate in stale:
        candidate.unlink(missing_ok=True)
    return stale


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(handle)`` to a temporary file beside ``path``, then rename it over ``path``.

    A failure (disk full, read-only folder, interruption) leaves any previous ``path`` untouched; Ctrl-C during the
    write takes effect after it.
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    with interruptions_deferred():
        try:
            handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                                                 suffix=".tmp", delete=False)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
        try:
            with handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(handle.name, 0o666 & ~umask)  # the permissions a plain open() would give
            os.replace(handle.name, path)
        except BaseException as error:
            Path(handle.name).unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno is not None:  # name the user's file, not the temporary one
                raise OSError(error.errno, error.strerror, str(path)) from None
            raise
