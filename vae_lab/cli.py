"""The command line: ``python -m vae_lab data | train | sample | evaluate | report | notebooks``."""
from __future__ import annotations

import argparse
import errno
import json
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .config import MAX_IMPORTANCE_SAMPLES, MAX_SEED, Config, require_memory
from .data import DataError, load_mnist, prepare_mnist
from .evaluate import evaluate
from .history import History
from .lessons.setup import run_folder
from .model import build_model, sample_digits
from .plots import loss_curve, reconstruction_grid, sample_grid, save_figure, show_images
from .runtime import configure_process
from .tools.report import build_report, markdown_table, reference_quality, write_report
from .tools.series import NOTEBOOKS_DIR, NotebookFailed, run_series
from .train import fit

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def number_in(least: int, most: int) -> Callable[[str], int]:
    """Read a whole number from ``least`` to ``most`` from the command line."""
    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"must be a whole number from {least} to {most}, got {value}")
        return value
    return read


def setting_type(annotation: str) -> Callable[[str], Any]:
    """How to read a `Config` field from the command line: its type by name, and "none" for an optional one.

    Only the conversion happens here; `Config` checks the value.
    """
    base = {"int": int, "float": float, "str": str}[annotation.replace(" | None", "")]

    def read(text: str) -> Any:
        if annotation.endswith("| None") and text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            kind = {"int": "a whole number", "float": "a number such as 1e-3"}[annotation.replace(" | None", "")]
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    return read


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `Config` field (``--latent-dim`` for ``latent_dim``), with its help and default from `Config`."""
    for setting in fields(Config):
        flag, text = "--" + setting.name.replace("_", "-"), f"{setting.metadata['help']} (default {setting.default})"
        if setting.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, type=setting_type(setting.type), choices=setting.metadata["choices"] or None,
                                default=argparse.SUPPRESS, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae_lab", description="VAE Lab: a variational autoencoder on MNIST.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="prepare and verify MNIST")
    data.add_argument("--root", type=Path, default=None, help="dataset folder (default: the checkout's data/)")

    train = commands.add_parser("train", help="train the VAE and write its checkpoint, history and figures")
    add_config_flags(train)
    train.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    train.add_argument("--out", type=Path, default=Path("runs/vae"), help="output folder (default: runs/vae)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--overwrite", action="store_true", help="replace the run saved in --out with a new one")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    notebooks = commands.add_parser("notebooks", help="execute the notebook series headless with papermill")
    notebooks.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")
    notebooks.add_argument("--quick", action="store_true",
                           help="small settings (1 epoch on 2,000 images, …): a smoke test of the series in minutes")
    notebooks.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, metavar="DIR",
                           help="the series to run (default: the checkout's notebooks/; notebooks/student for the "
                                "student edition)")

    sample = commands.add_parser("sample", help="decode samples from N(0, I) with a trained checkpoint")
    sample.add_argument("checkpoint", type=Path)
    sample.add_argument("--n", type=positive_int, default=64)
    sample.add_argument("--seed", type=number_in(0, MAX_SEED), default=0)
    sample.add_argument("--out", type=Path, default=Path("samples.png"))

    evaluate = commands.add_parser("evaluate", help="test ELBO and importance-weighted NLL of a checkpoint, as JSON")
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--iwae-samples", type=number_in(1, MAX_IMPORTANCE_SAMPLES), default=5000, metavar="K",
                          help="importance samples per image (default 5000, as Burda et al.; 1 gives the ELBO only)")
    evaluate.add_argument("--binarized", action="store_true",
                          help="score dynamically binarised test images (true likelihoods; compare with papers)")
    evaluate.add_argument("--test-size", type=positive_int, default=None, help="the first N test images (default: all)")
    evaluate.add_argument("--seed", type=number_in(0, MAX_SEED), default=0, help="seed of the importance samples (default 0)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="score every model of the lab and write the results table")
    report.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: all in vae_lab/zoo.py)")
    report.add_argument("--iwae-samples", type=number_in(1, MAX_IMPORTANCE_SAMPLES), default=100, metavar="K",
                        help="importance samples per image for the NLL (default 100; `evaluate` defaults to 5000)")
    report.add_argument("--test-size", type=positive_int, default=None, help="the first N test images (default: all)")
    report.add_argument("--samples", type=positive_int, default=10_000, help="prior samples per model (default 10000)")
    report.add_argument("--retrain", action="store_true", help="train each model now instead of loading shipped weights")
    report.add_argument("--out", type=Path, default=Path("build/report"), help="folder for results.md and results.json")
    report.add_argument("--readme", type=Path, default=None, help="also replace the results section of this README")
    return parser


def run_data(args: argparse.Namespace) -> int:
    print(prepare_mnist(args.root).summary())
    return 0


def train_config(args: argparse.Namespace, base: Config) -> Config:
    """``base`` with every setting given on the command line replaced; `Config` validates the result."""
    given = {setting.name: getattr(args, setting.name) for setting in fields(Config) if hasattr(args, setting.name)}
    return Config.from_dict({**base.to_dict(), **given})


RUN_FILES = (CHECKPOINT_NAME, "history.json")  # what makes a folder hold a run


def prepare_output_folder(args: argparse.Namespace) -> None:
    """Make ``--out`` a writable folder; refuse to replace a run in it unless ``--resume`` or ``--overwrite`` says so.

    With ``--overwrite``, the old run stays until the new run's first epoch is saved over it."""
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; choose one")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=args.out).close()
    except OSError as error:
        raise ValueError(f"cannot use {args.out} as the output folder ({error.strerror}); choose another --out") from None
    found = [name for name in RUN_FILES if (args.out / name).exists()]
    if found and not args.resume and not args.overwrite:
        raise ValueError(f"{args.out} already holds a run ({', '.join(found)}); continue it with --resume, "
                         "replace it with --overwrite, or choose another --out")


