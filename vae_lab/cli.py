"""The command line: ``python -m vae_lab data | train | sample | evaluate | report | notebooks``."""
from __future__ import annotations

import argparse
import codecs
import errno
import io
import json
import os
import signal
import sys
import tempfile
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator

from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .config import MAX_IMPORTANCE_SAMPLES, MAX_SEED, Config, LabError, require_memory
from .data import load_mnist, prepare_mnist
from .evaluate import evaluate
from .files import STOPPING_SIGNALS, Terminated, run_lock, stop_like_ctrl_c
from .history import SERIES, History
from .lessons.setup import run_folder
from .model import build_model, sample_digits
from .plots import loss_curve, reconstruction_grid, sample_grid, save_figure, show_images
from .runtime import configure_process
from .tools.report import build_report, markdown_table, reference_quality, write_report
from .tools.series import NOTEBOOKS_DIR, NotebookFailed, run_series
from .train import fit

EXIT_BAD_INPUT = 2
EXIT_SIGNAL = 128  # a command stopped by signal N exits with 128 + N, as a shell reports it
EXIT_INTERRUPTED = EXIT_SIGNAL + 2  # SIGINT: Ctrl-C


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
    """Make ``--out`` a writable folder (what it holds is judged by `existing_run`, under the run's lock)."""
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; choose one")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=args.out).close()
    except OSError as error:
        raise ValueError(f"cannot use {args.out} as the output folder ({error.strerror}); choose another --out") from None


def rebuild_history_command(out: Path) -> str:
    """The command that writes ``out``/history.json again from the run's checkpoint."""
    return (f'python -c "from vae_lab import load_checkpoint; load_checkpoint({str(out / CHECKPOINT_NAME)!r})'
            f'.history.save({str(out / "history.json")!r})"')


def existing_run(args: argparse.Namespace) -> tuple[Config, bool]:
    """The settings a run starts from and whether it resumes, from what ``--out`` holds: a run there is never
    replaced without ``--overwrite``, and ``--resume`` continues only a whole run (its checkpoint, and a history.json
    that agrees with it), or says in one line that it starts a new one."""
    checkpoint, history_file = args.out / CHECKPOINT_NAME, args.out / "history.json"
    found = [name for name in RUN_FILES if (args.out / name).exists()]
    if not args.resume:
        if found and not args.overwrite:
            raise ValueError(f"{args.out} already holds a run ({', '.join(found)}); continue it with --resume, "
                             "replace it with --overwrite, or choose another --out")
        return Config(), False
    if not found:
        print(f"--resume: {args.out} holds no run yet (no {CHECKPOINT_NAME}, no history.json), so a new run starts "
              "there", file=sys.stderr)
        return Config(), False
    rebuild = f"write it again from the checkpoint with: {rebuild_history_command(args.out)}"
    if not checkpoint.exists():
        raise ValueError(f"cannot resume: {args.out} holds history.json but no {CHECKPOINT_NAME}, which resuming "
                         f"needs (the weights, the optimizer and the random states); put {CHECKPOINT_NAME} back, or "
                         "start a new run there with --overwrite")
    saved = load_checkpoint(checkpoint)
    if not history_file.exists():
        raise ValueError(f"cannot resume: {args.out} holds {CHECKPOINT_NAME} but no history.json (moved or "
                         f"deleted?); put it back, or {rebuild}")
    on_disk = History.load(history_file, fix=f"put back a good copy before resuming, or {rebuild}")
    if len(on_disk) > len(saved.history) or any(getattr(on_disk, name) != getattr(saved.history, name)[:len(on_disk)]
                                               for name in SERIES):
        raise ValueError(f"cannot resume: {history_file} ({len(on_disk)} epochs) is not the history of {checkpoint} "
                         f"({len(saved.history)} epochs), so one of them belongs to another run; put back this run's "
                         f"history.json, or {rebuild}")
    return saved.config, True


def stopped(stop: KeyboardInterrupt) -> str:
    """How a run was stopped, in words: 'interrupted' (Ctrl-C) or 'stopped by SIGTERM'."""
    return f"stopped by {stop.args[0]}" if isinstance(stop, Terminated) else "interrupted"


def saved_epochs_line(out: Path, stop: KeyboardInterrupt) -> str:
    """What ``out`` holds after an interruption, read from the checkpoint on disk, and how to continue."""
    checkpoint = out / CHECKPOINT_NAME
    if not checkpoint.exists():
        return f"{stopped(stop)} before the first epoch was saved; nothing was written to {checkpoint}"
    try:
        saved = len(load_checkpoint(checkpoint).history)
    except (LabError, OSError) as error:
        return f"{stopped(stop)}; {checkpoint} cannot be read back ({error})"
    return (f"{stopped(stop)}: {saved} complete epoch(s) saved in {checkpoint}; "
            f"continue with: python -m vae_lab train --out {out} --resume")


def run_train(args: argparse.Namespace) -> int:
    checkpoint = args.out / CHECKPOINT_NAME
    prepare_output_folder(args)
    with run_lock(checkpoint, "train into another --out"):
        return train_run(args, checkpoint)


