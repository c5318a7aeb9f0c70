"""write_atomically: a file is replaced whole or not at all, keeping its permissions; run_lock: one writer per run,
between real processes, released however its holder ends; signals that stop a run wait for a write to finish."""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae_lab.files import (RunInUse, Terminated, interruptions_deferred, lock_path, run_lock, stop_like_ctrl_c,
                           write_atomically)

ROOT = Path(__file__).resolve().parent.parent


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "sub" / "figure.png"
    write_atomically(target, lambda handle: handle.write(b"first"))
    write_atomically(target, lambda handle: handle.write(b"second"))
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["figure.png"]


def test_a_failed_write_keeps_the_previous_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "page.html"
    target.write_bytes(b"previous")

    def write_half_then_fail(handle):
        handle.write(b"half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, write_half_then_fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_a_replaced_file_keeps_its_permissions_and_a_new_one_gets_the_umasks(tmp_path, mode):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    os.chmod(target, mode)
    write_atomically(target, lambda handle: handle.write(b"new"))
    assert stat.S_IMODE(target.stat().st_mode) == mode and target.read_bytes() == b"new"
    umask = os.umask(0o027)
    try:
        write_atomically(tmp_path / "fresh.pt", lambda handle: handle.write(b"new"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.pt").stat().st_mode) == 0o640


HOLDER = """
import sys, time
from pathlib import Path
from vae_lab.files import run_lock
with run_lock(Path(sys.argv[1]), "wait"):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_a_second_process_is_refused_at_once_naming_the_holder_and_a_killed_holder_frees_the_run(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(checkpoint)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with pytest.raises(RunInUse, match=rf"checkpoint.pt is being written by process {holder.pid} \(python -c .*"
                                           rf"checkpoint.pt\), which holds its lock .*; wait for that run to finish, "
                                           "or use another"):
            with run_lock(checkpoint, "use another"):
                pytest.fail("two processes held one run's lock")
        assert time.monotonic() - started < 1, "refused at once, not after waiting"
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(checkpoint).exists(), "SIGKILL left the lock file, but the kernel released its lock"
    with run_lock(checkpoint, "use another"):
        assert f"process {os.getpid()}" in lock_path(checkpoint).read_text()
    assert not lock_path(checkpoint).exists()


def test_one_process_may_nest_its_own_lock(tmp_path):
    with run_lock(tmp_path / "checkpoint.pt", "x"):
        with run_lock(tmp_path / "checkpoint.pt", "x"):
            pass
        assert lock_path(tmp_path / "checkpoint.pt").exists()
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_waits_for_the_block_and_then_interrupts():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interruptions_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("the whole block")
    assert finished == ["the whole block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_handled_like_ctrl_c_also_waits_for_the_block():
    previous = signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    finished = []
    try:
        with pytest.raises(Terminated, match="SIGTERM") as caught:
            with interruptions_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                finished.append("the whole block")
        assert caught.value.signal == signal.SIGTERM and isinstance(caught.value, KeyboardInterrupt)
        assert finished == ["the whole block"] and signal.getsignal(signal.SIGTERM) is stop_like_ctrl_c
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_write_removes_the_temporaries_of_dead_processes_only(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = tmp_path / f".x.pt.{dead.pid}-abc.tmp", tmp_path / f".x.pt.{os.getpid()}-def.tmp"
    stale.write_bytes(b"left by a killed run")
    live.write_bytes(b"being written now")
    write_atomically(tmp_path / "x.pt", lambda handle: handle.write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "x.pt"]
