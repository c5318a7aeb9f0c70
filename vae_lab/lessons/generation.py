"""Generation: a trained model to draw from (notebook 04's run, else the shipped weights), and how samples sharpen."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from matplotlib.figure import Figure

from ..checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, load_pretrained
from ..config import Config
from ..history import History
from ..model import VAE
from ..plots import draw_images, new_figure
from .setup import changed_settings, runs_root

STAGES = ("vae_epoch1", "vae_epoch3", "vae")  # the shipped run after 1, 3 and 10 epochs


class TrainedModel(NamedTuple):
    """A model to generate with, its training history, and where it came from."""

    model: VAE
    history: History
    from_run: bool  # True: the run in run_dir; False: the shipped pretrained weights
    source: str  # one plain sentence naming the model used (and, for the shipped weights, why)


def figure_path(folder: str | Path | None, name: str) -> Path | None:
    """``folder/name`` when a folder is given (the figure is then saved there too), else None."""
    return None if folder is None else Path(folder) / name


def shown_path(path: str | Path) -> Path:
    """``path`` as the lab names run folders: relative to the folder holding ``runs/`` (the checkout, or the working
    folder in Colab), such as ``runs/04_training/lab-settings``; a path elsewhere is shown in full."""
    path, home = Path(path).resolve(), runs_root().parent.resolve()
    return path.relative_to(home) if path.is_relative_to(home) else path


def load_run_or_pretrained(run_dir: str | Path, pretrained: str = "vae") -> TrainedModel:
    """The complete run saved as ``run_dir/checkpoint.pt`` (by `fit`), else the shipped ``pretrained`` weights.

    A run is complete when its history holds all ``config.epochs`` epochs; a missing, truncated or
    unfinished checkpoint falls back to the pretrained model, and ``source`` says so in plain words.
    """
    folder = shown_path(Path(run_dir))
    try:
        saved = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    except FileNotFoundError:
        reason = (f"notebook 04 has saved no run in {folder} (in Colab, run notebook 04 in this same runtime first "
                  "to generate with your own model)")
    except CheckpointError as error:
        reason = str(error)
    else:
        done, planned = len(saved.history), saved.config.epochs
        if done >= planned:
            return TrainedModel(saved.model, saved.history, True,
                                f"Using notebook 04's run in {folder}: {done} epoch{'s' * (done != 1)}, "
                                f"test loss {saved.history.test_loss[-1]:.2f}.")
        reason = (f"the run in {folder} holds {done} of {planned} epochs; finish it by running notebook 04 again "
                  "(it resumes)")
    shipped = load_pretrained(pretrained)
    return TrainedModel(shipped.model, shipped.history, False,
                        f"Using the weights shipped with vae_lab ({pretrained!r}), because {reason}.")


def settings_in_words(config: Config) -> str:
    """'the lab's settings', or 'the lab's settings except epochs=1, seed=3': stable however many fields Config has."""
    changed = changed_settings(config)
    return "the lab's settings" + (f" except {', '.join(changed)}" if changed else "")


def stage_samples(stages: tuple[str, ...] = STAGES, n: int = 8, seed: int = 0) -> dict[int, torch.Tensor]:
    """Decode the same ``n`` latents z ~ N(0, I) with each shipped stage: {epochs trained: images (n, 784)}."""
    checkpoints = [load_pretrained(name) for name in stages]
    latent_dims = {checkpoint.config.latent_dim for checkpoint in checkpoints}
    if len(latent_dims) != 1:
        raise ValueError(f"stages {stages} have different latent sizes {sorted(latent_dims)}; "
                         "compare stages of one run, which share the same z")
    z = torch.randn(n, latent_dims.pop(), generator=torch.Generator().manual_seed(seed))
    return {len(checkpoint.history): checkpoint.model.decode(z).cpu() for checkpoint in checkpoints}


def stage_test_losses(stages: tuple[str, ...] = STAGES) -> dict[int, float]:
    """The test loss (negative ELBO, nats per image) each shipped stage reached: {epochs trained: loss}."""
    return {len(history): history.test_loss[-1] for history in (load_pretrained(name).history for name in stages)}


def stage_grid(samples: dict[int, torch.Tensor]) -> Figure:
    """One row per training stage, labelled with its epochs: the same z decoded as training goes on."""
    width = 0.6 * len(next(iter(samples.values())))
    figure = new_figure(width + 1.0, 0.75 * len(samples) + 0.4)
    for row, (epochs, images) in enumerate(samples.items(), 1):
        axes = figure.add_subplot(len(samples), 1, row)
        draw_images(axes, images, nrow=len(images))
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_ylabel(f"epoch {epochs}", rotation=0, ha="right", va="center")
    figure.suptitle("the same z, decoded after more and more training")
    figure.tight_layout(pad=0.3)
    return figure


def gray_fraction(images: torch.Tensor, low: float = 0.1, high: float = 0.9) -> float:
    """The fraction of pixels strictly between ``low`` and ``high``: small for crisp ink, larger for blur."""
    return ((images > low) & (images < high)).float().mean().item()


def pixel_histogram(real: torch.Tensor, generated: torch.Tensor) -> Figure:
    """Histograms of pixel values in real digits and in generated images (probabilities), on a log scale."""
    figure = new_figure(6.0, 3.0)
    axes = figure.add_subplot()
    bins = torch.linspace(0, 1, 41).numpy()
    for images, label in ((real, "real MNIST digits"), (generated, "decoded samples (means)")):
        axes.hist(images.detach().cpu().flatten().numpy(), bins=bins, density=True, alpha=0.6, label=label)
    axes.set(yscale="log", xlabel="pixel value", ylabel="density (log scale)", title="how much of each image is gray?")
    axes.legend()
    figure.tight_layout()
    return figure
