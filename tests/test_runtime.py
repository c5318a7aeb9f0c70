"""`import vae_lab` changes nothing process-wide; `configure_process` is what the starter of a process calls."""
import subprocess
import sys
from pathlib import Path

import pytest

from vae_lab.runtime import cgroup_cpus, choose_threads

DENORMAL_KEPT = "torch.tensor([1e-40]).mul(1.0).item() != 0"  # False once denormals are flushed to zero


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_the_lab_changes_neither_the_environment_nor_the_float_mode():
    code = ("import os, torch; e = dict(os.environ); m = torch.get_default_dtype(); "
            "import vae_lab, vae_lab.train, vae_lab.evaluate, vae_lab.lessons.setup; from vae_lab import VAE, fit; "
            f"print(dict(os.environ) == e, torch.get_default_dtype() == m, {DENORMAL_KEPT})")
    assert run(code) == "True True True"


def test_configure_process_flushes_denormals_and_sets_the_reproducibility_switches():
    code = ("import os, torch; from vae_lab.runtime import configure_process; configure_process(); "
            f"print(os.environ['MKL_CBWR'], os.environ['MKL_DYNAMIC'], os.environ['OMP_DYNAMIC'], {DENORMAL_KEPT})")
    assert run(code) == "AUTO FALSE FALSE False"


def test_importing_the_lab_loads_no_torch_until_a_name_is_used():
    code = ("import sys, vae_lab; before = 'torch' in sys.modules; from vae_lab import VAE; "
            "print(before, 'torch' in sys.modules, VAE.__module__, sorted(vae_lab.__all__) == sorted(dir(vae_lab))[-15:])")
    assert run(code).split()[:3] == ["False", "True", "vae_lab.model"]


# ---- the thread count: the user's, else what the process may really use ----

QUIET = lambda: 0.0  # noqa: E731 -- no other process busy


def quota_root(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def test_a_cgroup_quota_of_one_cpu_gives_one_thread(tmp_path):
    choice = choose_threads({}, quota_root(tmp_path, "100000 100000"), affinity={0, 1, 2, 3}, busy=QUIET)
    assert choice.threads == 1 and "a cgroup quota of 1 CPU" in choice.reason


def test_a_fractional_quota_rounds_up_and_never_exceeds_the_affinity(tmp_path):
    assert choose_threads({}, quota_root(tmp_path, "150000 100000"), affinity={0, 1, 2, 3}, busy=QUIET).threads == 2
    assert choose_threads({}, quota_root(tmp_path, "800000 100000"), affinity={0, 1}, busy=QUIET).threads == 2


def test_cgroup_v1_quota_is_read_when_there_is_no_cpu_max(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpus(tmp_path) == 0.5
    assert choose_threads({}, tmp_path, affinity={0, 1}, busy=QUIET).threads == 1


def test_no_quota_gives_the_affinity_count(tmp_path):
    for root in (quota_root(tmp_path, "max 100000"), tmp_path / "no-cgroup-here"):
        assert cgroup_cpus(root) is None
        assert choose_threads({}, root, affinity={0, 1, 2}, busy=QUIET, machine_cpus=3).threads == 3


def test_an_affinity_of_one_cpu_gives_one_thread_without_sampling_the_load(tmp_path):
    never = lambda: pytest.fail("one usable CPU needs no load sample")  # noqa: E731
    assert choose_threads({}, quota_root(tmp_path, "max 100000"), affinity={3}, busy=never).threads == 1


def test_cpus_that_other_processes_keep_busy_are_left_to_them(tmp_path):
    root = quota_root(tmp_path, "max 100000")
    threads = lambda busy: choose_threads({}, root, affinity={0, 1}, busy=lambda: busy, machine_cpus=2).threads  # noqa
    assert [threads(busy) for busy in (0.0, 0.4, 0.6, 1.0, 2.0, 7.5)] == [2, 2, 1, 1, 1, 1]


def test_an_explicit_thread_count_wins_over_affinity_quota_and_load(tmp_path):
    root = quota_root(tmp_path, "100000 100000")
    busy = lambda: pytest.fail("an explicit choice needs no load sample")  # noqa: E731
    for environ, expected in [({"OMP_NUM_THREADS": "3"}, 3), ({"MKL_NUM_THREADS": "2"}, 2),
                              ({"VAE_LAB_THREADS": "4", "OMP_NUM_THREADS": "1"}, 4)]:
        choice = choose_threads(environ, root, affinity={0}, busy=busy)
        assert choice.threads == expected and "=" in choice.reason


def test_a_thread_count_that_is_no_number_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"^VAE_LAB_THREADS is 'two', not a number of threads: .*unset it"):
        choose_threads({"VAE_LAB_THREADS": "two"}, tmp_path, affinity={0, 1}, busy=QUIET)
    with pytest.raises(ValueError, match="OMP_NUM_THREADS is '0'"):
        choose_threads({"OMP_NUM_THREADS": "0"}, tmp_path, affinity={0, 1}, busy=QUIET)


def test_configure_process_sets_torch_to_the_chosen_count_and_returns_it():
    code = ("import os, torch; os.environ['VAE_LAB_THREADS'] = '2'; os.environ.pop('OMP_NUM_THREADS', None); "
            "from vae_lab.runtime import configure_process; c = configure_process(); "
            "print(c.threads, torch.get_num_threads(), c)")
    assert run(code) == "2 2 2 torch threads (VAE_LAB_THREADS=2)"
