"""Training: `fit`, its per-epoch `History`, and checkpoints that resume bit for bit."""
from __future__ import annotations

import json
import math
import os
import pickle
import random
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import Config
from .data import MNIST, batch_indices, binarize, binarized_test_images, write_atomically
from .evaluate import iwae_loss
from .loss import vae_loss
from .model import VAE, flatten_images
from .zoo import pretrained_names

CHECKPOINT_FORMAT = "vae_lab.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # the file a run folder keeps its checkpoint in
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or written; the message names the file and the fix."""


@dataclass
class History:
    """Per-epoch negative ELBO and its two parts (nats per image, β = 1 whatever β trains) and wall-clock seconds.

    A model trained on binarised pixels is tested on the binarised test set (`data.binarized_test_images`).
    """

    train_loss: list[float] = field(default_factory=list)
    train_reconstruction: list[float] = field(default_factory=list)
    train_kl: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_reconstruction: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.train_loss)

    def append(self, **values: float) -> None:
        for name, value in values.items():
            getattr(self, name).append(float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not set(values) <= names:
            raise ValueError(f"a history needs the keys {sorted(names)}")
        return cls(**values)

    def save(self, path: str | Path) -> None:
        """Write the history as JSON, atomically."""
        write_atomically(Path(path), lambda handle: handle.write(json.dumps(self.to_dict(), indent=1).encode()))

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by `save`, with a clear error for a damaged file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no history at {path}; train first with: python -m vae_lab train") from None
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid vae_lab history ({error}); delete it and retrain, "
                             "or restore it from the run's checkpoint.pt") from None


def choose_device(name: str | None = None) -> torch.device:
    """The device to train on: ``name`` if given, else cuda, then mps, then cpu."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'mps'") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise ValueError(f"device {name!r} is not available on this machine; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) for a repeatable run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate_loss(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None,
                  batch_size: int = 2000) -> tuple[float, float, float]:
    """Mean negative ELBO, reconstruction and KL (nats per image) on ``images``, one z sample each.

    A conditional VAE needs the digit ``labels`` as well.
    """
    was_training = model.training
    model.eval()
    device = model.device
    labels = labels if model.config.conditional else None
    sums = torch.zeros(3, dtype=torch.float64)
    for index in batch_indices(len(images), batch_size):
        batch = images[index].to(device)
        batch_labels = labels[index].to(device) if labels is not None else None
        parts = vae_loss(batch, *model(batch, batch_labels), likelihood=model.config.likelihood)
        sums += torch.stack(parts).double().cpu() * len(batch)
    model.train(was_training)
    return tuple((sums / len(images)).tolist())


def _make_optimizer(model: VAE) -> torch.optim.Adam:
    fused = model.device.type in ("cpu", "cuda")  # one fused kernel per step instead of a dozen small ones
    return torch.optim.Adam(model.parameters(), lr=model.config.lr, fused=fused)


def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(model: VAE, data: MNIST, *, device: str | None = None, checkpoint: str | Path | None = None,
        resume: bool = False, progress: bool = True,
        on_epoch: Callable[[History], None] | None = None) -> History:
    """Train ``model`` with Adam on ``data`` for ``model.config.epochs`` epochs; return the per-epoch history.

    With ``checkpoint``, the run is saved after every epoch; with ``resume=True`` as well, a run found
    there continues where it stopped and ends with the history an uninterrupted run would have.
    Interrupting (Ctrl-C, or the kernel's stop button) keeps the complete epochs: the history is
    returned with ``interrupted=True``.
    """
    config = model.config
    model.to(choose_device(device))
    train_images = flatten_images(data.train_images[:config.train_size]).to(model.device)  # moved once, not per batch
    test_images = flatten_images(data.test_images).to(model.device)
    if config.binarize:  # score binarised training on binarised test digits, the same draw every epoch
        test_images = binarized_test_images(test_images)
    train_labels = data.train_labels[:config.train_size].to(model.device) if config.conditional else None
    optimizer = _make_optimizer(model)
    shuffle = torch.Generator()
    history = History()
    seed_everything(config.seed)
    shuffle.manual_seed(config.seed)
    if resume and checkpoint is not None and Path(checkpoint).exists():
        saved = load_checkpoint(checkpoint)
        _check_resumable(saved.config, config, checkpoint)
        model.load_state_dict(saved.model.state_dict())
        optimizer.load_state_dict(saved.optimizer_state)
        _restore_rng(saved.rng_state, shuffle)
        history = saved.history

    steps_per_epoch = math.ceil(len(train_images) / config.batch_size)
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=len(history) * steps_per_epoch,
               disable=not progress, unit="batch", desc="training", file=sys.stdout)
    try:
        for epoch in range(len(history) + 1, config.epochs + 1):
            started = time.perf_counter()
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(epoch)
            sums = torch.zeros(3, dtype=torch.float64)
            for step, index in enumerate(batch_indices(len(train_images), config.batch_size, shuffle), 1):
                x = binarize(train_images[index], shuffle) if config.binarize else train_images[index]
                labels = train_labels[index] if train_labels is not None else None
                beta = config.beta_at(epoch - 1 + step / steps_per_epoch)
                if config.iwae_samples > 1:
                    parts = iwae_loss(model, x, labels, config.iwae_samples)
                else:
                    parts = vae_loss(x, *model(x, labels), beta=beta, likelihood=config.likelihood)
                if not torch.isfinite(parts.total):
                    raise FloatingPointError(
                        f"the loss became {parts.total.item()} in epoch {epoch}, batch {step}; training stopped. "
                        f"Lower the learning rate (now {config.lr:g}) or check the images for NaN.")
                optimizer.zero_grad(set_to_none=True)
                parts.total.backward()
                optimizer.step()
                sums += torch.stack([parts.reconstruction + parts.kl, parts.reconstruction, parts.kl]).detach().double().cpu() * len(x)
                bar.update()
            train = (sums / len(train_images)).tolist()
            test = evaluate_loss(model, test_images, data.test_labels)
            history.append(train_loss=train[0], train_reconstruction=train[1], train_kl=train[2],
                           test_loss=test[0], test_reconstruction=test[1], test_kl=test[2],
                           seconds=time.perf_counter() - started)
            bar.set_postfix(epoch=epoch, test_loss=f"{test[0]:.2f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, history, _rng_state(shuffle))
            if on_epoch is not None:
                on_epoch(history)
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"training interrupted: kept {len(history)} complete epoch(s) of {config.epochs}", file=sys.stderr)
    finally:
        bar.close()
    model.eval()
    return history


