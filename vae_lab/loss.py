"""The negative ELBO: a reconstruction term (Bernoulli, or continuous Bernoulli) plus the closed-form KL to N(0, I),
and the Gaussian log densities that importance weights are made of.

Pure tensor functions.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


LOG_2PI = math.log(2 * math.pi)
SMALL_LOGIT = 1e-3  # below this |logit|, the continuous Bernoulli's formulas use their Taylor series (0/0 at 0)


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(λ) per pixel, λ = sigmoid(logit): C = 2 atanh(1−2λ)/(1−2λ), which simplifies to logit / tanh(logit/2).

    The continuous Bernoulli p(x|λ) = C(λ) λ^x (1−λ)^(1−x) is a proper density for x anywhere in [0, 1]
    (Loaiza-Ganem & Cunningham, 2019); the Bernoulli's BCE on gray pixels lacks the C(λ) ≥ 2 factor.
    """
    small = logits.abs() < SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(logits), logits)
    return torch.where(small, math.log(2) + logits.pow(2) / 12, torch.log(safe / torch.tanh(safe / 2)))


def pixel_means(logits: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """The mean of p(x|z) per pixel: λ = sigmoid(logit) for a Bernoulli; λ/(2λ−1) + 1/(2 atanh(1−2λ)) for a continuous one."""
    if likelihood == "bernoulli":
        return torch.sigmoid(logits)
    small = logits.abs() < SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(logits), logits)
    return torch.where(small, 0.5 + logits / 12, torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """−log p(x|z) summed over pixels, per image. Bernoulli: the binary cross-entropy
    −Σ [x log p + (1−x) log(1−p)], p = sigmoid(logits); continuous Bernoulli: that minus Σ log C(p).

    Computed from logits (log-sum-exp form), so it stays finite where a sigmoid would round to 0 or 1.
    """
    if x.shape != logits.shape:
        raise ValueError(f"targets of shape {tuple(x.shape)} do not match logits of shape {tuple(logits.shape)}; "
                         "flatten the images to (N, 784) first")
    if x.numel() == 0:
        raise ValueError("got an empty batch (0 images); pass at least one image")
    low, high = torch.aminmax(x)
    if low < 0 or high > 1:
        raise ValueError(f"binary cross-entropy needs targets in [0, 1], got values from {low.item():.3g} "
                         f"to {high.item():.3g}; divide 0–255 pixels by 255")
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    if likelihood == "continuous_bernoulli":
        return (bce - continuous_bernoulli_log_norm(logits)).sum(dim=-1)
    if likelihood != "bernoulli":
        raise ValueError(f"likelihood must be 'bernoulli' or 'continuous_bernoulli', got {likelihood!r}")
    return bce.sum(dim=-1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per image: −½ Σ (1 + log σ² − μ² − σ²)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


class LossParts(NamedTuple):
    """Batch means, in nats per image: the total (negative ELBO) and its two parts."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0, likelihood: str = "bernoulli") -> LossParts:
    """Negative ELBO per image, reconstruction + β·KL, averaged over the batch; call it as ``vae_loss(x, *model(x))``."""
    x = x.reshape(logits.shape) if x.numel() == logits.numel() else x
    reconstruction = reconstruction_loss(logits, x, likelihood).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossParts(reconstruction + beta * kl, reconstruction, kl)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension: −½ Σ [(z−μ)²/σ² + log σ² + log 2π]."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(dim=-1)


def log_prior(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)


def sample_posterior(mu: torch.Tensor, logvar: torch.Tensor, k: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` draws z ~ q = N(μ, σ²) of shape (k, N, D), and log q(z|x) of shape (k, N)."""
    eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps
    return z, -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(dim=-1)  # log N(z; μ, σ²), written with ε for accuracy


# ---- Learned priors and a hierarchy of latents (notebooks 12 and 13) ----


def gaussian_kl_per_unit(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                         logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) of each unit: ½ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1].

    Both sides learned (e.g. q(z₁|z₂, x) against p(z₁|z₂)); μ_p = 0, log σ_p² = 0 gives `kl_divergence`'s terms.
    """
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL between two diagonal Gaussians per image, `gaussian_kl_per_unit` summed over the last dimension."""
    return gaussian_kl_per_unit(mu_q, logvar_q, mu_p, logvar_p).sum(dim=-1)


class LayerKL(NamedTuple):
    """One latent layer's KL term per image: ``total`` (N,), and ``per_unit`` (N, D) where it splits over the D units
    (a diagonal Gaussian prior; None for a mixture or VampPrior, whose log p(z) does not split)."""

    total: torch.Tensor
    per_unit: torch.Tensor | None
    units: int


class ElboParts(NamedTuple):
    """The negative ELBO's terms per image: −log p(x|z) (N,) and one `LayerKL` per latent layer, the lowest first."""

    reconstruction: torch.Tensor
    kl: tuple[LayerKL, ...]


def free_bits_kl(layer: LayerKL, free_bits: float) -> torch.Tensor:
    """Kingma et al. (2016)'s free bits for one layer: Σ_j max(λ, KL_j), KL_j the batch mean of unit j's KL, so a
    unit below λ nats gets no push towards the prior. A layer whose KL does not split over units counts as one
    group with the floor λ·D."""
    if layer.per_unit is None:
        return torch.clamp(layer.total.mean(), min=free_bits * layer.units)
    return torch.clamp(layer.per_unit.mean(dim=0), min=free_bits).sum()


def negative_elbo(parts: ElboParts, beta: float = 1.0, free_bits: float = 0.0) -> LossParts:
    """Batch means in nats per image: reconstruction + β·(KL of every layer, each floored by `free_bits_kl` when
    ``free_bits`` > 0), with the true reconstruction and KL (β = 1, no floor) beside it."""
    reconstruction = parts.reconstruction.mean()
    kl = parts.kl[0].total.mean()
    for layer in parts.kl[1:]:
        kl = kl + layer.total.mean()
    if free_bits == 0:
        return LossParts(reconstruction + beta * kl, reconstruction, kl)
    penalty = torch.stack([free_bits_kl(layer, free_bits) for layer in parts.kl]).sum()
    return LossParts(reconstruction + beta * penalty, reconstruction, kl)


class ImportanceDraws(NamedTuple):
    """k draws from a model's q(z|x) per image, each (k, N): log p(x|z), log p(z) and log q(z|x) (every latent layer's
    summed), and ``kl`` (N,), the KL term's estimate: closed form where the model has one, else from the draws."""

    log_likelihood: torch.Tensor
    log_prior: torch.Tensor
    log_posterior: torch.Tensor
    kl: torch.Tensor

    @property
    def log_weights(self) -> torch.Tensor:
        """log w = log p(z) − log q(z|x) + log p(x|z), (k, N)."""
        return self.log_prior - self.log_posterior + self.log_likelihood


# ---- Discrete codes: the VQ-VAE (notebook 14) ----


class VQParts(NamedTuple):
    """A VQ-VAE's loss terms per image (N,): −log p(x|z_q), the codebook and commitment terms summed over the code
    grid, and −log p(k), the codes' negative log probability under the learned code prior."""

    reconstruction: torch.Tensor
    codebook: torch.Tensor
    commitment: torch.Tensor
    code_nll: torch.Tensor


def codebook_losses(encoded: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The codebook term ‖sg[z_e] − e‖² (moves the codes) and the commitment term ‖z_e − sg[e]‖² (moves the encoder),
    each summed over every position and dimension of one image's grid, (N,); sg stops the gradient."""
    codebook = (encoded.detach() - codes).pow(2).flatten(1).sum(dim=1)
    commitment = (encoded - codes.detach()).pow(2).flatten(1).sum(dim=1)
    return codebook, commitment


def vq_vae_loss(parts: VQParts, commitment: float = 0.25) -> LossParts:
    """Batch means, nats per image: total = −log p(x|z_q) + ‖sg[z_e] − e‖² + β‖z_e − sg[e]‖² + (−log p(k)), the
    VQ-VAE's loss (van den Oord et al. 2017, eq. 3) plus the code prior's own, which no encoder weight reaches
    (k is discrete). Beside it, the negative ELBO's parts: with q(k|x) one-hot, KL(q ‖ p) = −log p(k)."""
    reconstruction, code_nll = parts.reconstruction.mean(), parts.code_nll.mean()
    total = reconstruction + parts.codebook.mean() + commitment * parts.commitment.mean() + code_nll
    return LossParts(total, reconstruction, code_nll)
