"""β-VAE: the KL weight β, KL warm-up, active units, and the rate–distortion plane.

The loss is reconstruction + β·KL (Higgins et al., 2017); β = 1 is the negative ELBO. `fit` reads β and its
warm-up from the `Config`. The measurements come first; the figures that draw them come last.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..config import Config
from ..data import MNIST
from ..latent import encode_posterior, kl_per_dimension
from ..model import VAE, flatten_images
from ..plots import draw_images, new_figure, save_figure
from ..checkpoint import load_pretrained
from ..history import History
from ..train import evaluate_loss, fit
from ..zoo import BETAS

ACTIVITY_THRESHOLD = 0.01  # Burda et al. (2016): unit u is active if Cov_x(E_q[z_u|x]) exceeds this


def active_units(mu: torch.Tensor, threshold: float = ACTIVITY_THRESHOLD) -> torch.Tensor:
    """Which latent units are active, as a bool mask (latent_dim,): A_u = Cov_x(E_q[z_u|x]) = Var_n(μ_nu) > threshold."""
    if mu.dim() != 2 or len(mu) < 2:
        raise ValueError(f"expected posterior means of shape (N, latent_dim) with N ≥ 2 images, got {tuple(mu.shape)}; "
                         "encode a batch of images with vae_lab.latent.encode_posterior(model, images)")
    return mu.var(dim=0) > threshold


def beta_name(beta: float) -> str:
    """The shipped checkpoint trained with KL weight β: 'vae' for β = 1 (the lab's model), else 'beta_vae_{β:g}'."""
    if beta != 1 and beta not in BETAS:
        raise ValueError(f"no shipped model has β = {beta:g}; the β sweep has {sorted((1.0, *BETAS))}")
    return "vae" if beta == 1 else f"beta_vae_{beta:g}"


def load_beta_sweep() -> dict[float, VAE]:
    """The shipped β sweep, β = 1 included: models that differ only in β (10 epochs, seed 1), keyed by β, ascending."""
    return {beta: load_pretrained(beta_name(beta)).model for beta in sorted((1.0, *BETAS))}


class SweepPoint(NamedTuple):
    """One trained model on held-out images, in nats per image (Alemi et al., 2018)."""

    beta: float
    rate: float  # R = mean KL(q(z|x) ‖ p(z)), what the code costs
    distortion: float  # D = mean −log p(x|z), z ~ q(z|x): the reconstruction term
    kl_per_dimension: torch.Tensor  # R split over the latent units, shape (latent_dim,)
    activity: torch.Tensor  # A_u = Var_n(μ_nu) of each unit, shape (latent_dim,)
    active: int  # the number of active units, A_u > ACTIVITY_THRESHOLD

    @property
    def negative_elbo(self) -> float:
        """−ELBO = D + R: the loss of β = 1."""
        return self.distortion + self.rate


def rate_distortion(models: Mapping[float, VAE], images: torch.Tensor, seed: int = 0) -> list[SweepPoint]:
    """Rate, distortion, KL and activity per unit, and active units of each model (keyed by β) on ``images``.

    The points come in β order. D draws one z per image, from torch's random state seeded with ``seed``, so the
    numbers repeat run to run.
    """
    images = flatten_images(images)
    points = []
    for beta, model in sorted(models.items()):
        with torch.random.fork_rng():  # the caller's random state is left as it was
            torch.manual_seed(seed)
            _, distortion, rate = evaluate_loss(model, images)
        mu, logvar = encode_posterior(model, images)
        points.append(SweepPoint(float(beta), rate, distortion, kl_per_dimension(mu, logvar), mu.var(dim=0),
                                 int(active_units(mu).sum())))
    return points


def sweep_table(points: Sequence[SweepPoint]) -> str:
    """A text table of the sweep, one row per β: D, R, −ELBO (nats per image, 1 decimal) and active units."""
    lines = [f"{'β':>5}  {'reconstruction D':>16}  {'KL R':>6}  {'−ELBO':>6}  {'active units':>12}"]
    lines += [f"{p.beta:>5g}  {p.distortion:>16.1f}  {p.rate:>6.1f}  {p.negative_elbo:>6.1f}  "
              f"{p.active:>5} of {len(p.kl_per_dimension)}" for p in points]
    return "\n".join(lines)


class TrackedRun(NamedTuple):
    """A training run: its settings, its `History` (β = 1 parts), and the number of active units after each epoch."""

    config: Config
    history: History
    active: list[int]


def fit_tracking_units(model: VAE, data: MNIST, images: torch.Tensor | None = None,
                       progress: bool = True) -> TrackedRun:
    """`fit` ``model`` on ``data`` and count its active units on ``images`` (default: the test set) after every epoch."""
    images = data.test_images if images is None else images
    counts: list[int] = []
    count = lambda history: counts.append(int(active_units(encode_posterior(model, images)[0]).sum()))
    history = fit(model, data, progress=progress, on_epoch=count)
    return TrackedRun(model.config, history, counts)


def warmup_figure(runs: Mapping[str, TrackedRun], path: str | Path | None = None) -> Figure:
    """Four panels per epoch, one line per run: the β schedule `Config.beta_at`, test KL, test reconstruction, active units."""
    figure = new_figure(9, 5.6)
    panels = [figure.add_subplot(2, 2, index) for index in range(1, 5)]
    for colour, (name, run) in enumerate(runs.items()):
        style = dict(color=f"C{colour}", label=name)
        epochs = range(1, len(run.history) + 1)
        progress = np.linspace(0, run.config.epochs, 200)
        panels[0].plot(progress, [run.config.beta_at(t) for t in progress], **style)
        panels[1].plot(epochs, run.history.test_kl, "o-", **style)
        panels[2].plot(epochs, run.history.test_reconstruction, "o-", **style)
        panels[3].plot(epochs, run.active, "o-", **style)
    titles = ["the KL weight β during training", "test KL R (nats per image)",
              "test reconstruction D (nats per image)", f"active units (Var(μ) > {ACTIVITY_THRESHOLD:g})"]
    for axes, title in zip(panels, titles):
        axes.set(title=title, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    panels[3].set_ylim(bottom=0)
    panels[0].legend()
    figure.tight_layout()
    return save_figure(figure, path)


def sweep_figure(models: Mapping[float, VAE], images: torch.Tensor, n: int = 8, seed: int = 0,
                 path: str | Path | None = None) -> Figure:
    """One row per β: reconstructions (z = μ) of the first ``n`` images on the left, ``n`` prior samples on the right.

    Every model decodes the same ``n`` images and draws its samples from the same ``seed``.
    """
    originals = flatten_images(images[:n]).cpu()
    rows = [(("originals", originals), None)]
    rows += [((f"β = {beta:g}", model.reconstruct(originals).cpu()),
              model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu())
             for beta, model in sorted(models.items())]
    figure = new_figure(2 * 0.6 * n + 0.8, 0.62 * len(rows) + 0.5)
    grid = figure.subplots(len(rows), 2, squeeze=False)
    for (left, right), ((name, reconstructions), samples) in zip(grid, rows):
        draw_images(left, reconstructions, nrow=n)
        left.set_ylabel(name, rotation=0, ha="right", va="center")
        if samples is not None:
            draw_images(right, samples, nrow=n)
        for axes in (left, right):
            axes.set(xticks=[], yticks=[])
            axes.spines[:].set_visible(False)
    grid[0, 0].set_title("test digits and their reconstructions")
    grid[0, 1].set_title(f"samples from z ~ N(0, I), seed {seed}")
    figure.subplots_adjust(left=0.1, right=0.99, top=0.93, bottom=0.01, wspace=0.03, hspace=0.05)
    return save_figure(figure, path)


def usage_figure(points: Sequence[SweepPoint], path: str | Path | None = None) -> Figure:
    """Left: active units against β. Right: each model's KL per latent unit, sorted from largest to smallest."""
    figure = new_figure(9.6, 3.2)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    betas = [p.beta for p in points]
    left.plot(betas, [p.active for p in points], "o-", color="black")
    left.set(xscale="log", xticks=betas, xticklabels=[f"{b:g}" for b in betas], xlabel="β (log scale)",
             ylabel="active units", title="active units", ylim=(0, len(points[0].kl_per_dimension) + 1))
    left.minorticks_off()
    for colour, point in enumerate(points):
        ranked = point.kl_per_dimension.sort(descending=True).values
        right.plot(range(1, len(ranked) + 1), ranked.numpy(), "o-", markersize=3, color=f"C{colour}",
                   label=f"β = {point.beta:g}")
    right.set(title="KL per latent unit, largest first", xlabel="rank of the unit", ylabel="nats per image",
              xticks=range(1, len(ranked) + 1, 2))
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def rate_distortion_figure(points: Sequence[SweepPoint], step: float = 10.0, path: str | Path | None = None) -> Figure:
    """The models in the D–R plane (Alemi et al., 2018), with lines of equal −ELBO, D + R = const.

    The red line passes through the best (lowest) −ELBO; gray ones follow at multiples of ``step`` nats above it.
    """
    distortion = np.array([p.distortion for p in points])
    rate = np.array([p.rate for p in points])
    elbos = distortion + rate
    margin = 0.08 * max(np.ptp(distortion), np.ptp(rate))
    low_rate = max(0.0, rate.min() - margin)
    figure = new_figure(6.4, 3.9)
    axes = figure.add_subplot()
    span = np.array([0, distortion.max() * 1.2])
    axes.plot(span, elbos.min() - span, color="C3", linewidth=1.2, label=f"D + R = {elbos.min():.1f}, the best −ELBO")
    levels = np.arange(np.floor(elbos.min() / step) + 1, np.ceil(elbos.max() / step) + 1) * step
    for index, level in enumerate(levels):
        axes.plot(span, level - span, "--", color="0.6", linewidth=0.8,
                  label="equal −ELBO: D + R = const" if index == 0 else None)
        axes.annotate(f"{level:g}", (level - low_rate, low_rate), textcoords="offset points", xytext=(-14, 3),
                      rotation=-45, fontsize=8, color="0.4")
    axes.plot(distortion, rate, "o-", color="black", zorder=3)
    for point in points:
        axes.annotate(f"β = {point.beta:g}", (point.distortion, point.rate), textcoords="offset points",
                      xytext=(6, 4), fontsize=9)
    axes.set(xlim=(distortion.min() - margin, distortion.max() + 3 * margin), ylim=(low_rate, rate.max() + margin),
             aspect="equal", xlabel="distortion D = reconstruction (nats per image)",
             ylabel="rate R = KL (nats per image)", title="rate–distortion plane, test images")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
