"""Notebook 07's figures of the latent space: an interpolation strip, a labelled 2-D scatter, per-dimension bars and
the 2-D manifold."""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from ..latent import encode_posterior, gaussian_quantiles, interpolate, kl_per_dimension, manifold_grid, rank_dimensions
from ..model import VAE, flatten_images
from ..plots import new_figure, save_figure, show_images


@torch.no_grad()
def interpolation_strip(model: VAE, image_a: torch.Tensor, image_b: torch.Tensor, steps: int = 10,
                        path: str | Path | None = None) -> Figure:
    """Three rows from digit A to digit B: pixel cross-fade (1 − t)·x_A + t·x_B, then decoded linear and spherical paths."""
    pair = flatten_images(torch.stack([image_a, image_b]).reshape(2, -1))
    mu, _ = encode_posterior(model, pair)
    rows = [interpolate(pair[0], pair[1], steps),
            model.decode(interpolate(mu[0], mu[1], steps)).cpu(),
            model.decode(interpolate(mu[0], mu[1], steps, spherical=True)).cpu()]
    figure = show_images(torch.cat(rows), nrow=steps,
                         title="pixel cross-fade · linear in z · spherical in z   (t = 0 → 1)")
    return save_figure(figure, path)


def latent_scatter(points: torch.Tensor, labels: torch.Tensor, title: str, axis_names: tuple[str, str] = ("z₁", "z₂"),
                   prior: bool = False, path: str | Path | None = None) -> Figure:
    """2-D points coloured by digit label, with a legend; ``prior`` adds the N(0, I) circles of radius 1σ and 2σ."""
    figure = new_figure(5.6, 4.6)
    axes = figure.add_subplot()
    colours = [f"C{digit}" for digit in range(10)]
    for digit in range(10):
        chosen = points[labels == digit]
        axes.scatter(chosen[:, 0], chosen[:, 1], s=4, alpha=0.6, color=colours[digit], label=str(digit))
    if prior:
        for radius in (1, 2):
            axes.add_patch(Circle((0, 0), radius, fill=False, linestyle="--", color="black", linewidth=1))
        axes.plot([], [], "k--", linewidth=1, label="prior 1σ, 2σ")
    axes.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1], aspect="equal")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def dimension_figure(mu: torch.Tensor, logvar: torch.Tensor, path: str | Path | None = None) -> Figure:
    """Bars per latent dimension, in `rank_dimensions` order: Var_n(μ) and the average KL of each dimension."""
    order = rank_dimensions(mu)
    names = [str(int(j)) for j in order]
    figure = new_figure(9, 2.8)
    for index, (values, title) in enumerate([(mu.var(dim=0), "variance of μ across test images"),
                                             (kl_per_dimension(mu, logvar), "average KL (nats)")], 1):
        axes = figure.add_subplot(1, 2, index)
        axes.bar(names, values[order].numpy(), color="C0" if index == 1 else "C1")
        axes.set(title=title, xlabel="latent dimension j (ranked by variance of μ)")
        axes.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def manifold_figure(model: VAE, n: int = 20, path: str | Path | None = None) -> Figure:
    """The n×n `manifold_grid` of a 2-D model as one picture."""
    q = gaussian_quantiles(n)
    title = f"z₁ from {q[0]:.2f} to {q[-1]:.2f} (left → right), z₂ the same (bottom → top)"
    return save_figure(show_images(manifold_grid(model, n), nrow=n, title=title, scale=0.3), path)
