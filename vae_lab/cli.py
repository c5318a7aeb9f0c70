"""The command line: ``python -m vae_lab data | train | sample | evaluate | report | notebooks``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .config import Config
from .data import DataError, load_mnist, prepare_mnist
from .plots import loss_curve, reconstruction_grid, sample_grid, show_images, save_figure
from .train import CHECKPOINT_NAME, CheckpointError, History, fit, load_checkpoint

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


def learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-3, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vae_lab", description="VAE Lab: a variational autoencoder on MNIST.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="prepare and verify MNIST")
    data.add_argument("--root", type=Path, default=None, help="dataset folder (default: the checkout's data/)")

    train = commands.add_parser("train", help="train the VAE and write its checkpoint, history and figures")
    defaults = Config()
    train.add_argument("--epochs", type=positive_int, help=f"default {defaults.epochs}")
    train.add_argument("--batch-size", type=positive_int, help=f"default {defaults.batch_size}")
    train.add_argument("--latent-dim", type=positive_int, help=f"default {defaults.latent_dim}")
    train.add_argument("--hidden-dim", type=positive_int, help=f"default {defaults.hidden_dim}")
    train.add_argument("--lr", type=learning_rate, help=f"default {defaults.lr:g}")
    train.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    train.add_argument("--train-size", type=positive_int, help="train on the first N images (default: all 60,000)")
    train.add_argument("--binarize", action="store_true", default=None, help="dynamically binarised pixels")
    train.add_argument("--architecture", choices=["mlp", "conv"], help="mlp (default) or conv (notebook 10)")
    train.add_argument("--hidden-layers", type=positive_int, help=f"MLP hidden layers each way, default {defaults.hidden_layers}")
    train.add_argument("--beta", type=float, help=f"KL weight, default {defaults.beta:g} (notebook 08)")
    train.add_argument("--iwae-samples", type=positive_int, metavar="K",
                       help="train on the importance-weighted bound with K samples (default 1: the ELBO; notebook 07)")
    train.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    train.add_argument("--out", type=Path, default=Path("runs/vae"), help="output folder (default: runs/vae)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    notebooks = commands.add_parser("notebooks", help="execute the notebook series headless with papermill")
    notebooks.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build)")

    sample = commands.add_parser("sample", help="decode samples from N(0, I) with a trained checkpoint")
    sample.add_argument("checkpoint", type=Path)
    sample.add_argument("--n", type=positive_int, default=64)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", type=Path, default=Path("samples.png"))

    evaluate = commands.add_parser("evaluate", help="test ELBO and importance-weighted NLL of a checkpoint, as JSON")
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--iwae-samples", type=positive_int, default=5000, metavar="K",
                          help="importance samples per image (default 5000, as Burda et al.; 1 gives the ELBO only)")
    evaluate.add_argument("--binarized", action="store_true",
                          help="score dynamically binarised test images (true likelihoods; compare with papers)")
    evaluate.add_argument("--test-size", type=positive_int, default=None, help="the first N test images (default: all)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the importance samples (default 0)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="score every model of the lab and write the results table")
    report.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: all in vae_lab/zoo.py)")
    report.add_argument("--iwae-samples", type=positive_int, default=100, metavar="K",
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


def run_train(args: argparse.Namespace) -> int:
    checkpoint = args.out / CHECKPOINT_NAME
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot use {args.out} as the output folder ({error.strerror}); choose another --out") from None
    base = load_checkpoint(checkpoint).config if args.resume and checkpoint.exists() else Config()
    given = {key: getattr(args, key) for key in ("epochs", "batch_size", "latent_dim", "hidden_dim", "lr", "seed",
                                                 "train_size", "binarize", "architecture", "hidden_layers", "beta",
                                                 "iwae_samples")
             if getattr(args, key) is not None}
    config = Config.from_dict({**base.to_dict(), **given})
    from .model import VAE

    data = load_mnist()
    model = VAE(config)
    print(f"training {config} on {config.train_size or len(data.train_images)} images -> {args.out}")

    def report(history: History) -> None:
        history.save(args.out / "history.json")
        print(f"epoch {len(history):>3}/{config.epochs}  train {history.train_loss[-1]:8.3f}  "
              f"test {history.test_loss[-1]:8.3f}  (BCE {history.test_reconstruction[-1]:.2f} "
              f"+ KL {history.test_kl[-1]:.2f})  {history.seconds[-1]:.1f}s", flush=True)

    history = fit(model, data, device=args.device, checkpoint=checkpoint, resume=args.resume,
                  progress=not args.no_progress, on_epoch=report)
    if history.interrupted:
        print(f"interrupted: {len(history)} complete epoch(s) saved in {checkpoint}; "
              f"continue with: python -m vae_lab train --out {args.out} --resume", file=sys.stderr)
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
    digits = torch.arange(args.n) % 10 if model.config.conditional else None  # a conditional VAE draws 0, 1, …, 9, 0, …
    samples = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed), labels=digits)
    save_figure(show_images(samples, nrow=max(1, round(args.n ** 0.5))), args.out)
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    model = load_checkpoint(args.checkpoint).model
    data = load_mnist().subset(test_size=args.test_size)
    scores = evaluate(model, data.test_images, data.test_labels, iwae_samples=args.iwae_samples,
                      binarized=args.binarized, seed=args.seed, progress=not args.no_progress)
    print(json.dumps({"checkpoint": str(args.checkpoint), **scores.to_dict()}))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .report import build_report, markdown_table, reference_quality, write_report

    data = load_mnist().subset(test_size=args.test_size)
    show = lambda row: print(f"{row.name}: ELBO {row.elbo:.2f}, NLL {row.nll:.2f}, FD {row.fd:.2f}", flush=True)
    rows = build_report(data, args.models, args.iwae_samples, args.retrain, n_samples=args.samples, on_row=show)
    table = markdown_table(rows, args.iwae_samples, len(data.test_images), reference_quality(data, args.samples))
    written = write_report(rows, table, args.out, args.readme)
    print(table + f"wrote {', '.join(map(str, written))}")
    return 0


def run_notebooks(args: argparse.Namespace) -> int:
    from .series import TRAINING_RUN, NotebookFailed, run_series

    figures = (args.out / "figures").resolve()
    try:
        written = run_series(args.out / "notebooks", {"05_generation": {"figures_dir": str(figures)}})
    except NotebookFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"executed {len(written)} notebooks into {args.out / 'notebooks'}")
    print(f"figures: {', '.join(str(p) for p in sorted(figures.glob('*.png')))}")
    if (TRAINING_RUN / CHECKPOINT_NAME).exists():
        history = load_checkpoint(TRAINING_RUN / CHECKPOINT_NAME).history
        print(f"04_training: test loss after {len(history)} epochs: {history.test_loss[-1]:.2f} nats per image "
              f"(checkpoint in {TRAINING_RUN})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"data": run_data, "train": run_train, "sample": run_sample, "evaluate": run_evaluate,
                "report": run_report, "notebooks": run_notebooks}
    try:
        return commands[args.command](args)
    except (CheckpointError, DataError, ValueError, TypeError, OSError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
