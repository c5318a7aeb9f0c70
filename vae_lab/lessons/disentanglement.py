"""Disentanglement, shown and measured: latent traversals per unit, and how axis-aligned three pixel factors are.

MNIST labels no factors of variation, so three are measured from the pixels, after Morpho-MNIST (Castro et al.,
2019): slant, width and stroke thickness. A decoder is axis-aligned when moving one latent unit moves one factor,
and each factor is moved by one unit. Notebook 09 compares β = 1 with β = 4 (Higgins et al., 2017).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import torch
from matplotlib.figure import Figure

from ..latent import encode_posterior, kl_per_dimension
from ..model import VAE, flatten_images
from ..plots import draw_images, new_figure, save_figure

FACTORS = ("slant", "width", "thickness")
TRAVERSAL_VALUES = torch.linspace(-3, 3, 7)  # z_u from −3 to 3: the prior's ±3 standard deviations
Decode = Callable[[torch.Tensor], torch.Tensor]  # latents (N, latent_dim) → images (N, 784) in [0, 1]


def pixel_factors(images: torch.Tensor) -> torch.Tensor:
    """Slant, width and stroke thickness of each image, (N, 3), from its ink as a distribution over the pixels.

    With ink weights w = x / Σx, centroid (x̄, ȳ) and central moments m_xx, m_xy, m_yy (y counts rows downwards):
    slant = −m_xy / m_yy (columns moved right per row upwards), width = √(m_xx − m_xy² / m_yy) (the horizontal
    spread left once the slant is removed), thickness = 2 Σx / TV(x) (area over half the perimeter; the total
    variation TV = Σ |∇x| measures the outline's length, about twice a stroke's length).
    """
    x = flatten_images(images).reshape(-1, 28, 28)
    ink = x.sum(dim=(1, 2))
    if (ink <= 0).any():
        raise ValueError("every image needs some ink to measure its shape; got an all-black image")
    weights = x / ink[:, None, None]
    position = torch.arange(28, dtype=x.dtype)
    dy = position[None, :] - (weights.sum(dim=2) * position).sum(dim=1, keepdim=True)  # (N, rows)
    dx = position[None, :] - (weights.sum(dim=1) * position).sum(dim=1, keepdim=True)  # (N, columns)
    m_yy = (weights.sum(dim=2) * dy ** 2).sum(dim=1)
    m_xx = (weights.sum(dim=1) * dx ** 2).sum(dim=1)
    m_xy = (weights * dy[:, :, None] * dx[:, None, :]).sum(dim=(1, 2))
    total_variation = torch.hypot(x.diff(dim=1)[:, :, :-1], x.diff(dim=2)[:, :-1, :]).sum(dim=(1, 2))
    slant = -m_xy / m_yy
    width = (m_xx - m_xy ** 2 / m_yy).clamp(min=0).sqrt()
    return torch.stack([slant, width, 2 * ink / total_variation], dim=1)


def traverse(decode: Decode, base: torch.Tensor, unit: int, values: torch.Tensor = TRAVERSAL_VALUES) -> torch.Tensor:
    """Decode ``base`` codes (N, latent_dim) with z_unit set to each of ``values``: images (N, len(values), 784)."""
    codes = base[:, None, :].repeat(1, len(values), 1)
    codes[:, :, unit] = values
    return decode(codes.reshape(-1, base.shape[1])).reshape(len(base), len(values), -1)


def factor_importance(decode: Decode, base: torch.Tensor, values: torch.Tensor = TRAVERSAL_VALUES) -> torch.Tensor:
    """I[u, f] = mean over the base codes of Var over the traversal values of factor f, moving unit u alone:
    (latent_dim, 3). A unit the decoder ignores has I = 0 for every factor."""
    rows = []
    for unit in range(base.shape[1]):
        images = traverse(decode, base, unit, values)
        rows.append(pixel_factors(images.reshape(-1, images.shape[-1])).reshape(len(base), len(values), -1)
                    .var(dim=1).mean(dim=0))
    return torch.stack(rows)


class Alignment(NamedTuple):
    """How axis-aligned a decoder's factors are: for each factor, the unit that moves it most and that unit's share."""

    importance: torch.Tensor  # I[u, f], (latent_dim, 3)

    @property
    def top_unit(self) -> torch.Tensor:
        """For each factor, the unit that moves it most: argmax_u I[u, f]."""
        return self.importance.argmax(dim=0)

    @property
    def shares(self) -> torch.Tensor:
        """For each factor, the top unit's share max_u I[u, f] / Σ_u I[u, f]: 1 if one unit alone moves it."""
        return self.importance.max(dim=0).values / self.importance.sum(dim=0)

    @property
    def score(self) -> float:
        """The mean top-unit share over the factors: 1 if each factor has its own unit, 1/latent_dim if spread evenly."""
        return float(self.shares.mean())


def axis_alignment(decode: Decode, base: torch.Tensor, values: torch.Tensor = TRAVERSAL_VALUES) -> Alignment:
    """`factor_importance` of ``decode`` around the ``base`` codes, as an `Alignment`."""
    return Alignment(factor_importance(decode, base, values))


class UnitTraversals(NamedTuple):
    """A model's busiest units, their average KL in nats, and their traversals around one base code."""

    units: list[int]
    kl: list[float]
    images: torch.Tensor  # (len(units) · len(values), 784), one row per unit


def unit_traversals(model: VAE, images: torch.Tensor, base: torch.Tensor, rows: int = 10,
                    values: torch.Tensor = TRAVERSAL_VALUES) -> UnitTraversals:
    """Traverse the ``rows`` units with the largest average KL on ``images``, largest first, from the code ``base``
    (latent_dim,), each over ``values`` with the other units held at ``base``."""
    mu, logvar = encode_posterior(model, images)
    kl = kl_per_dimension(mu, logvar)
    units = kl.argsort(descending=True)[:rows].tolist()
    strips = [traverse(model.decode, base[None].cpu(), unit, values)[0].cpu() for unit in units]
    return UnitTraversals(units, [float(kl[unit]) for unit in units], torch.cat(strips))


def traversal_figure(traversals: Mapping[str, UnitTraversals], values: torch.Tensor = TRAVERSAL_VALUES,
                     path: str | Path | None = None) -> Figure:
    """One panel per model: a row per unit, labelled with its index and average KL, a column per value of z_u."""
    rows = max(len(t.units) for t in traversals.values())
    figure = new_figure(3.4 * len(traversals) + 0.6, 0.36 * rows + 0.9)
    for index, (name, traversal) in enumerate(traversals.items(), start=1):
        axes = figure.add_subplot(1, len(traversals), index)
        draw_images(axes, traversal.images, nrow=len(values))
        labels = [f"unit {unit} · {kl:.2f} nats" for unit, kl in zip(traversal.units, traversal.kl)]
        axes.set_yticks([30 * row + 16 for row in range(len(traversal.units))], labels, fontsize=8)
        axes.set_xticks([30 * column + 16 for column in range(len(values))], [f"{v:g}" for v in values.tolist()])
        axes.set(title=name, xlabel="value of the unit z_u")
        axes.tick_params(length=0)
        axes.spines[:].set_visible(False)
    figure.tight_layout()
    return save_figure(figure, path)
