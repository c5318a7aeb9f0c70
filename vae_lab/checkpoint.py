"""Checkpoints: one file holds a model's settings, weights and history, and what resuming needs (optimizer and
random-number states). Written atomically, read with ``weights_only=True``, every failure one sentence."""
from __future__ import annotations

import errno
import io
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import Config, LabError
from .files import write_atomically
from .history import History
from .model import VAE, build_model, choose_device
from .zoo import pretrained_names

CHECKPOINT_FORMAT = "vae_lab.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # the file a run folder keeps its checkpoint in
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class CheckpointError(LabError, RuntimeError):
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
    serialized = io.BytesIO()  # in memory first: the file write is then one plain write with a plain OSError
    try:
        torch.save(payload, serialized)
        write_atomically(path, lambda handle: handle.write(serialized.getbuffer()))
    except OSError as error:
        raise CheckpointError(f"could not write {path}: {write_failure(error, path, serialized.tell())}") from None


def write_failure(error: OSError, path: Path, size: int) -> str:
    """Why writing ``size`` bytes to ``path`` failed, and the fix, in the user's terms."""
    if error.errno == errno.EISDIR:
        return "that name is a folder; give a file name"
    unchanged = "any earlier checkpoint there is unchanged"
    if error.errno in (errno.ENOSPC, errno.EDQUOT) and path.parent.is_dir():
        free = shutil.disk_usage(path.parent).free
        unchanged = (f"it needs {size / 2**20:.1f} MB and {free / 2**20:.1f} MB are free in {path.parent}; "
                     + unchanged)
    return f"{error.strerror or error}; free some disk space or choose a writable folder ({unchanged})"


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 160 characters), or its type when the message is empty."""
    lines = str(error).strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__


def read_tagged_file(path: str | Path, format_tag: str, kind: str, retrain: str) -> dict[str, Any]:
    """Load a file of tensors and plain values with ``weights_only=True`` and check its format tag.

    Every failure is a one-sentence error naming the file, what is wrong, and ``retrain`` (how to make a new one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} at {path}; {retrain}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), probably from a disk that filled up or a copy that "
                              f"failed; {retrain}, or restore the file from a backup")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"refused to load {path}: it holds Python objects other than tensors and plain values, "
                              f"and unpickling those could run code. Only load {kind}s written by vae_lab "
                              f"({first_line(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path} is truncated or corrupted ({first_line(error)}); "
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
        raise CheckpointError(f"{path} has a damaged config or history ({first_line(error)}); retrain it") from None
    mismatch = weight_mismatch(config, payload.get("model"))
    if mismatch:
        raise CheckpointError(f"{path} holds weights for a different architecture than its config describes "
                              f"({mismatch}); it was not written by this vae_lab") from None
    model = build_model(config)
    model.load_state_dict(payload["model"])
    bad = [name for name, tensor in payload["model"].items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"{path} has NaN or infinite weights in {', '.join(bad)}: training diverged before "
                              "it was saved; retrain with a lower learning rate")
    model.to(choose_device(device)).eval()
    return Checkpoint(model, config, history, payload["optimizer"], payload["rng"])


def weight_mismatch(config: Config, weights: Any) -> str | None:
    """How ``weights`` differ from the tensors a VAE built from ``config`` has, or None when names and shapes match.

    The VAE is built on torch's "meta" device, which allocates nothing, so an oversized config costs no memory.
    """
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        return "the weights are not a dictionary of tensors"
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    found = {name: tuple(t.shape) for name, t in weights.items()}
    if set(expected) != set(found):
        return f"missing {sorted(set(expected) - set(found))[:3]}, unexpected {sorted(set(found) - set(expected))[:3]}"
    wrong = [f"{name} is {found[name]}, not {shape}" for name, shape in expected.items() if found[name] != shape]
    return "; ".join(wrong[:3]) or None


def load_pretrained(name: str = "vae") -> Checkpoint:
    """A shipped model with its history: by default the lab's seed run (10 epochs, seed 1); see `zoo.py` for the rest."""
    if name not in pretrained_names():
        raise ValueError(f"no pretrained model called {name!r}; available: {pretrained_names()}")
    return load_checkpoint(PRETRAINED_DIR / f"{name}.pt")
