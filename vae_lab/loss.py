"""The negative ELBO: a Bernoulli reconstruction term plus the closed-form KL to N(0, I). Pure tensor functions."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels, per image: −Σ [x log p + (1−x) log(1−p)], p = sigmoid(logits).

    Computed from logits (log-sum-exp form), so it stays finite where a sigmoid would round to 0 or 1.
    """
    if x.shape != logits.shape:
        raise ValueError(f"targets of shape {tuple(x.shape)} do not match logits of shape {tuple(logits.shape)}; "
                         "flatten the images to (N, 784) first")
    low, high = torch.aminmax(x)
    if low < 0 or high > 1:
        raise ValueError(f"binary cross-entropy needs targets in [0, 1], got values from {low.item():.3g} "
                         f"to {high.item():.3g}; divide 0–255 pixels by 255")
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per image: −½ Σ (1 + log σ² − μ² − σ²)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


class LossParts(NamedTuple):
    """Batch means, in nats per image: the total (negative ELBO) and its two parts."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> LossParts:
    """Negative ELBO per image, BCE + β·KL, averaged over the batch; call it as ``vae_loss(x, *model(x))``."""
    x = x.reshape(logits.shape) if x.numel() == logits.numel() else x
    reconstruction = reconstruction_loss(logits, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossParts(reconstruction + beta * kl, reconstruction, kl)
