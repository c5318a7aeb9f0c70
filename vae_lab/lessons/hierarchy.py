"""Notebook 13's measures and figures: the KL of each latent layer and of each unit, active units per layer, a run
that tracks them epoch by epoch (to watch the upper layer switch off), what z₂ holds, and the hierarchical loss
with the student's KL."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..data import MNIST, batches
from ..history import History
from ..model import HierarchicalVAE, VAE, flatten_images, in_eval_mode
from ..plots import draw_images, new_figure, save_figure
from ..loss import reconstruction_loss
from ..train import fit
from .beta_vae import ACTIVITY_THRESHOLD

LAYER_NAMES = ("z₁", "z₂")


class LayerUse(NamedTuple):
    """How one model uses each latent layer on a set of images (lowest layer first), in nats per image."""

    kl: tuple[float, ...]  # the layer's KL term
    kl_per_unit: tuple[torch.Tensor | None, ...]  # (D,) each, None where the KL does not split over units
    active: tuple[int, ...]  # units with Var_n(E[z_u|x]) > 0.01 (Burda et al. 2016)
    units: tuple[int, ...]


@torch.no_grad()
def layer_use(model: VAE | HierarchicalVAE, images: torch.Tensor, seed: int = 0, batch_size: int = 2000) -> LayerUse:
    """Each layer's KL (one draw per image, seeded) and KL per unit, averaged over ``images``, and its active units
    (`encode_layers`: z₁'s means at z₂ = μ₂)."""
    images = flatten_images(images).to(model.device)
    kl_sums, unit_sums, means = None, None, None
    with in_eval_mode(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x in batches(images, batch_size):
            parts = model.elbo_parts(x).kl
            layers = [mu for mu, _ in model.encode_layers(x)]
            kls = [layer.total.sum().item() for layer in parts]
            per_unit = [None if layer.per_unit is None else layer.per_unit.sum(dim=0).cpu() for layer in parts]
            kl_sums = kls if kl_sums is None else [a + b for a, b in zip(kl_sums, kls)]
            unit_sums = per_unit if unit_sums is None else [None if a is None else a + b for a, b in zip(unit_sums, per_unit)]
            means = [[m.cpu()] for m in layers] if means is None else [old + [m.cpu()] for old, m in zip(means, layers)]
    n = len(images)
    activity = [torch.cat(parts).var(dim=0) for parts in means]
    return LayerUse(tuple(k / n for k in kl_sums), tuple(None if u is None else u / n for u in unit_sums),
                    tuple(int((a > ACTIVITY_THRESHOLD).sum()) for a in activity), tuple(len(a) for a in activity))


def layer_table(uses: Mapping[str, LayerUse]) -> str:
    """One row per model and layer: its KL, the smallest and largest KL of a unit, and its active units."""
    lines = [f"{'model':<28}{'layer':>6}{'KL':>8}{'KL per unit':>16}{'active units':>14}"]
    for name, use in uses.items():
        for layer, (kl, units, active, size) in enumerate(zip(use.kl, use.kl_per_unit, use.active, use.units)):
            spread = "—" if units is None else f"{units.min():.2f} to {units.max():.2f}"
            lines.append(f"{name if layer == 0 else '':<28}{LAYER_NAMES[layer] if len(use.kl) > 1 else 'z':>6}"
                         f"{kl:8.2f}{spread:>16}{f'{active} of {size}':>14}")
    return "\n".join(lines)


class TrackedLayers(NamedTuple):
    """A training run: its `History`, and after every epoch each layer's KL and active units on the tracked images."""

    name: str
    history: History
    uses: list[LayerUse]


def fit_tracking_layers(name: str, model: HierarchicalVAE, data: MNIST, images: torch.Tensor,
                        progress: bool = True) -> TrackedLayers:
    """`fit` ``model`` on ``data`` and measure `layer_use` on ``images`` after every epoch."""
    uses: list[LayerUse] = []
    history = fit(model, data, progress=progress, on_epoch=lambda _: uses.append(layer_use(model, images)))
    return TrackedLayers(name, history, uses)


def collapse_figure(runs: Sequence[TrackedLayers], path: str | Path | None = None) -> Figure:
    """Per epoch, one line per run: the upper layer's KL and its active units."""
    figure = new_figure(9, 3.2)
    kl_axes, active_axes = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for colour, run in enumerate(runs):
        epochs = range(1, len(run.uses) + 1)
        style = dict(color=f"C{colour}", label=run.name)
        kl_axes.plot(epochs, [use.kl[-1] for use in run.uses], "o-", **style)
        active_axes.plot(epochs, [use.active[-1] for use in run.uses], "o-", **style)
    kl_axes.set(title="KL of the upper layer z₂ (nats per image)", xlabel="epoch")
    active_axes.set(title="active units of z₂", xlabel="epoch", ylim=(0, runs[0].uses[0].units[-1] + 1))
    for axes in (kl_axes, active_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    kl_axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def unit_kl_figure(uses: Mapping[str, LayerUse], path: str | Path | None = None) -> Figure:
    """One panel per layer: each model's KL per unit, sorted from largest to smallest."""
    layers = max(len(use.kl) for use in uses.values())
    figure = new_figure(4.6 * layers, 3.2)
    for layer in range(layers):
        axes = figure.add_subplot(1, layers, layer + 1)
        for colour, (name, use) in enumerate(uses.items()):
            units = use.kl_per_unit[layer] if layer < len(use.kl) else None
            if units is not None:
                ranked = units.sort(descending=True).values.numpy()
                axes.plot(np.arange(1, len(ranked) + 1), ranked, "o-", markersize=3, color=f"C{colour}", label=name)
        axes.set(title=f"KL per unit of {LAYER_NAMES[layer]}, largest first", xlabel="rank of the unit",
                 ylabel="nats per image")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


@torch.no_grad()
def shared_top_samples(model: HierarchicalVAE, rows: int = 6, columns: int = 10, seed: int = 0) -> torch.Tensor:
    """Row r: one z₂ ~ p(z₂), then ``columns`` draws z₁ ~ p(z₁|z₂) decoded: images (rows·columns, 784)."""
    generator = torch.Generator().manual_seed(seed)
    z2 = model.prior.sample(rows, generator, model.encode_top).to(model.device).repeat_interleave(columns, dim=0)
    mu1, logvar1, _ = model.top_down(z2)
    eps = torch.randn(mu1.shape, generator=generator).to(model.device)
    return model.decode(mu1 + torch.exp(0.5 * logvar1) * eps).cpu()


def shared_top_figure(model: HierarchicalVAE, rows: int = 6, columns: int = 10, seed: int = 0,
                      path: str | Path | None = None) -> Figure:
    """`shared_top_samples` as one picture: each row shares its z₂."""
    figure = new_figure(0.55 * columns, 0.6 * rows + 0.4)
    axes = figure.add_subplot()
    draw_images(axes, shared_top_samples(model, rows, columns, seed), nrow=columns)
    axes.set(title="each row: one z₂ ~ p(z₂), then z₁ ~ p(z₁|z₂) for each column", xticks=[], yticks=[])
    figure.tight_layout()
    return save_figure(figure, path)


def hierarchical_negative_elbo(model: HierarchicalVAE, x: torch.Tensor,
                               kl_between: Callable[..., torch.Tensor], seed: int = 0) -> torch.Tensor:
    """−ELBO per image of the two-layer model, one draw (seeded), with ``kl_between(μ_q, log σ_q², μ_p, log σ_p²)``
    for z₁'s term KL(q(z₁|z₂, x) ‖ p(z₁|z₂)): reconstruction + that KL + z₂'s KL against its prior."""
    x = flatten_images(x).to(model.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        d = model.draw(x)
    reconstruction = reconstruction_loss(model.decoder(d.z1), x, model.config.likelihood)
    top = model.prior.layer_kl(d.z2, d.mu2, d.logvar2, model.encode_top).total
    return reconstruction + kl_between(d.mu1, d.logvar1, d.prior_mu1, d.prior_logvar1) + top