def saved_epochs_line(out: Path) -> str:
    """What ``out`` holds after an interruption, read from the checkpoint on disk, and how to continue."""
    checkpoint = out / CHECKPOINT_NAME
    if not checkpoint.exists():
        return f"interrupted before the first epoch was saved; nothing was written to {checkpoint}"
    saved = len(load_checkpoint(checkpoint).history)
    return (f"interrupted: {saved} complete epoch(s) saved in {checkpoint}; "
            f"continue with: python -m vae_lab train --out {out} --resume")


def run_train(args: argparse.Namespace) -> int:
    checkpoint = args.out / CHECKPOINT_NAME
    prepare_output_folder(args)
    config = train_config(args, load_checkpoint(checkpoint).config if args.resume and checkpoint.exists() else Config())
    data = load_mnist()
    model = build_model(config)
    print(f"training {config} on {config.train_size or len(data.train_images)} images -> {args.out}")

    def report(history: History) -> None:
        history.save(args.out / "history.json")
        print(f"epoch {len(history):>3}/{config.epochs}  train {history.train_loss[-1]:8.3f}  "
              f"test {history.test_loss[-1]:8.3f}  (BCE {history.test_reconstruction[-1]:.2f} "
              f"+ KL {history.test_kl[-1]:.2f})  {history.seconds[-1]:.1f}s", flush=True)

    history = fit(model, data, device=args.device, checkpoint=checkpoint, resume=args.resume,
                  progress=not args.no_progress, on_epoch=report)
    if history.interrupted:
        if len(history):  # the epochs the checkpoint holds; report() may not have written the last one
            history.save(args.out / "history.json")
        print(saved_epochs_line(args.out), file=sys.stderr)
        return EXIT_INTERRUPTED
    history.save(args.out / "history.json")
    reconstruction_grid(model, data.test_images, path=args.out / "reconstructions.png")
    sample_grid(model, path=args.out / "samples.png")
    loss_curve(history, path=args.out / "loss_curve.png")
    print(f"test loss after {len(history)} epochs: {history.test_loss[-1]:.2f} nats per image")
    print(f"wrote {checkpoint}, history.json, reconstructions.png, samples.png, loss_curve.png in {args.out}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.checkpoint).model
    require_memory(f"drawing {args.n} samples into one figure", model.config.decoding_bytes(args.n),
                   "ask for fewer with --n (a figure shows 64 well)")
    samples = sample_digits(model, args.n, args.seed)
    save_figure(show_images(samples, nrow=max(1, round(args.n ** 0.5))), args.out)
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.checkpoint).model
    data = load_mnist().subset(test_size=args.test_size)
    scores = evaluate(model, data.test_images, data.test_labels, iwae_samples=args.iwae_samples,
                      binarized=args.binarized, seed=args.seed, progress=not args.no_progress)
    print(json.dumps({"checkpoint": str(args.checkpoint), **scores.to_dict()}))
    return 0


def run_report(args: argparse.Namespace) -> int:
    data = load_mnist().subset(test_size=args.test_size)
    show = lambda row: print(f"{row.name}: ELBO {row.elbo:.2f}, NLL {row.nll:.2f}, FD {row.fd:.2f}", flush=True)
    rows = build_report(data, args.models, args.iwae_samples, args.retrain, n_samples=args.samples, on_row=show)
    table = markdown_table(rows, args.iwae_samples, len(data.test_images), reference_quality(data, args.samples))
    written = write_report(rows, table, args.out, args.readme)
    print(table + f"wrote {', '.join(map(str, written))}")
    return 0


def run_notebooks(args: argparse.Namespace) -> int:
    figures = (args.out / "figures").resolve()
    try:
        written = run_series(args.out / "notebooks", {"05_generation": {"figures_dir": str(figures)}},
                             notebooks_dir=args.notebooks, quick=args.quick)
    except (NotebookFailed, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"executed {len(written)} notebooks into {args.out / 'notebooks'}")
    print(f"figures: {', '.join(str(p) for p in sorted(figures.glob('*.png')))}")
    training_run = run_folder("04_training", Config())
    if not args.quick and (training_run / CHECKPOINT_NAME).exists():
        history = load_checkpoint(training_run / CHECKPOINT_NAME).history
        print(f"04_training: test loss after {len(history)} epochs: {history.test_loss[-1]:.2f} nats per image "
              f"(checkpoint in {training_run})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_process()
    commands = {"data": run_data, "train": run_train, "sample": run_sample, "evaluate": run_evaluate,
                "report": run_report, "notebooks": run_notebooks}
    try:
        return commands[args.command](args)
    except (CheckpointError, DataError, ValueError, TypeError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"error: {file_error(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(saved_epochs_line(args.out) if args.command == "train" else
              f"interrupted before {args.command} finished; every file it writes is written whole or not at all",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def file_error(error: OSError) -> str:
    """An error from the file system as one sentence naming the path and the fix."""
    fixes = {errno.ENOSPC: "the disk is full; free some space or choose a folder on another disk",
             errno.EROFS: "the folder is read-only; choose a writable folder",
             errno.EACCES: "permission denied; choose a folder you may write to",
             errno.EISDIR: "that is a folder, not a file; give a file name such as samples.png",
             errno.ENOTDIR: "part of that path is a file, not a folder; choose another path",
             errno.ENOENT: "no such file or folder; check the path"}
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{fixes.get(error.errno, f'{error.strerror or error}; check the path and the disk')}"
