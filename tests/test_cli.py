"""The command line, run as a student would: real processes, real signals, exit codes and messages."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from vae_lab import Config, load_checkpoint
from crafted_files import one_line as only_line, run_forked
from vae_lab.cli import build_parser, main, train_config

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--train-size", "24000", "--hidden-dim", "200", "--epochs", "3"]


# One thread in every child: two-thread runs on this 2-core machine have, rarely (2 of 4 CI runs), diverged
# between processes under load, a defect still open; the two-thread case is tested in test_reproducibility.py.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "vae_lab", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **ONE_THREAD}, **kwargs)


def losses(folder):
    history = json.loads((folder / "history.json").read_text())
    return {k: v for k, v in history.items() if k not in ("seconds", "interrupted")}


def weights(folder):
    return load_checkpoint(folder / "checkpoint.pt").model.state_dict()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run that the interrupted ones must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference")
    result = cli("train", *SMALL, "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


def test_train_writes_checkpoint_history_and_three_figures(reference):
    assert {p.name for p in reference.iterdir()} >= {"checkpoint.pt", "history.json", "reconstructions.png",
                                                     "samples.png", "loss_curve.png"}
    assert len(losses(reference)["test_loss"]) == 3


def test_train_says_how_many_torch_threads_it_computes_on_and_why(tmp_path):
    result = cli("train", "--epochs", 1, "--train-size", 256, "--out", tmp_path, "--no-progress")
    assert result.returncode == 0 and "\ncomputing on 1 torch thread (OMP_NUM_THREADS=1)\n" in result.stdout


def test_sample_writes_a_png(reference, tmp_path):
    result = cli("sample", reference / "checkpoint.pt", "--n", 16, "--out", tmp_path / "s.png")
    assert result.returncode == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_data_reports_source_and_md5(tmp_path):
    result = cli("data")
    assert result.returncode == 0
    assert "source: existing files" in result.stdout and "6bbc9ace898e44ae57da46a324031adb  ok" in result.stdout


def start_and_interrupt(out, sig):
    """Start a run and send ``sig`` early in epoch 2 (leaving most of an epoch for the signal to arrive),
    as the progress bar counts batches."""
    # Unbuffered, so the progress bar reaches the pipe as it is drawn (a piped stdout is block-buffered); and
    # SIGINT back to its default, which a shell ignores for background jobs (CI may run us in one).
    process = subprocess.Popen([sys.executable, "-m", "vae_lab", "train", *SMALL, "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(chunk) for chunk in iter(lambda: process.stdout.read1(256), b"")])
    reader.start()
    deadline = time.time() + 300
    while True:
        counts = re.findall(rb"\| *(\d+)/(\d+) \[", bytes(seen))
        if counts and int(counts[-1][0]) >= int(counts[-1][1]) / 3 + 5:  # 3 epochs: a few batches into epoch 2
            break
        assert process.poll() is None and time.time() < deadline, "the run ended before epoch 2"
        time.sleep(0.01)
    process.send_signal(sig)
    process.wait(timeout=60)
    reader.join()
    return process.returncode, process.stderr.read().decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_same_history_and_weights(reference, tmp_path, sig):
    code, stderr = start_and_interrupt(tmp_path, sig)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert len(saved.history) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no partial file under any name
    if sig == signal.SIGINT:
        assert code == 130
        assert stderr.strip().splitlines()[-1].startswith(f"interrupted: {len(saved.history)} complete epoch(s) saved in")
        assert "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL
        assert (tmp_path / ".checkpoint.pt.lock").exists(), "a killed run leaves its lock file, but not its lock"
    result = cli("train", "--out", tmp_path, "--resume", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".checkpoint.pt.lock").exists()
    assert losses(tmp_path) == losses(reference)
    for (name, a), b in zip(weights(reference).items(), weights(tmp_path).values()):
        assert torch.equal(a, b), name


def test_the_same_seed_gives_the_same_history_in_two_processes(reference, tmp_path):
    assert cli("train", *SMALL, "--out", tmp_path, "--no-progress").returncode == 0
    assert losses(tmp_path) == losses(reference)


@pytest.mark.parametrize("args, words", [
    (["train", "--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["train", "--batch-size", "abc"], "argument --batch-size: expected a whole number, got 'abc'"),
    (["train", "--lr", "5"], "lr must be a number between 0 and 1, got 5.0"),
    (["train", "--latent-dim", "-2"], "latent_dim must be a positive integer, got -2"),
    (["train", "--architecture", "rnn"], "argument --architecture: invalid choice: 'rnn'"),
    (["train", "--lr-final", "abc"], "argument --lr-final: expected a number such as 1e-3, got 'abc'"),
    (["train", "--device", "tpu"], "unknown device 'tpu'; use 'auto', 'cpu', 'cuda' or 'mps'"),
    (["train", "--iwae-samples", "5", "--beta", "4"], "only with beta=1 and no warm-up or free bits; set iwae_samples=1"),
    (["sample", "missing.pt"], "no checkpoint at missing.pt; train one with"),
    (["sample", "x.pt", "--n", "0"], "argument --n: must be positive, got 0"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_arguments_get_one_clear_line_and_exit_code_2(args, words, tmp_path, capsys):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "out")]
    try:
        code = main(args)
    except SystemExit as exit:  # argparse rejects the arguments before anything runs
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_bad_checkpoints_and_folders_from_the_command_line(reference, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((reference / "checkpoint.pt").read_bytes()[:3000])
    result = cli("sample", truncated)
    assert result.returncode == 2 and "is truncated or corrupted" in result.stderr and "Traceback" not in result.stderr

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = cli("train", "--out", blocker / "run", "--no-progress")
    assert result.returncode == 2 and "choose another --out" in result.stderr

    before = (reference / "checkpoint.pt").read_bytes()
    result = cli("train", "--out", reference, "--resume", "--latent-dim", "5", "--no-progress")
    assert result.returncode == 2 and "latent_dim=20 there but 5 here" in result.stderr
    assert (reference / "checkpoint.pt").read_bytes() == before


# Every setting differs from its default (beta and warm-up stay, because the IWAE bound allows no other).
EVERY_SETTING_CHANGED = Config(batch_size=64, epochs=3, latent_dim=8, hidden_dim=100, lr=2e-3, seed=7, train_size=500,
                               binarize=True, lr_final=1e-3, architecture="conv", hidden_layers=2, conditional=True,
                               likelihood="continuous_bernoulli", iwae_samples=3)


def flags(config: Config) -> list[str]:
    flag = lambda name, value: f"--{'' if value else 'no-'}{name}" if isinstance(value, bool) else f"--{name}={value}"
    return [flag(name.replace("_", "-"), value) for name, value in config.to_dict().items()]


@pytest.mark.parametrize("config", [EVERY_SETTING_CHANGED, Config(beta=4.0, warmup_epochs=2, train_size=None)])
def test_every_config_setting_has_a_train_flag(config):
    assert train_config(build_parser().parse_args(["train", *flags(config)]), Config()) == config


def test_flags_override_a_resumed_runs_settings_and_none_clears_an_optional_one():
    args = build_parser().parse_args(["train", "--no-binarize", "--train-size", "none", "--epochs", "5"])
    assert train_config(args, EVERY_SETTING_CHANGED) == dataclasses.replace(
        EVERY_SETTING_CHANGED, binarize=False, train_size=None, epochs=5)


def test_the_cli_prints_one_json_line_with_elbo_and_nll(capsys):
    assert main(["evaluate", "vae_lab/pretrained/vae.pt", "--iwae-samples", "10", "--test-size", "50",
                 "--binarized", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    scores = json.loads(lines[0])
    assert scores["iwae_samples"] == 10 and scores["binarized"] is True and scores["test_images"] == 50
    assert 60 < scores["nll"] < -scores["elbo"] < 130


def test_the_cli_names_a_missing_checkpoint(capsys):
    assert main(["evaluate", "no/such/checkpoint.pt", "--iwae-samples", "2"]) == 2
    assert "no checkpoint at no/such/checkpoint.pt" in capsys.readouterr().err


TERMINALS = {
    "PYTHONIOENCODING=ascii": ({"PYTHONIOENCODING": "ascii"}, str, {"σ": "sigma", "β": "beta"}),
    # file names arrive as bytes the C locale cannot decode (surrogate escapes), and are shown as those bytes
    "LC_ALL=C": ({"LC_ALL": "C", "PYTHONUTF8": "0"}, lambda text: text.encode().decode("ascii", "surrogateescape"),
                 {"σ": "\\xcf\\x83", "β": "\\xce\\xb2"}),
}


@pytest.fixture(scope="module", params=TERMINALS.values(), ids=TERMINALS.keys())
def terminal(request, reference, tmp_path_factory):
    """What the lab prints where stdout cannot show its words, for help, figures named in Greek, a file name that
    is no text, a missing checkpoint, and a reader that has gone (| head): one process forked for each."""
    environment, argument, shown = request.param
    folder = tmp_path_factory.mktemp("terminal")
    undecodable = os.fsdecode(b"\xff.png")  # a file name that is not valid text anywhere: its byte is shown as \xff
    names = ["help", "more_help", "sigma", "odd", "bad", "gone"]
    results = run_forked([
        ["train", "--help"], ["notebooks", "--help"],
        ["sample", reference / "checkpoint.pt", "--n", 4, "--out", argument(f"{folder}/σ.png")],
        ["sample", reference / "checkpoint.pt", "--n", 4, "--out", folder / undecodable],
        ["sample", argument(f"{folder}/β.pt")],
        {"argv": ["data"], "stdout": "gone"}], env=environment)
    return folder, shown, dict(zip(names, results))


def test_a_terminal_that_cannot_show_the_labs_words_gets_ascii_spellings(terminal):
    """Issue 21, case 8: UnicodeEncodeError before, after the file was written."""
    folder, shown, ran = terminal
    assert ran["help"]["rc"] == 0 and "reconstruction + beta*KL" in ran["help"]["stdout"] and not ran["help"]["stderr"]
    assert ran["more_help"]["rc"] == 0 and "2,000 images, ...)" in " ".join(ran["more_help"]["stdout"].split())
    assert ran["sigma"]["rc"] == 0 and (folder / "σ.png").read_bytes()[:4] == b"\x89PNG"
    assert ran["sigma"]["stdout"] == f"wrote 4 samples to {folder}/{shown['σ']}.png\n" and not ran["sigma"]["stderr"]
    assert ran["odd"]["rc"] == 0 and ran["odd"]["stdout"] == f"wrote 4 samples to {folder}/\\xff.png\n"
    assert (folder / os.fsdecode(b"\xff.png")).exists()
    assert ran["bad"]["rc"] == 2 and only_line(ran["bad"]["stderr"]) == (
        f"error: no checkpoint at {folder}/{shown['β']}.pt; train one with: python -m vae_lab train --out DIR")


def test_output_to_a_reader_that_has_gone_ends_quietly(terminal):
    """``python -m vae_lab data | head -1``: no BrokenPipeError, the shell's exit code for SIGPIPE."""
    gone = terminal[2]["gone"]
    assert gone["rc"] == 128 + signal.SIGPIPE and gone["stderr"] == ""
