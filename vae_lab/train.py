"""Training: `fit` runs epochs of Adam steps on the negative ELBO (or the IWAE bound), tests after each epoch,
and checkpoints every epoch so that an interrupted run resumes bit for bit."""
from __future__ import annotations

import math
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import BadType, BadValue, Config, LabError
from .data import MNIST, batches, binarized_test_images, check_pixels
from .files import Terminated, interruptions_deferred, run_lock
from .history import History
from .loss import LossParts, negative_elbo, vq_vae_loss
from .model import VAE, HierarchicalVAE, choose_device, flatten_images, in_eval_mode
from .progress import progress_bar


class TrainingDiverged(LabError, FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch, the batch and the fix."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) for a repeatable notebook or script."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def iwae_loss(model: VAE | HierarchicalVAE, x: torch.Tensor, labels: torch.Tensor | None = None, k: int = 5
              ) -> LossParts:
    """The IWAE training objective (Burda et al. 2016): −log (1/k) Σ_k w_k, averaged over the batch.

    k = 1 is the negative ELBO; larger k trains on a tighter bound, which buys a better log p(x).
    The parts returned beside it are the mean reconstruction over the k draws and the KL term (closed form where
    the model has one: `ImportanceDraws.kl`).
    """
    draws = model.importance_draws(x, labels, k)
    total = -(torch.logsumexp(draws.log_weights, dim=0) - math.log(k)).mean()
    return LossParts(total, -draws.log_likelihood.mean(), draws.kl.mean())


def training_loss(model: VAE | HierarchicalVAE, x: torch.Tensor, labels: torch.Tensor | None, beta: float
                  ) -> LossParts:
    """What one batch optimises: reconstruction + β·KL (free bits floor each unit's KL at ``config.free_bits``), the
    IWAE bound when ``config.iwae_samples`` > 1, or a VQ-VAE's loss (`loss.vq_vae_loss`)."""
    config = model.config
    labels = labels if config.conditional else None
    if config.codebook_size:
        return vq_vae_loss(model.vq_parts(x), config.commitment)
    if config.iwae_samples > 1:
        return iwae_loss(model, x, labels, config.iwae_samples)
    return negative_elbo(model.elbo_parts(x, labels), beta, config.free_bits)


@torch.no_grad()
def evaluate_loss(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None,
                  batch_size: int = 2000) -> tuple[float, float, float]:
    """Mean negative ELBO, reconstruction and KL (nats per image) on ``images``, one z sample each.

    A conditional VAE needs the digit ``labels`` as well.
    """
    labels = labels if model.config.conditional else None
    sums = torch.zeros(3, dtype=torch.float64)
    with in_eval_mode(model):
        for batch in batches(images, batch_size, labels=labels):
            x, y = batch if labels is not None else (batch, None)
            x = x.to(model.device)
            parts = negative_elbo(model.elbo_parts(x, y.to(model.device) if y is not None else None))
            sums += torch.stack(parts).double().cpu() * len(x)
    return tuple((sums / len(images)).tolist())


def make_optimizer(model: VAE) -> torch.optim.Adam:
    """Adam at ``config.lr``, fused into one kernel per step on the CPU and CUDA instead of a dozen small ones."""
    return torch.optim.Adam(model.parameters(), lr=model.config.lr, fused=model.device.type in ("cpu", "cuda"))


def train_epoch(model: VAE, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
                shuffle: torch.Generator, epoch: int, on_step: Callable[[], object] = lambda: None
                ) -> tuple[float, float, float]:
    """One pass over ``images`` in batches shuffled by ``shuffle``: forward, loss, backward, Adam step.

    Returns the epoch's mean negative ELBO, reconstruction and KL (nats per image, β = 1 whatever β trains).
    """
    config = model.config
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = config.lr_at(epoch)
    steps = math.ceil(len(images) / config.batch_size)
    sums = torch.zeros(3, dtype=torch.float64)
    for step, (x, y) in enumerate(batches(images, config.batch_size, shuffle, config.binarize, labels), 1):
        parts = training_loss(model, x, y, config.beta_at(epoch - 1 + step / steps))
        if not torch.isfinite(parts.total):  # the pixels were checked, so the weights diverged
            raise TrainingDiverged(f"the loss became {parts.total.item()} in epoch {epoch}, batch {step}; training "
                                   f"stopped. Lower the learning rate (now {config.lr:g}).")
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        sums += torch.stack([parts.reconstruction + parts.kl, parts.reconstruction, parts.kl]).detach().double().cpu() * len(x)
        on_step()
    return tuple((sums / len(images)).tolist())


def training_tensors(data: MNIST, config: Config, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training images and labels and the test images that ``config`` trains on, checked and moved to ``device``
    once; binarised training is scored on the binarised test digits (the same draw every epoch)."""
    if not isinstance(data, MNIST):
        raise BadType(f"fit expects the data as an MNIST (from load_mnist()), got {type(data).__name__}")
    if config.train_size is not None and config.train_size > len(data.train_images):
        raise BadValue(f"train_size={config.train_size} but the data holds {len(data.train_images):,} training "
                       "images; lower train_size, set it to None for all, or pass more data")
    for split, images, fix in (("training", data.train_images[:config.train_size], "train_size None or positive"),
                               ("test", data.test_images, "test_size None or positive")):
        if len(images) == 0:
            raise BadValue(f"the {split} set is empty, so fit has nothing to work with; "
                           f"pass MNIST with at least one {split} image ({fix})")
        check_pixels(f"the {split} images", flatten_images(images))
    test_images = flatten_images(data.test_images).to(device)
    return (flatten_images(data.train_images[:config.train_size]).to(device),
            data.train_labels[:config.train_size].to(device),
            binarized_test_images(test_images) if config.binarize else test_images)


def record_epoch(history: History, train: tuple[float, float, float], test: tuple[float, float, float],
                 seconds: float, save: Callable[[], object]) -> None:
    """Append an epoch to ``history`` and ``save`` it; the epoch counts only once saved, and Ctrl-C waits for that."""
    with interruptions_deferred():
        history.append(train_loss=train[0], train_reconstruction=train[1], train_kl=train[2],
                       test_loss=test[0], test_reconstruction=test[1], test_kl=test[2], seconds=seconds)
        try:
            save()
        except BaseException:
            history.drop_last()
            raise


def fit(model: VAE, data: MNIST, *, device: str | None = None, checkpoint: str | Path | None = None,
        resume: bool = False, progress: bool = True,
        on_epoch: Callable[[History], None] | None = None) -> History:
    """Train ``model`` with Adam on ``data`` for ``model.config.epochs`` epochs; return the per-epoch history.

    With ``checkpoint``, the run is saved after every epoch, and locked while it trains (another process training
    into it is refused at once, `files.RunInUse`); with ``resume=True`` as well, a run found there continues where
    it stopped and ends with the history an uninterrupted run would have. Interrupting (Ctrl-C, or the kernel's stop
    button) keeps the complete epochs: the history is returned with ``interrupted=True``; a SIGTERM that
    `files.stop_like_ctrl_c` handles keeps them too, and is raised on. The noise ε and the shuffling are seeded by
    ``config.seed``; the caller's own random state is left as it was. Bad data (labels that do not fit, pixels
    outside [0, 1], a train_size beyond the data) is refused before anything runs.
    """
    config = model.config
    model.to(choose_device(device))
    train_images, train_labels, test_images = training_tensors(data, config, model.device)
    with run_lock(Path(checkpoint), "pass another checkpoint path") if checkpoint is not None else nullcontext():
        history = _train(model, data, train_images, train_labels, test_images, checkpoint, resume, progress, on_epoch)
    model.eval()
    return history


def _train(model: VAE, data: MNIST, train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
           checkpoint: str | Path | None, resume: bool, progress: bool,
           on_epoch: Callable[[History], None] | None) -> History:
    """`fit`'s epochs, once its inputs are checked and its checkpoint is locked."""
    config = model.config
    optimizer = make_optimizer(model)
    shuffle = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        history = History()
        if resume and checkpoint is not None and Path(checkpoint).exists():
            history = _resume(checkpoint, model, optimizer, shuffle)

        def save() -> None:
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, history, _rng_state(shuffle))

        steps = math.ceil(len(train_images) / config.batch_size)
        bar = progress_bar(total=config.epochs * steps, initial=len(history) * steps, disable=not progress,
                           unit="batch", desc="training", file=sys.stdout)
        try:
            for epoch in range(len(history) + 1, config.epochs + 1):
                started = time.perf_counter()
                train = train_epoch(model, optimizer, train_images, train_labels, shuffle, epoch, bar.update)
                test = evaluate_loss(model, test_images, data.test_labels)
                if not all(map(math.isfinite, test)):
                    raise TrainingDiverged(f"the test loss became {test[0]} after epoch {epoch}: the weights diverged "
                                           f"in the epoch's last steps; training stopped, and that epoch was not "
                                           f"saved. Lower the learning rate (now {config.lr:g}).")
                record_epoch(history, train, test, time.perf_counter() - started, save)
                bar.set_postfix(epoch=epoch, test_loss=f"{test[0]:.2f}")
                if on_epoch is not None:
                    on_epoch(history)
        except KeyboardInterrupt as stop:
            history.interrupted = True
            how = f"stopped by {stop.args[0]}" if isinstance(stop, Terminated) else "interrupted"
            print(f"training {how}: kept {len(history)} complete epoch(s) of {config.epochs}", file=sys.stderr)
            if isinstance(stop, Terminated):  # the process is asked to end: every complete epoch is saved
                raise
        finally:
            bar.close()
    return history


