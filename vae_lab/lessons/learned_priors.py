"""Notebook 12's measures and figures: the Gaussian prior against learned ones (a mixture of Gaussians and the
VampPrior), each on the same networks, seed and epochs: ELBO and NLL, the marginal-KL split, active units, holes and
sample quality; prior samples side by side, the pseudo-inputs decoded, and the codes with prior draws on top."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from matplotlib.figure import Figure

from ..config import Config
from ..data import MNIST
from ..evaluate import evaluate, scoring_images
from ..history import History
from ..latent import encode_posterior, hole_fraction, marginal_kl_split, pca_2d
from ..model import VAE, build_model, sample_digits
from ..plots import draw_images, new_figure, save_figure
from ..quality import sample_quality
from ..train import fit
from .beta_vae import active_units

AGGREGATE_IMAGES = 5000  # test digits whose posteriors make the aggregate posterior q(z) of the holes measure
NEW_CODES = 2000  # codes of other test digits: where a new digit lands, the reference for a hole


@dataclass(frozen=True)
class PriorScores:
    """One model of the comparison, in nats per test image (binarised test digits)."""

    name: str
    elbo: float
    nll: float
    average_kl: float
    mutual_information: float
    marginal_kl: float
    active: int
    holes: float
    fd: float
    confidence: float
    class_entropy: float


def log_prior_of(model: VAE) -> Callable[[torch.Tensor], torch.Tensor]:
    """log p(z) of ``model``'s prior, as a function of latents alone."""
    return lambda z: model.prior.log_prob(z, model.encoder)


