"""The VAE: an encoder to (μ, log σ²), the reparameterization z = μ + σ·ε, and a decoder to pixel logits.

Tensors in, tensors out: this module knows nothing about datasets, training or screens.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config

IMAGE_PIXELS = 28 * 28
LOGVAR_RANGE = (-30.0, 20.0)  # σ from 3e-7 to 2e4: wide enough never to bind in normal training, finite always


def flatten_images(x: torch.Tensor) -> torch.Tensor:
    """Check a batch of images and return it as (N, 784) floats."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}; convert with torch.as_tensor(x)")
    if not x.is_floating_point():
        raise TypeError(f"expected floating-point images in [0, 1], got dtype {x.dtype}; convert with x.float() / 255")
    if x.dim() == 2 and x.shape[1] == IMAGE_PIXELS:
        return x
    if x.dim() == 4 and tuple(x.shape[1:]) == (1, 28, 28):
        return x.reshape(len(x), IMAGE_PIXELS)
    raise ValueError(f"expected images of shape (N, 784) or (N, 1, 28, 28), got {tuple(x.shape)}; "
                     "flatten 28×28 images first, and add a batch dimension to a single image with x[None]")


class Encoder(nn.Module):
    """q(z|x): 784 → hidden (ReLU) → μ and log σ², each of size latent_dim."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400) -> None:
        super().__init__()
        self.hidden = nn.Linear(IMAGE_PIXELS, hidden_dim)
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.hidden(flatten_images(x)))
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) and σ = exp(½ log σ²); gradients flow to μ and log σ²."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


class Decoder(nn.Module):
    """p(x|z): latent_dim → hidden (ReLU) → 784 Bernoulli logits (a Sigmoid turns them into pixels)."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden = nn.Linear(latent_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, IMAGE_PIXELS)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"the decoder expects latents of shape (N, {self.latent_dim}), got {tuple(z.shape)}; "
                             f"draw them with torch.randn(n, {self.latent_dim})")
        return self.out(F.relu(self.hidden(z)))


class VAEOutput(NamedTuple):
    """What the loss needs: pixel logits and the posterior's μ and log σ²."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def images(self) -> torch.Tensor:
        """Reconstructions as pixels in [0, 1], shape (N, 784)."""
        return torch.sigmoid(self.logits)


class VAE(nn.Module):
    """The lab's VAE; its sizes come from ``config`` and its initial weights from ``config.seed``."""

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else Config()
        with torch.random.fork_rng(devices=[]):  # seeded initial weights without touching the caller's RNG
            torch.manual_seed(self.config.seed)
            self.encoder = Encoder(self.config.latent_dim, self.config.hidden_dim)
            self.decoder = Decoder(self.config.latent_dim, self.config.hidden_dim)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.encoder(x)
        return VAEOutput(self.decoder(reparameterize(mu, logvar)), mu, logvar)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, latent_dim) → images (N, 784) in [0, 1]."""
        return torch.sigmoid(self.decoder(z.to(self.device)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Encode and decode with z = μ (no noise): images (N, 784) in [0, 1]."""
        mu, _ = self.encoder(x.to(self.device))
        return self.decode(mu)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior N(0, I): images (n, 784) in [0, 1]."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return self.decode(z)
