"""The lab's pictures: reconstruction grid, samples from the prior, loss curve. Each returns a figure and can save a PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .files import write_atomically
from .history import History
from .model import VAE, flatten_images


def tile_images(tiles: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Lay (N, h, w) tiles out ``nrow`` to a row, ``padding`` pixels of ``pad_value`` around each: one (H, W) picture
    (the layout of torchvision's make_grid, without importing torchvision, which takes seconds; one tile comes back
    as it is)."""
    count, height, width = tiles.shape
    if count == 1:
        return tiles[0]
    columns = min(nrow, count)
    rows = -(-count // columns)
    blanks = tiles.new_full((rows * columns - count, height, width), pad_value)
    framed = F.pad(torch.cat([tiles, blanks]), (padding, 0, padding, 0), value=pad_value)  # margin above and left
    grid = framed.reshape(rows, columns, height + padding, width + padding).transpose(1, 2)
    return F.pad(grid.reshape(rows * (height + padding), columns * (width + padding)), (0, padding, 0, padding),
                 value=pad_value)


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile images (N, 784) or (N, 1, 28, 28) in [0, 1] into one (H, W) picture, ``nrow`` per row, on white."""
    return tile_images(flatten_images(images.detach().cpu()).reshape(-1, 28, 28), nrow=nrow, padding=padding)


def new_figure(width: float, height: float) -> Figure:
    """A figure that notebooks display when it is returned, and that pyplot does not keep open."""
    figure = plt.figure(figsize=(width, height))
    plt.close(figure)
    return figure


def draw_images(axes: Axes, images: torch.Tensor, nrow: int = 8) -> None:
    """Draw ``images`` on ``axes`` as one grayscale `image_grid`: 0 black, 1 white, pixels kept sharp."""
    axes.imshow(image_grid(images, nrow).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, scale: float = 0.6) -> Figure:
    """A figure of ``images`` in a grid with ``nrow`` per row."""
    height, width = image_grid(images, nrow).shape
    figure = new_figure(scale * width / 30, scale * height / 30 + (0.4 if title else 0))
    axes = figure.add_subplot()
    draw_images(axes, images, nrow)
    axes.set_axis_off()
    if title:
        axes.set_title(title)
    figure.tight_layout(pad=0.2)
    return figure


def save_figure(figure: Figure, path: str | Path | None) -> Figure:
    """Save ``figure`` as a PNG at ``path`` (atomically) when a path is given; return the figure."""
    if path is not None:
        write_atomically(Path(path), lambda handle: figure.savefig(handle, format="png", dpi=100))
    return figure


def reconstruction_grid(model: VAE, images: torch.Tensor, n: int = 8, path: str | Path | None = None) -> Figure:
    """Originals on the top row, their reconstructions (z = μ) on the bottom row."""
    originals = flatten_images(images[:n]).cpu()
    both = torch.cat([originals, model.reconstruct(originals).cpu()])
    return save_figure(show_images(both, nrow=len(originals), title="top: originals · bottom: reconstructions"), path)


def sample_grid(model: VAE, n: int = 64, seed: int = 0, path: str | Path | None = None) -> Figure:
    """``n`` digits decoded from z ~ N(0, I), drawn with a fixed ``seed``, in a square-ish grid."""
    samples = model.sample(n, generator=torch.Generator().manual_seed(seed))
    nrow = max(1, round(n ** 0.5))
    return save_figure(show_images(samples, nrow=nrow, title=f"{n} samples from z ~ N(0, I)"), path)


def loss_curve(history: History, parts: bool = False, path: str | Path | None = None) -> Figure:
    """Train and test loss per epoch; with ``parts``, also the reconstruction and KL terms side by side."""
    epochs = range(1, len(history) + 1)
    panels = [("loss", "negative ELBO")] + ([("reconstruction", "reconstruction (BCE)"), ("kl", "KL")] if parts else [])
    figure = new_figure(4.2 * len(panels), 3.2)
    for index, (key, title) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), index)
        axes.plot(epochs, getattr(history, f"train_{key}"), "o-", label="train")
        axes.plot(epochs, getattr(history, f"test_{key}"), "s--", label="test")
        axes.set(title=title, xlabel="epoch", ylabel="nats per image")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return save_figure(figure, path)


def bounds_figure(ks: list[int], curves: dict[str, list[float]], truth: float | None = None,
                  title: str = "bounds on log p(x)") -> Figure:
    """Estimates of log p(x) against the number of importance samples K (log scale), and the truth if known."""
    figure = new_figure(5.2, 3.4)
    axes = figure.add_subplot()
    for (label, values), marker in zip(curves.items(), "os^v"):
        axes.plot(ks, values, marker + "-", label=label)
    if truth is not None:
        axes.axhline(truth, color="black", linestyle=":", label="exact log p(x)")
    axes.set(xscale="log", xlabel="importance samples K", ylabel="nats per data point", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def continuous_bernoulli_figure() -> Figure:
    """Left: the Bernoulli 'density' λ^x (1−λ)^(1−x) on gray x ∈ [0, 1] for a few λ; right: the area under
    it, ∫₀¹ λ^x (1−λ)^(1−x) dx = 1/C(λ) ≤ ½, against λ (the continuous Bernoulli multiplies by C(λ))."""
    from .loss import continuous_bernoulli_log_norm

    x = torch.linspace(0, 1, 201)
    figure = new_figure(9, 3.2)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for lam in (0.05, 0.3, 0.5, 0.9):
        left.plot(x, lam ** x * (1 - lam) ** (1 - x), label=f"λ = {lam}")
    left.set(xlabel="pixel value x", ylabel="λ^x (1−λ)^(1−x)", title="Bernoulli formula on gray pixels")
    left.legend()
    lam = torch.linspace(0.001, 0.999, 999)
    right.plot(lam, torch.exp(-continuous_bernoulli_log_norm(torch.logit(lam))))
    right.set(xlabel="λ", ylabel="∫₀¹ λ^x (1−λ)^(1−x) dx = 1/C(λ)", ylim=(0, 0.55),
              title="area under each curve, 1/C(λ): at most ½")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def class_fractions_figure(fractions: dict[str, list[float]]) -> Figure:
    """Bars of the share of each digit 0–9 that the classifier sees in each named set of images."""
    figure = new_figure(7, 3.2)
    axes = figure.add_subplot()
    width = 0.8 / len(fractions)
    for index, (label, shares) in enumerate(fractions.items()):
        axes.bar([d + (index - (len(fractions) - 1) / 2) * width for d in range(10)], shares, width, label=label)
    axes.axhline(0.1, color="black", linestyle=":", linewidth=1)
    axes.set(xticks=range(10), xlabel="digit (as the classifier reads it)", ylabel="share of images",
             title="which digits each model draws")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