def train_run(args: argparse.Namespace, checkpoint: Path) -> int:
    """`run_train` once the run's folder is locked."""
    base, resume = existing_run(args)
    config = train_config(args, base)
    data = load_mnist()
    model = build_model(config)
    print(f"training {config} on {config.train_size or len(data.train_images)} images -> {args.out}\n"
          f"computing on {args.threads}")

    def report(history: History) -> None:
        history.save(args.out / "history.json")
        print(f"epoch {len(history):>3}/{config.epochs}  train {history.train_loss[-1]:8.3f}  "
              f"test {history.test_loss[-1]:8.3f}  (BCE {history.test_reconstruction[-1]:.2f} "
              f"+ KL {history.test_kl[-1]:.2f})  {history.seconds[-1]:.1f}s", flush=True)

    history = fit(model, data, device=args.device, checkpoint=checkpoint, resume=resume,
                  progress=not args.no_progress, on_epoch=report)
    if history.interrupted:
        if len(history):  # the epochs the checkpoint holds; report() may not have written the last one
            history.save(args.out / "history.json")
        print(saved_epochs_line(args.out, KeyboardInterrupt()), file=sys.stderr)
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
    spell_out_what_the_terminal_cannot_show()
    try:
        try:
            return run_command(build_parser().parse_args(argv))
        finally:
            sys.stdout.flush()  # here, not at exit, so that a reader that has gone is met below
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly, as other tools do
        silence_stdout()
        return EXIT_SIGNAL + getattr(signal, "SIGPIPE", 13)


def run_command(args: argparse.Namespace) -> int:
    """Run the command ``args`` names; every error it meets ends in one line on stderr and an exit code."""
    args.threads = configure_process()  # the train command says how many torch threads it computes on, and why
    commands = {"data": run_data, "train": run_train, "sample": run_sample, "evaluate": run_evaluate,
                "report": run_report, "notebooks": run_notebooks}
    with signals_stopping_like_ctrl_c():
        try:
            return commands[args.command](args)
        except (LabError, ValueError, TypeError, FloatingPointError) as error:
            return say(f"error: {error}", EXIT_BAD_INPUT)
        except BrokenPipeError:
            raise
        except OSError as error:
            return say(f"error: {file_error(error)}", EXIT_BAD_INPUT)
        except KeyboardInterrupt as stop:
            line = saved_epochs_line(args.out, stop) if args.command == "train" else \
                f"{stopped(stop)} before {args.command} finished; every file it writes is written whole or not at all"
            return say(line, EXIT_SIGNAL + stop.signal if isinstance(stop, Terminated) else EXIT_INTERRUPTED)


def say(line: str, code: int) -> int:
    """Print the one line a command ends with to stderr (if stderr is still there: SIGHUP may have closed the
    terminal) and return ``code``."""
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass
    return code


def silence_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit cannot fail again on a closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (a test's capture): nothing to flush
        pass


@contextmanager
def signals_stopping_like_ctrl_c() -> Iterator[None]:
    """While a command runs, SIGTERM and SIGHUP stop it as Ctrl-C does (every complete epoch kept, one line saying how
    to resume), then the handlers are put back. Only in the main thread, where signals are delivered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = [number for number in STOPPING_SIGNALS if number != signal.SIGINT]
    previous = {number: signal.signal(number, stop_like_ctrl_c) for number in stopping}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


ASCII_SPELLINGS = {"−": "-", "–": "-", "—": "--", "…": "...", "·": "*", "×": "x", "→": "->", "←": "<-", "≤": "<=",
                   "≥": ">=", "≈": "~", "±": "+/-", "‖": "||", "√": "sqrt", "∫": "integral", "∈": "in",
                   "↓": "(lower is better)", "⌊": "floor(", "⌋": ")", "½": "1/2", "²": "^2", "³": "^3", "¹": "^1",
                   "⁻": "^-", "ᵀ": "^T", "“": '"', "”": '"', "‘": "'", "’": "'", "✅": "[ok]", "❌": "[x]",
                   "█": "#", "▏": "|", "▎": "|", "▍": "|", "▌": "|", "▋": "|", "▊": "|", "▉": "|"}


def ascii_spelling(character: str) -> str:
    """An ASCII spelling of ``character``: 'beta' for β, '...' for …, 'e' for é, '\\xff' for an undecodable byte."""
    if "\udc80" <= character <= "\udcff":  # a byte of a file name that was not valid text (surrogateescape)
        return f"\\x{ord(character) - 0xDC00:02x}"
    if character in ASCII_SPELLINGS:
        return ASCII_SPELLINGS[character]
    name = unicodedata.name(character, "")
    if name.startswith("GREEK SMALL LETTER ") and " WITH " not in name:
        return name.removeprefix("GREEK SMALL LETTER ").lower()
    if name.startswith("GREEK CAPITAL LETTER ") and " WITH " not in name:
        return name.removeprefix("GREEK CAPITAL LETTER ").capitalize()
    plain = unicodedata.normalize("NFKD", character).encode("ascii", "ignore").decode()
    return plain or f"\\u{ord(character):04x}"


def _spell_in_ascii(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "".join(map(ascii_spelling, error.object[error.start:error.end])), error.end


def spell_out_what_the_terminal_cannot_show() -> None:
    """Let stdout and stderr write what their encoding cannot (β under LC_ALL=C or PYTHONIOENCODING=ascii, a file
    name that is not valid text) in ASCII spellings instead of failing with UnicodeEncodeError."""
    codecs.register_error("vae_lab.ascii", _spell_in_ascii)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="vae_lab.ascii")


def file_error(error: OSError) -> str:
    """An error from the file system as one sentence naming the path and the fix."""
    fixes = {errno.ENOSPC: "the disk is full; free some space or choose a folder on another disk",
             errno.EROFS: "the folder is read-only; choose a writable folder",
             errno.EACCES: "permission denied; choose a folder you may write to",
             errno.EISDIR: "that is a folder, not a file; give a file name such as samples.png",
             errno.ENOTDIR: "part of that path is a file, not a folder; choose another path",
             errno.ENOENT: "no such file or folder; check the path"}
    if error.errno is None:  # the lab's own sentence ("no checkpoint at x.pt; train one with: ...")
        return str(error)
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{fixes.get(error.errno, f'{error.strerror or error}; check the path and the disk')}"
