"""Process-wide switches for speed and bit-for-bit runs, and torch's thread count, set by whoever starts the process,
never on import.

The command line, the scripts, the benchmarks, the test suite and every notebook's setup cell call
`configure_process` once, before any training; a program that imports `vae_lab` as a library decides for itself.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Intel's conditions for reproducible MKL results: one code path whatever the CPU (CBWR), and no run-time choice of
# fewer threads (DYNAMIC), which would change how sums are split. They take effect when MKL or OpenMP first reads them.
REPRODUCIBLE_ENVIRONMENT = {"MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}
# A user's own thread count, first one set wins: the lab's variable, then the two that torch itself reads.
THREAD_VARIABLES = ("VAE_LAB_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")
BUSY_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class ThreadChoice:
    """How many threads torch computes on, and why (one phrase, e.g. "2 CPUs usable, 1.6 busy elsewhere")."""

    threads: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} torch thread{'s' * (self.threads != 1)} ({self.reason})"


def cgroup_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's container in CPUs, quota / period (cgroup v2 ``cpu.max``, else v1's
    ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``); None when there is no quota or no cgroup file to read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period) if int(quota) > 0 and int(period) > 0 else None
    except ValueError:
        return None


def usable_cpus(affinity: set[int], quota: float | None) -> int:
    """The CPUs this process may use: those of its affinity mask, fewer if the container's quota is smaller
    (a quota of 1.5 CPUs is 2, since torch's threads then share the second CPU's half)."""
    return max(1, min(len(affinity), math.ceil(quota))) if quota is not None else max(1, len(affinity))


def busy_cpus(seconds: float = BUSY_SAMPLE_SECONDS) -> float:
    """How many of the machine's CPUs other processes kept busy over the next ``seconds`` (/proc/stat; this process
    sleeps meanwhile), else the 1-minute load average."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total, idle = sample()
        time.sleep(seconds)
        total_after, idle_after = sample()
    except (OSError, ValueError):
        return os.getloadavg()[0]
    return (os.cpu_count() or 1) * (1 - (idle_after - idle) / max(total_after - total, 1))


def choose_threads(environ: Mapping[str, str] = os.environ, cgroup_root: Path = CGROUP_ROOT,
                   affinity: set[int] | None = None, busy: Callable[[], float] = busy_cpus,
                   machine_cpus: int | None = None) -> ThreadChoice:
    """The thread count for torch: the user's (`THREAD_VARIABLES`), else the usable CPUs less those that other
    processes keep busy, threads = clamp(round(machine CPUs − busy), 1, usable), measured once at the start.

    With as many threads as cores beside a competing load, every parallel op waits for a descheduled thread; fewer
    threads finish sooner (benchmarks/thread_share.py measures both rules side by side).
    """
    for name in THREAD_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name} is {value!r}, not a number of threads: set it to a whole number such as 1 "
                                 f"or 2, or unset it to let the lab choose")
            return ThreadChoice(int(value), f"{name}={value}")
    affinity = os.sched_getaffinity(0) if affinity is None else affinity
    quota = cgroup_cpus(cgroup_root)
    usable = usable_cpus(affinity, quota)
    limit = f"{len(affinity)} CPUs in the affinity mask" + (f", a cgroup quota of {quota:g} CPU{'s' * (quota != 1)}" if quota else "")
    if usable == 1:
        return ThreadChoice(1, f"1 usable CPU: {limit}")
    others = busy()
    free = (machine_cpus or os.cpu_count() or usable) - others
    threads = max(1, min(usable, math.floor(free + 0.5)))
    return ThreadChoice(threads, f"{usable} usable CPUs ({limit}), {others:.1f} busy with other processes")


def configure_process() -> ThreadChoice:
    """Make this process's runs repeatable and fast: MKL's reproducibility settings, denormal floats flushed to zero,
    and torch's thread count from `choose_threads`, which this returns.

    Adam's running averages for always-black pixels decay into denormal floats, which CPUs process far more slowly;
    flushing them made a 10-epoch fit 17 % faster with a bit-identical history (benchmarks/options.py). Call it before
    the first torch computation: torch's worker threads copy the floating-point mode of the thread that starts them.
    """
    choice = choose_threads()
    for name, value in REPRODUCIBLE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype)  # numpy reads each float type's limits once; read them before flushing makes subnormals 0
    torch.set_flush_denormal(True)
    torch.set_num_threads(choice.threads)
    return choice