@torch.no_grad()
def holes_of(model: VAE, images: torch.Tensor, draws: int = 2000, seed: int = 0) -> float:
    """`hole_fraction` of ``draws`` prior samples against the aggregate posterior of the first `AGGREGATE_IMAGES` of
    ``images`` (or 5/7 of them, if fewer), with codes of up to `NEW_CODES` of the images after them as the reference."""
    aggregate = min(AGGREGATE_IMAGES, len(images) * 5 // 7)
    mu, logvar = encode_posterior(model, images[:aggregate + NEW_CODES])
    generator = torch.Generator().manual_seed(seed)
    new_mu, new_logvar = mu[aggregate:], logvar[aggregate:]
    new = new_mu + torch.exp(0.5 * new_logvar) * torch.randn(new_mu.shape, generator=generator)
    prior = model.prior.sample(draws, generator, model.encoder).cpu()
    return hole_fraction(prior, new, mu[:aggregate], logvar[:aggregate])


def score_priors(models: Mapping[str, VAE], data: MNIST, n_test: int, iwae_samples: int, n_samples: int,
                 n_points: int = 10_000, seed: int = 0) -> list[PriorScores]:
    """Every number of the comparison for each named model: ELBO and NLL (IWAE, K = ``iwae_samples``) on the first
    ``n_test`` binarised test digits, the marginal-KL split, active units and holes on the first ``n_points``, and the
    sample quality of ``n_samples`` prior samples."""
    rows = []
    binary = scoring_images(data.test_images[:n_points], binarized=True)
    for name, model in models.items():
        scores = evaluate(model, data.test_images[:n_test], iwae_samples=iwae_samples, binarized=True, seed=seed)
        mu, logvar = encode_posterior(model, binary)
        split = marginal_kl_split(mu, logvar, log_prior_of(model), seed=seed)
        quality = sample_quality(sample_digits(model, n_samples, seed), data.test_images)
        rows.append(PriorScores(name, scores.elbo, scores.nll, *split, int(active_units(mu).sum()),
                                holes_of(model, binary, seed=seed), quality["fd"], quality["confidence"],
                                quality["class_entropy"]))
    return rows


def prior_table(rows: list[PriorScores]) -> str:
    """The comparison as aligned text, one row per model."""
    lines = [f"{'prior':<22}{'ELBO':>9}{'NLL':>8}{'KL':>7}{'I(x;z)':>8}{'KL(q‖p)':>9}{'active':>8}{'holes':>7}"
             f"{'FD':>8}{'conf.':>7}{'entropy':>9}"]
    lines += [f"{r.name:<22}{r.elbo:9.2f}{r.nll:8.2f}{r.average_kl:7.2f}{r.mutual_information:8.2f}{r.marginal_kl:9.2f}"
              f"{r.active:8d}{r.holes:7.1%}{r.fd:8.1f}{r.confidence:7.3f}{r.class_entropy:9.3f}" for r in rows]
    return "\n".join(lines)


def prior_samples_figure(models: Mapping[str, VAE], n: int = 32, seed: int = 0, path: str | Path | None = None
                         ) -> Figure:
    """One panel per model: ``n`` samples from its own prior, drawn with the same ``seed``."""
    figure = new_figure(3.3 * len(models), 3.0)
    for index, (name, model) in enumerate(models.items(), 1):
        axes = figure.add_subplot(1, len(models), index)
        draw_images(axes, sample_digits(model, n, seed), nrow=8)
        axes.set(title=name, xticks=[], yticks=[])
    figure.tight_layout()
    return save_figure(figure, path)


@torch.no_grad()
def pseudo_inputs_figure(model: VAE, n: int = 16, path: str | Path | None = None) -> Figure:
    """The first ``n`` pseudo-inputs u_k of a VampPrior (top) and the decoder's image of each component q(z|u_k) at
    its mean (bottom)."""
    inputs = model.prior.pseudo_inputs[:n].detach().cpu()
    figure = new_figure(0.55 * n, 1.5)
    axes = figure.add_subplot()
    draw_images(axes, torch.cat([inputs, model.reconstruct(inputs).cpu()]), nrow=n)
    axes.set(title="pseudo-inputs u_k (top) and their decoded components (bottom)", xticks=[], yticks=[])
    figure.tight_layout()
    return save_figure(figure, path)


@torch.no_grad()
def holes_figure(models: Mapping[str, VAE], images: torch.Tensor, labels: torch.Tensor, n_points: int = 2000,
                 seed: int = 0, path: str | Path | None = None) -> Figure:
    """One panel per model, as notebook 07 draws the codes: μ of ``n_points`` test digits on their top two principal
    axes, coloured by digit, with as many prior draws on top (black crosses) in the same axes."""
    figure = new_figure(4.2 * len(models), 4.0)
    for index, (name, model) in enumerate(models.items(), 1):
        mu, _ = encode_posterior(model, images[:n_points])
        projection = pca_2d(mu)
        codes = projection.coordinates
        prior = projection.project(model.prior.sample(n_points, torch.Generator().manual_seed(seed), model.encoder).cpu())
        axes = figure.add_subplot(1, len(models), index)
        axes.scatter(codes[:, 0], codes[:, 1], s=3, c=[f"C{int(d)}" for d in labels[:n_points]], alpha=0.35)
        axes.scatter(prior[:, 0], prior[:, 1], s=6, marker="x", color="black", alpha=0.6, linewidths=0.7)
        axes.set(title=name, xlabel="principal axis 1", ylabel="principal axis 2", aspect="equal")
    figure.suptitle("test codes μ(x) by digit, and prior draws (black ×), on the codes' top two principal axes")
    figure.tight_layout()
    return save_figure(figure, path)


def train_with_density(config: Config, data: MNIST, log_density: Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                                                    torch.Tensor]) -> tuple[VAE, History]:
    """Train a VampPrior VAE of ``config`` whose prior turns its components into log p(z) with ``log_density``
    (the exercise's answer) instead of the lab's own; the rest of `fit` is unchanged."""
    if config.prior != "vamp":
        raise ValueError(f"train_with_density trains a VampPrior; set prior='vamp' in the config (got {config.prior!r})")
    model = build_model(config)
    model.prior.log_density = log_density
    return model, fit(model, data, progress=False)
