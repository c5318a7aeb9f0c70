"""The latent space: encode a dataset, rank its dimensions, walk between codes, project to 2-D, tile a 2-D manifold.

The tensor functions come first; the figures that draw them (no widgets here) come last.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .data import batch_indices
from .model import VAE, flatten_images
from .plots import new_figure, save_figure, show_images


@torch.no_grad()
def encode_posterior(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None,
                     batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) = N(μ, diag σ²) for every image (a conditional VAE also needs its ``labels``):
    μ and log σ², each (N, latent_dim), encoded in batches."""
    images = flatten_images(images)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"expected one label per image, got {len(labels)} labels for {len(images)} images")
    parts = [model.encoder(images[index].to(model.device), labels[index].to(model.device) if labels is not None else None)
             for index in batch_indices(len(images), batch_size)]
    return torch.cat([mu for mu, _ in parts]).cpu(), torch.cat([logvar for _, logvar in parts]).cpu()


def rank_dimensions(mu: torch.Tensor) -> torch.Tensor:
    """Latent dimensions ordered by Var_n(μ_nj), how much the mean moves from image to image, largest first."""
    return torch.argsort(mu.var(dim=0), descending=True, stable=True)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Average KL to the prior in each dimension: ½ mean_n(μ² + σ² − 1 − log σ²); summed, it is the KL term."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(dim=0)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int | Sequence[float] | torch.Tensor = 10,
                spherical: bool = False) -> torch.Tensor:
    """Points z(t) from z0 (t = 0) to z1 (t = 1), one row per t: linear (1 − t)·z0 + t·z1, or spherical
    (slerp) [sin((1 − t)Ω)·z0 + sin(tΩ)·z1] / sin Ω with Ω the angle between z0 and z1.

    ``steps`` is a number of evenly spaced t (both ends included) or the t values themselves.
    """
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"expected two latent codes of the same shape (d,), got {tuple(z0.shape)} and "
                         f"{tuple(z1.shape)}; pick single codes with mu[i], not batches")
    if isinstance(steps, int) and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = torch.linspace(0, 1, steps) if isinstance(steps, int) else torch.as_tensor(steps, dtype=z0.dtype)
    t = t.to(z0.dtype).reshape(-1, 1)
    omega = torch.arccos(torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1))
    if not spherical or omega < 1e-4:  # (nearly) parallel codes: slerp and lerp coincide
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


class Projection(NamedTuple):
    """Points on the top two principal axes, and the fraction of the total variance each axis carries."""

    coordinates: torch.Tensor
    explained: torch.Tensor


def pca_2d(points: torch.Tensor) -> Projection:
    """PCA by SVD: X − mean = U S Vᵀ; coordinates (X − mean)·V[:, :2], explained S²ₖ / Σ S² for k = 1, 2."""
    centred = points.double() - points.double().mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]
    axes = axes * torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # SVD's signs are arbitrary
    return Projection((centred @ axes.T).to(points.dtype), (s[:2] ** 2 / (s ** 2).sum()).to(points.dtype))


def gaussian_quantiles(n: int = 20, low: float = 0.05, high: float = 0.95) -> torch.Tensor:
    """z = Φ⁻¹(p) for n evenly spaced p in [low, high]: neighbouring z's hold equal prior mass between them."""
    if not 0 < low < high < 1:
        raise ValueError(f"need 0 < low < high < 1 for Gaussian quantiles, got low={low}, high={high}")
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))


@torch.no_grad()
def manifold_grid(model: VAE, n: int = 20) -> torch.Tensor:
    """Decode the n×n grid z = (Φ⁻¹(p_j), Φ⁻¹(p_{n−1−i})) of a 2-D model: images (n², 784), z₂ largest on top."""
    if model.config.latent_dim != 2:
        raise ValueError(f"the manifold grid needs a model with a 2-D latent space, got latent_dim="
                         f"{model.config.latent_dim}; use load_pretrained('vae_latent2')")
    q = gaussian_quantiles(n)
    z = torch.stack([q.repeat(n), q.flip(0).repeat_interleave(n)], dim=1)
    return model.decode(z).cpu()


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
