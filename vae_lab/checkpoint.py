"""Checkpoints: one file holds a model's settings, weights and history, and what resuming needs (optimizer and
random-number states). Written atomically, read with ``weights_only=True``, every failure one sentence."""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .files import write_atomically
from .history import History
from .model import VAE, choose_device
from .zoo import pretrained_names

CHECKPOINT_FORMAT = "vae_lab.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # the file a run folder keeps its checkpoint in
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or written; the message names the file and the fix."""


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
