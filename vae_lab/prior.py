"""Priors p(z) over a VAE's top latent layer: the standard N(0, I), a mixture of K learned Gaussians, and the
VampPrior (Tomczak & Welling 2018), the mixture of the encoder's own posteriors at K learned pseudo-inputs u_k:

    p(z) = (1/K) Σ_k N(z; m_k, diag s_k²)            (mixture: m_k, s_k learned)
    p(z) = (1/K) Σ_k q(z | u_k)                       (VampPrior: u_k learned, q the encoder)

Against the standard prior the KL term has a closed form; against a mixture it has none (the log of a sum of
Gaussians does not integrate against q in closed form), so the ELBO uses the paper's single-sample estimate
log q(z|x) − log p(z) at the z it draws. Each prior takes ``encode`` (images → μ, log σ²), which only the VampPrior
uses: it belongs to the model, so the prior holds no second copy of the encoder's weights.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .config import IMAGE_PIXELS, Config
from .loss import LOG_2PI, LayerKL, kl_divergence, log_normal, log_prior

Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# The authors' code starts the pseudo-inputs' logits at N(−0.05, 0.01²): gray images, sigmoid(−0.05) ≈ 0.49.
PSEUDO_INPUT_MEAN, PSEUDO_INPUT_STD = -0.05, 0.01


def log_mixture_density(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log p(z) = log (1/K) Σ_k N(z; m_k, diag s_k²) = logsumexp_k log N(z; m_k, s_k²) − log K, for z (..., D) and
    K components (K, D): shape (...).

    The K log densities come from the expanded square Σ_d (z_d² − 2 z_d m_kd + m_kd²) / s_kd²: two matrix products
    instead of a (..., K, D) tensor, in float64 so that the expansion loses no digits; logsumexp never underflows.
    """
    if means.dim() != 2 or means.shape != logvars.shape or z.shape[-1] != means.shape[1]:
        raise ValueError(f"expected latents (..., D) and components (K, D), got {tuple(z.shape)}, {tuple(means.shape)} "
                         f"and {tuple(logvars.shape)}")
    flat, m, logvar = z.reshape(-1, z.shape[-1]).double(), means.double(), logvars.double()
    precision = torch.exp(-logvar)
    square = flat.pow(2) @ precision.T - 2 * flat @ (m * precision).T + (m.pow(2) * precision).sum(dim=1)
    log_densities = -0.5 * (square + logvar.sum(dim=1) + means.shape[1] * LOG_2PI)
    return (torch.logsumexp(log_densities, dim=1) - math.log(len(means))).to(z.dtype).reshape(z.shape[:-1])


class StandardPrior(nn.Module):
    """p(z) = N(0, I): no parameters, a closed-form KL that splits over the units."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        return log_prior(z)

    def sample(self, n: int, generator: torch.Generator | None = None, encode: Encode | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def closed_form_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return kl_divergence(mu, logvar)

    def layer_kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, encode: Encode | None = None) -> LayerKL:
        """KL(q ‖ N(0, I)) per image, and per unit ½ (μ² + σ² − 1 − log σ²)."""
        per_unit = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
        return LayerKL(kl_divergence(mu, logvar), per_unit, self.latent_dim)


class GaussianMixturePrior(nn.Module):
    """What the mixture prior and the VampPrior share: p(z) = (1/K) Σ_k N(z; m_k, diag s_k²), equal weights.

    ``log_density`` turns the components into log p(z); notebook 12's exercise puts the student's own there.
    """

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__()
        self.latent_dim, self.n_components = latent_dim, components
        self.log_density: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = log_mixture_density

    def components(self, encode: Encode | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The K components' means and log-variances, each (K, D)."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, encode: Encode | None = None) -> torch.Tensor:
        return self.log_density(z, *self.components(encode))

    def sample(self, n: int, generator: torch.Generator | None = None, encode: Encode | None = None) -> torch.Tensor:
        """Pick a component uniformly, then z = m_k + s_k ε."""
        means, logvars = self.components(encode)
        chosen = torch.randint(self.n_components, (n,), generator=generator).to(means.device)
        eps = torch.randn(n, self.latent_dim, generator=generator).to(means.device)
        return means[chosen] + torch.exp(0.5 * logvars[chosen]) * eps

    def closed_form_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return None

    def layer_kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, encode: Encode | None = None) -> LayerKL:
        """The single-sample estimate log q(z|x) − log p(z) at the drawn z; it does not split over the units."""
        return LayerKL(log_normal(z, mu, logvar) - self.log_prob(z, encode), None, self.latent_dim)


class MixturePrior(GaussianMixturePrior):
    """K Gaussians with learned means and log-variances, equal weights; the means start at draws from N(0, I)."""

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__(latent_dim, components)
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))

    def components(self, encode: Encode | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.means, self.logvars


class VampPrior(GaussianMixturePrior):
    """p(z) = (1/K) Σ_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs u_k = sigmoid(a_k), images in
    (0, 1) that train with everything else (Tomczak & Welling 2018)."""

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__(latent_dim, components)
        self.pseudo_logits = nn.Parameter(PSEUDO_INPUT_MEAN + PSEUDO_INPUT_STD * torch.randn(components, IMAGE_PIXELS))

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs u_k as images, (K, 784) in (0, 1)."""
        return torch.sigmoid(self.pseudo_logits)

    def components(self, encode: Encode | None) -> tuple[torch.Tensor, torch.Tensor]:
        if encode is None:
            raise ValueError("the VampPrior's components are the encoder's q(z|u_k): pass the model's encoder as encode")
        return encode(self.pseudo_inputs)