def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _resume(path: str | Path, model: VAE, optimizer: torch.optim.Optimizer, shuffle: torch.Generator) -> History:
    """Load the run saved at ``path`` into ``model``, ``optimizer`` and the random states; return its history."""
    saved = load_checkpoint(path)
    _check_resumable(saved.config, model.config, path)
    if len(saved.history) > model.config.epochs:
        raise CheckpointError(f"cannot resume from {path} with epochs={model.config.epochs}: it already holds "
                              f"{len(saved.history)} epochs; resume with epochs={len(saved.history)} or more, or read "
                              "it with load_checkpoint")
    if saved.optimizer_state is None or saved.rng_state is None:
        raise CheckpointError(f"cannot resume from {path}: it holds weights only (no optimizer or random states), so "
                              "training cannot continue where it stopped; train into a new folder, or start from its "
                              "weights with model.load_state_dict(load_checkpoint(path).model.state_dict())")
    model.load_state_dict(saved.model.state_dict())
    ours = optimizer.state_dict()["param_groups"]  # Adam's settings follow from the config, never from a file
    groups = saved.optimizer_state["param_groups"]
    try:
        optimizer.load_state_dict({"state": saved.optimizer_state["state"],
                                   "param_groups": [{**own, "params": theirs["params"]}
                                                    for own, theirs in zip(ours, groups, strict=True)]})
        torch.set_rng_state(saved.rng_state["torch"])
        shuffle.set_state(saved.rng_state["shuffle"])
        if "cuda" in saved.rng_state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved.rng_state["cuda"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot resume from {path}: its optimizer or random states do not fit this run "
                              f"({type(error).__name__}: {str(error)[:120]}); train into a new folder") from None
    saved.history.interrupted = False  # until this run is
    return saved.history


def _check_resumable(saved: Config, wanted: Config, path: str | Path) -> None:
    differ = {k: (v, wanted.to_dict()[k]) for k, v in saved.to_dict().items() if k != "epochs" and wanted.to_dict()[k] != v}
    if differ:
        details = ", ".join(f"{k}={old!r} there but {new!r} here" for k, (old, new) in differ.items())
        raise CheckpointError(f"cannot resume from {path}: it was trained with other settings ({details}); "
                              "resume with the same settings, or train into a new folder")
