"""Two Monte Carlo estimators of ∂/∂μ E_{z~N(μ, σ²)}[f(z)]: score function (REINFORCE) and reparameterization.

Each function returns ``repeats`` independent estimates, each averaged over ``n_samples`` draws, so the
spread of the estimates (their variance) can be compared. Computed in float64 with autograd.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.distributions import Normal

from ..config import require_int

Objective = Callable[[torch.Tensor], torch.Tensor]  # f, applied elementwise to a tensor of z values
Estimator = Callable[..., torch.Tensor]


def _check_sizes(sigma: float, n_samples: int, repeats: int) -> None:
    require_int("n_samples", n_samples)
    require_int("repeats", repeats)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}; it is a standard deviation, not log σ²")


def _mu_leaf(mu: float, repeats: int) -> torch.Tensor:
    """One copy of μ per repeat, so autograd returns one gradient per repeat."""
    return torch.full((repeats, 1), float(mu), dtype=torch.float64, requires_grad=True)


def score_function_gradients(f: Objective, mu: float, sigma: float, n_samples: int,
                             repeats: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """REINFORCE: ``repeats`` estimates (1/n) Σ f(z_i)·∂/∂μ log N(z_i; μ, σ²) = (1/n) Σ f(z_i)(z_i − μ)/σ²,
    each from n draws z_i ~ N(μ, σ²)."""
    _check_sizes(sigma, n_samples, repeats)
    mu_t = _mu_leaf(mu, repeats)
    eps = torch.randn(repeats, n_samples, generator=generator, dtype=torch.float64)
    z = (mu_t + sigma * eps).detach()  # a plain sample, like Normal(μ, σ).sample(): no path back to μ
    surrogate = (f(z).detach() * Normal(mu_t, sigma).log_prob(z)).mean(dim=1).sum()
    (gradient,) = torch.autograd.grad(surrogate, mu_t)
    return gradient[:, 0]


def reparameterized_gradients(f: Objective, mu: float, sigma: float, n_samples: int,
                              repeats: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterization: ``repeats`` estimates (1/n) Σ ∂/∂μ f(μ + σ·ε_i) = (1/n) Σ f′(z_i), ε_i ~ N(0, 1)."""
    _check_sizes(sigma, n_samples, repeats)
    mu_t = _mu_leaf(mu, repeats)
    eps = torch.randn(repeats, n_samples, generator=generator, dtype=torch.float64)
    z = mu_t + sigma * eps  # like Normal(μ, σ).rsample(): z is a differentiable function of μ
    (gradient,) = torch.autograd.grad(f(z).mean(dim=1).sum(), mu_t)
    return gradient[:, 0]


def gradient_variance(estimator: Estimator, f: Objective, mu: float, sigma: float,
                      sample_sizes: Sequence[int], repeats: int, seed: int = 0) -> list[float]:
    """Variance of ``estimator`` over ``repeats`` runs for each n in ``sample_sizes``; it falls like Var₁ / n."""
    generator = torch.Generator().manual_seed(seed)
    return [estimator(f, mu, sigma, n, repeats, generator).var().item() for n in sample_sizes]