def build_prior(config: Config, latent_dim: int) -> StandardPrior | MixturePrior | VampPrior:
    """The prior ``config.prior`` names, over a latent layer of ``latent_dim`` units (draws its initial values from
    torch's random state: the model builds it seeded, after its networks)."""
    if config.prior == "mixture":
        return MixturePrior(latent_dim, config.prior_components)
    if config.prior == "vamp":
        return VampPrior(latent_dim, config.prior_components)
    return StandardPrior(latent_dim)


# ---- A learned prior over discrete codes (notebook 14) ----

CODE_PRIOR_CHANNELS = 32  # feature maps in every layer of the code prior's PixelCNN
CODE_PRIOR_LAYERS = 3  # 3×3 masked convolutions after the first 5×5 one


class MaskedConv2d(nn.Conv2d):
    """A convolution whose output at a position sees only the positions before it in raster order (rows above, and
    left in its row): type 'A' hides the centre as well (the first layer, which must not see the code it predicts),
    type 'B' lets it through (later layers, whose centre already holds only earlier codes' features)."""

    def __init__(self, kind: str, channels: int, kernel_size: int) -> None:
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + (kind == "B"):] = 0
        mask[centre + 1:] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class CodePrior(nn.Module):
    """p(k) = Π_i p(k_i | k_<i) over a grid of code indices in raster order: a small PixelCNN (van den Oord,
    Kalchbrenner & Kavukcuoglu 2016), as the VQ-VAE paper fits over its codes. Each code is embedded, one type-A
    masked 5×5 convolution and `CODE_PRIOR_LAYERS` type-B 3×3 ones (ReLU between) give K logits per position."""

    def __init__(self, codebook_size: int, grid: int) -> None:
        super().__init__()
        self.codebook_size, self.grid = codebook_size, grid
        self.embed = nn.Embedding(codebook_size, CODE_PRIOR_CHANNELS)
        self.first = MaskedConv2d("A", CODE_PRIOR_CHANNELS, 5)
        self.layers = nn.ModuleList(MaskedConv2d("B", CODE_PRIOR_CHANNELS, 3) for _ in range(CODE_PRIOR_LAYERS))
        self.out = nn.Conv2d(CODE_PRIOR_CHANNELS, codebook_size, kernel_size=1)

    def logits(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (N, G, G) → logits of p(k_i | k_<i), (N, K, G, G)."""
        h = self.first(self.embed(indices).permute(0, 3, 1, 2))
        for layer in self.layers:
            h = layer(torch.relu(h))
        return self.out(torch.relu(h))

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        """log p(k) = Σ_i log p(k_i | k_<i) per grid, (N,), in nats."""
        return -nn.functional.cross_entropy(self.logits(indices), indices, reduction="none").sum(dim=(1, 2))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` grids of codes (n, G, G), drawn one position at a time in raster order: k_i ~ p(k_i | k_<i)."""
        device = self.out.weight.device
        indices = torch.zeros(n, self.grid, self.grid, dtype=torch.long, device=device)
        for row in range(self.grid):
            for column in range(self.grid):
                probabilities = torch.softmax(self.logits(indices)[:, :, row, column].double(), dim=1).cpu()
                indices[:, row, column] = torch.multinomial(probabilities, 1, generator=generator)[:, 0].to(device)
        return indices