def _check_resumable(saved: Config, wanted: Config, path: str | Path) -> None:
    differ = {k: (v, wanted.to_dict()[k]) for k, v in saved.to_dict().items() if k != "epochs" and wanted.to_dict()[k] != v}
    if differ:
        details = ", ".join(f"{k}={old!r} there but {new!r} here" for k, (old, new) in differ.items())
        raise CheckpointError(f"cannot resume from {path}: it was trained with other settings ({details}); "
                              "resume with the same settings, or train into a new folder")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its config and history, and what resuming needs."""

    model: VAE
    config: Config
    history: History
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


def save_checkpoint(path: str | Path, model: VAE, optimizer: torch.optim.Optimizer | None = None,
                    history: History | None = None, rng_state: dict[str, Any] | None = None) -> None:
    """Write weights, config, optimizer state, history and RNG states atomically to ``path``."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": (history or History()).to_dict(),
        "rng": rng_state,
    }
    path = Path(path)
    try:
        write_atomically(path, lambda handle: torch.save(payload, handle))
    except OSError as error:
        raise CheckpointError(f"could not write {path}: {error.strerror or error}; free some disk space or choose "
                              "a writable folder (any earlier checkpoint there is unchanged)") from None


def read_tagged_file(path: str | Path, format_tag: str, kind: str, retrain: str) -> dict[str, Any]:
    """Load a file of tensors and plain values with ``weights_only=True`` and check its format tag.

    Every failure is a one-sentence error naming the file, what is wrong, and ``retrain`` (how to make a new one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} at {path}; {retrain}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"refused to load {path}: it holds Python objects other than tensors and plain values, "
                              f"and unpickling those could run code. Only load {kind}s written by vae_lab "
                              f"({str(error).splitlines()[0][:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path} is truncated or corrupted ({str(error).splitlines()[0][:120]}); "
                              f"{retrain}, or restore the file from a backup") from None
    if not isinstance(payload, dict) or payload.get("format") != format_tag:
        raise CheckpointError(f"{path} is not a vae_lab {kind} (no '{format_tag}' format tag); {retrain}")
    return payload


def load_checkpoint(path: str | Path, device: str | None = "cpu") -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint`, safely (``weights_only=True``), with clear errors."""
    path = Path(path)
    payload = read_tagged_file(path, CHECKPOINT_FORMAT, "checkpoint", "train one with: python -m vae_lab train --out DIR")
    try:
        config = Config.from_dict(payload["config"])
        history = History.from_dict(payload["history"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} has a damaged config or history ({error}); retrain it") from None
    model = VAE(config)
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path} holds weights for a different architecture than its config describes "
                              f"({str(error).splitlines()[0][:160]}); it was not written by this vae_lab") from None
    bad = [name for name, tensor in payload["model"].items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"{path} has NaN or infinite weights in {', '.join(bad)}: training diverged before "
                              "it was saved; retrain with a lower learning rate")
    model.to(choose_device(device)).eval()
    return Checkpoint(model, config, history, payload["optimizer"], payload["rng"])


def load_pretrained(name: str = "vae") -> Checkpoint:
    """A shipped model with its history: by default the lab's seed run (10 epochs, seed 1); see `zoo.py` for the rest."""
    if name not in pretrained_names():
        raise ValueError(f"no pretrained model called {name!r}; available: {pretrained_names()}")
    return load_checkpoint(PRETRAINED_DIR / f"{name}.pt")
