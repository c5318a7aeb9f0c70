"""Notebook 10's measures and figures of the conditional VAE: how much of the label the codes still hold, each image's
−ELBO, and pictures of one style written as every digit. The conditional encoding and decoding live in `vae_lab.latent`."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..data import batches
from ..evaluate import importance_bounds
from ..latent import decode_every_digit, style_transfer, style_walk
from ..model import IMAGE_PIXELS, N_DIGITS, VAE, decoder_log_likelihood, flatten_images, in_eval_mode
from ..plots import draw_images, new_figure, save_figure, show_images


def between_class_share(points: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of the spread that the class means explain: Σ_y N_y‖m_y − m‖² / Σ_n‖x_n − m‖² (m: the mean of all
    points, m_y: of class y). 1: each class is one point; 0: every class has the same mean."""
    points = points.double()
    centred = points - points.mean(dim=0)
    between = sum((labels == y).sum() * centred[labels == y].mean(dim=0).pow(2).sum() for y in labels.unique())
    return float(between / centred.pow(2).sum())


def knn_label_accuracy(points: torch.Tensor, labels: torch.Tensor, k: int = 10, chunk: int = 1000) -> float:
    """Leave-one-out k-nearest-neighbour accuracy: the share of points whose k nearest other points (Euclidean)
    vote for the point's own label, ties going to the smaller label. Chance is about 0.1 for ten balanced digits."""
    if not 1 <= k < len(points):
        raise ValueError(f"k must be between 1 and {len(points) - 1} (the other points), got {k}")
    correct = 0
    for rows in batches(torch.arange(len(points)), chunk):
        distances = torch.cdist(points[rows].double(), points.double())
        distances[torch.arange(len(rows)), rows] = float("inf")  # a point is not its own neighbour
        votes = F.one_hot(labels[distances.topk(k, largest=False).indices], N_DIGITS).sum(dim=1)
        correct += int((votes.argmax(dim=1) == labels[rows]).sum())
    return correct / len(points)


@torch.no_grad()
def negative_elbo_per_image(model: VAE, images: torch.Tensor, labels: torch.Tensor, draws: int = 16, seed: int = 0,
                            batch_size: int = 1000) -> torch.Tensor:
    """Each image's −ELBO in nats, −(1/K) Σ_k log w_k with log w = log p(x|z, y) + log p(z) − log q(z|x, y) over
    K = ``draws`` z ~ q: a bound on −log p(x|y) for a conditional VAE, on −log p(x) for a plain one (which ignores y)."""
    images = flatten_images(images)
    if len(labels) != len(images):
        raise ValueError(f"expected one label per image, got {len(labels)} labels for {len(images)} images")
    generator = torch.Generator().manual_seed(seed)
    parts = []
    with in_eval_mode(model):
        for x, y in batches(images, batch_size, labels=labels):
            y = y if model.config.conditional else None
            mu, logvar = model.encoder(x, y)
            parts.append(-importance_bounds(mu, logvar, decoder_log_likelihood(model, x, y), draws,
                                            generator=generator).elbo)
    return torch.cat(parts)


def digit_grid_figure(model: VAE, n_styles: int = 6, seed: int = 0, path: str | Path | None = None) -> Figure:
    """Rows: ``n_styles`` latents z ~ N(0, I) (seeded); columns: each decoded as the digits 0…9."""
    z = torch.randn(n_styles, model.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    figure = show_images(decode_every_digit(model, z), nrow=N_DIGITS,
                         title="each row one z ~ N(0, I), each column one label y = 0 … 9")
    return save_figure(figure, path)


def style_transfer_figure(model: VAE, images: torch.Tensor, labels: torch.Tensor,
                          path: str | Path | None = None) -> Figure:
    """One row per image: the original, then its style μ(x, y) decoded as 0…9."""
    originals = flatten_images(images).cpu()
    transferred = style_transfer(model, originals, labels).reshape(len(originals), N_DIGITS, IMAGE_PIXELS)
    rows = torch.cat([originals[:, None], transferred], dim=1).reshape(-1, IMAGE_PIXELS)
    figure = show_images(rows, nrow=N_DIGITS + 1, title="test digit | its style written as 0, 1, …, 9")
    return save_figure(figure, path)


def style_walk_figure(model: VAE, dims: list[int], steps: int = 9, path: str | Path | None = None) -> Figure:
    """One `style_walk` panel per latent dimension in ``dims``, side by side: rows y = 0…9, columns z_dim rising."""
    figure = new_figure(0.3 * steps * len(dims) + 0.4, 3.6)
    for index, dim in enumerate(dims, 1):
        axes = figure.add_subplot(1, len(dims), index)
        draw_images(axes, style_walk(model, dim, steps), nrow=steps)
        axes.set_axis_off()
        axes.set_title(f"z[{dim}] from Φ⁻¹(0.05) to Φ⁻¹(0.95)", fontsize=9)
    figure.tight_layout(pad=0.3)
    return save_figure(figure, path)
