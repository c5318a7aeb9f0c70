"""The sum-vs-mean pitfall: BCE averaged over the 784 pixels next to a summed KL weighs the KL 784× too much.

Dividing a loss by a constant leaves Adam's steps unchanged, so training the mean-reduced loss is training
`fit` with ``Config(beta=784)``.
"""
from __future__ import annotations

import torch

from .loss import kl_divergence, reconstruction_loss
from .model import flatten_images

REDUCTIONS = ("sum", "mean")


def reduced_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                 reduction: str = "sum") -> torch.Tensor:
    """Batch mean of BCE + KL, with the BCE summed over pixels ('sum': the negative ELBO)
    or averaged over them ('mean': (BCE + 784·KL) / 784, the pitfall)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    bce = reconstruction_loss(logits, flatten_images(x))
    if reduction == "mean":
        bce = bce / logits.shape[1]
    return (bce + kl_divergence(mu, logvar)).mean()
