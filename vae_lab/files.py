"""Files that are never left half-written, and runs that never share one: write to a temporary name beside the
target, then rename; hold an OS lock on a run for as long as it writes.

Ctrl-C (and SIGTERM or SIGHUP, where `stop_like_ctrl_c` handles them) waits until a write has finished, the
temporary files of a killed process are removed by the next write, and a rewritten file keeps its permissions.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .config import LabError

if os.name == "posix":
    import fcntl


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as Ctrl-C's KeyboardInterrupt is, so that a run stops the same way; ``signal`` is
    the signal's number."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.signal = number


def stop_like_ctrl_c(number: int, frame: object) -> None:
    """A signal handler that raises `Terminated`: install it for SIGTERM and SIGHUP in a process's main thread."""
    raise Terminated(number)


STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def interruptions_deferred() -> Iterator[None]:
    """Run a block to its end before acting on Ctrl-C (or SIGTERM, SIGHUP): a signal that arrives meanwhile is acted
    on once the block is done, by the handler it would have met. Only in the main thread, and only for signals whose
    handler is Python's KeyboardInterrupt or `stop_like_ctrl_c`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {number: signal.getsignal(number) for number in STOPPING_SIGNALS}
    deferred = {number: handler for number, handler in handlers.items()
                if handler is signal.default_int_handler or handler is stop_like_ctrl_c}
    received: list[int] = []
    for number in deferred:
        signal.signal(number, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for number, handler in deferred.items():
            signal.signal(number, handler)
    if received:
        deferred[received[0]](received[0], None)


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


def _keep_permissions(temporary: str, path: Path) -> None:
    """Give ``temporary`` the permissions (and, where allowed, the owner) of the file ``path`` it is about to replace,
    or those a plain open() would give a new file."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        return
    os.chmod(temporary, stat.S_IMODE(old.st_mode))
    new = os.stat(temporary)
    if hasattr(os, "chown") and (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.chown(temporary, old.st_uid, old.st_gid)
        except OSError:  # only root may give a file away; the permissions are kept either way
            pass


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(handle)`` to a temporary file beside ``path``, then rename it over ``path``.

    A failure (disk full, read-only folder, interruption) leaves any previous ``path`` untouched; Ctrl-C during the
    write takes effect after it. A replaced file keeps its permissions.
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
            _keep_permissions(handle.name, path)
            os.replace(handle.name, path)
        except BaseException as error:
            Path(handle.name).unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno is not None:  # name the user's file, not the temporary one
                raise OSError(error.errno, error.strerror, str(path)) from None
            raise


class RunInUse(LabError, RuntimeError):
    """Another process holds the lock of a run; the message names it and what to do."""


_held: dict[Path, int] = {}  # the locks this process holds: lock file -> how many nested `run_lock` blocks hold it


def lock_path(path: Path) -> Path:
    """The lock file of the run whose checkpoint is ``path``: ``.<name>.lock`` beside it."""
    return path.parent / f".{path.name}.lock"


def lock_holder(lock: Path) -> str:
    """Who holds ``lock``, as its holder wrote it: 'process 4242 (python -m vae_lab train --out run)'."""
    try:
        text = lock.read_text(errors="replace")[:300].strip()
    except OSError:
        text = ""
    return text or "another process"


def command_line() -> str:
    """How this process was started, as a user would type it: 'python -m vae_lab train --out run'."""
    argv = list(sys.argv) or ["python"]
    if Path(argv[0]).name == "__main__.py":
        argv[0] = f"-m {Path(argv[0]).parent.name}"
    return " ".join(["python", *argv])


@contextmanager
def run_lock(path: Path, fix: str) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on the run whose checkpoint is ``path`` while the block runs.

    The kernel drops the lock when its process ends, however it ends, so a killed run never leaves a run locked. A
    second process is refused at once with `RunInUse`, naming the holder and ``fix``; the same process may nest
    blocks. The lock file is removed when the outermost block ends.
    """
    lock = lock_path(Path(path)).absolute()
    if lock in _held or os.name != "posix":
        _held[lock] = _held.get(lock, 0) + 1
        try:
            yield
        finally:
            _held[lock] -= 1
            if not _held[lock]:
                del _held[lock]
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunInUse(f"{path} is being written by {lock_holder(lock)}, which holds its lock ({lock}); "
                           f"wait for that run to finish, or {fix}") from None
        try:  # the file may have been removed by the holder that just released it: lock the one at this path
            same = os.path.samestat(os.fstat(descriptor), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"process {os.getpid()} ({command_line()[:200]})\n".encode())
        _held[lock] = 1
        yield
    finally:
        _held.pop(lock, None)
        lock.unlink(missing_ok=True)  # while still locked, so no other process can be holding this file
        os.close(descriptor)
