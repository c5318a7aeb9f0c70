"""How good is a trained VAE? The test ELBO and an importance-weighted estimate of log p(x) (Burda et al. 2016).

For K samples z_k ~ q(z|x), with weights w_k = p(x|z_k) p(z_k) / q(z_k|x):

    ELBO     = E_q[log w]                          ≤ log p(x)
    IWAE_K   = E[log (1/K) Σ_k w_k]                 ≤ log p(x), rising to log p(x) as K grows

The negative log-likelihood (NLL) reported for a model is −IWAE_K with K = 5000, as in the paper.
`LinearGaussian`, whose log p(x) is known in closed form, checks the estimator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .config import MAX_IMPORTANCE_SAMPLES, MAX_SEED, BadValue, require_int
from .data import batches, binarized_test_images, check_pixels
from .loss import kl_divergence, log_normal, log_prior, reconstruction_loss, sample_posterior
from .model import VAE, HierarchicalVAE, decoder_log_likelihood, flatten_images, in_eval_mode
from .progress import progress_bar

ROWS_PER_PASS = 20_000  # (samples × images) decoded at once: about 60 MB of logits for MNIST
# Burda, Grosse & Salakhutdinov (2016), Table 1: NLL in nats on dynamically binarised MNIST, K = 5000.
PUBLISHED_NLL = {"VAE, 1 stochastic layer (Burda et al. 2016)": 86.76,
                 "IWAE, k = 5, 1 stochastic layer (Burda et al. 2016)": 85.54,
                 "IWAE, k = 50, 1 stochastic layer (Burda et al. 2016)": 84.78}


def log_importance_weights(mu: torch.Tensor, logvar: torch.Tensor, log_likelihood: Callable[[torch.Tensor], torch.Tensor],
                           k: int, generator: torch.Generator | None = None,
                           log_density: Callable[[torch.Tensor], torch.Tensor] = log_prior) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) − log q(z|x) for ``k`` draws z ~ q = N(μ, σ²): shape (k, N).

    ``log_likelihood`` maps latents (k, N, D) to log p(x|z) of shape (k, N); ``log_density`` is log p(z), by
    default the standard prior's (a learned prior: ``lambda z: model.prior.log_prob(z, model.encoder)``).
    """
    z, log_q = sample_posterior(mu, logvar, k, generator)
    return log_likelihood(z) + log_density(z) - log_q


@dataclass(frozen=True)
class Bounds:
    """Per-image estimates in nats: ``elbo`` (mean log w) and ``iwae`` (log of the mean w), both ≤ log p(x)."""

    elbo: torch.Tensor
    iwae: torch.Tensor


def importance_bounds(mu: torch.Tensor, logvar: torch.Tensor, log_likelihood: Callable[[torch.Tensor], torch.Tensor],
                      k: int, chunk: int | None = None, generator: torch.Generator | None = None,
                      log_density: Callable[[torch.Tensor], torch.Tensor] = log_prior) -> Bounds:
    """The ELBO and IWAE_K of each image from ``k`` samples z ~ N(μ, σ²), drawn ``chunk`` at a time
    (`log_importance_weights`; ``log_density`` is log p(z))."""
    return bounds_from_draws(
        lambda n: log_importance_weights(mu, logvar, log_likelihood, n, generator, log_density), k, chunk)


def model_bounds(model: VAE | HierarchicalVAE, x: torch.Tensor, labels: torch.Tensor | None, k: int,
                 chunk: int | None = None, generator: torch.Generator | None = None) -> Bounds:
    """The ELBO and IWAE_K of each image for any model kind (any prior, one or two latent layers), from its own
    draws z ~ q(z|x) (`importance_draws`), ``chunk`` at a time."""
    return bounds_from_draws(lambda n: model.importance_draws(x, labels, n, generator).log_weights, k, chunk)


def bounds_from_draws(log_weights: Callable[[int], torch.Tensor], k: int, chunk: int | None = None) -> Bounds:
    """The ELBO and IWAE_K of each image from ``k`` log-weights, drawn ``chunk`` at a time by ``log_weights(n)`` (n, N).

    IWAE_K = logsumexp_k(log w_k) − log K; the chunks' logsumexps combine exactly, so memory stays bounded.
    """
    require_int("the number of importance samples", k)
    chunk = min(k, chunk or k)
    log_sums, total = [], 0.0
    for start in range(0, k, chunk):
        log_w = log_weights(min(chunk, k - start)).double()
        log_sums.append(torch.logsumexp(log_w, dim=0))
        total = total + log_w.sum(dim=0)
    return Bounds(elbo=total / k, iwae=torch.logsumexp(torch.stack(log_sums), dim=0) - math.log(k))


@dataclass(frozen=True)
class Evaluation:
    """A model's test scores in nats per image: ``elbo`` ≤ −``nll`` (the ELBO gap is −elbo − nll ≥ 0)."""

    elbo: float
    nll: float
    iwae_samples: int
    binarized: bool
    test_images: int

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def scoring_images(images: torch.Tensor, binarized: bool) -> torch.Tensor:
    """The images a model is scored on: as they are, or binarised once with a fixed seed (dynamically binarised MNIST)."""
    images = flatten_images(images)
    return binarized_test_images(images) if binarized else images


@torch.no_grad()
def evaluate(model: VAE | HierarchicalVAE, images: torch.Tensor, labels: torch.Tensor | None = None, *, iwae_samples: int = 5000,
             binarized: bool = False, seed: int = 0, progress: bool = False) -> Evaluation:
    """The mean test ELBO (over all K samples) and NLL = −IWAE_K of ``model`` on ``images``.

    With ``binarized=True`` the pixels are first binarised once (seed 0), so the numbers are true
    log-likelihoods of binary images; on gray pixels a Bernoulli's are not (see the continuous Bernoulli).
    """
    require_int("iwae_samples", iwae_samples, maximum=MAX_IMPORTANCE_SAMPLES, hint="Burda et al. use 5000; 1 gives the ELBO")
    require_int("seed", seed, minimum=0, maximum=MAX_SEED)
    check_pixels("the images", flatten_images(images))
    x_all = scoring_images(images, binarized).to(model.device)
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (len(x_all),)):
        raise BadValue(f"expected one label per image, shape ({len(x_all)},), got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if model.config.conditional and labels is None:
        raise ValueError("this is a conditional VAE: pass the digit labels too, e.g. evaluate(model, images, labels)")
    labels = labels.to(model.device) if model.config.conditional else None
    generator = torch.Generator(device=model.device).manual_seed(seed)
    chunk = min(iwae_samples, ROWS_PER_PASS)
    per_pass = max(1, ROWS_PER_PASS // chunk)
    elbo, iwae = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    with in_eval_mode(model):
        for batch in progress_bar(batches(x_all, per_pass, labels=labels), total=math.ceil(len(x_all) / per_pass),
                                  disable=not progress, unit="batch", desc="evaluating"):
            x, y = batch if labels is not None else (batch, None)
            bounds = model_bounds(model, x, y, iwae_samples, chunk, generator)
            elbo += bounds.elbo.sum().cpu()
            iwae += bounds.iwae.sum().cpu()
    n = len(x_all)
    return Evaluation(elbo=float(elbo / n), nll=float(-iwae / n), iwae_samples=iwae_samples, binarized=binarized,
                      test_images=n)


@torch.no_grad()
def mean_code_elbo(model: VAE, images: torch.Tensor) -> float:
    """The "ELBO" with z = μ instead of z ~ q(z|x), averaged over ``images``: NOT a bound on log p(x).

    It skips the noise the KL term pays for, so it flatters the model; notebook 08 shows by how much.
    """
    x = flatten_images(images).to(model.device)
    mu, logvar = model.encoder(x)
    return float(-(reconstruction_loss(model.decoder(mu), x, model.config.likelihood) + kl_divergence(mu, logvar)).mean())


@torch.no_grad()
def likelihood_at_mean_and_sampled(model: VAE, images: torch.Tensor, samples: int = 100,
                                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: log p(x|z = μ), and the average of log p(x|z) over ``samples`` draws z ~ q(z|x), each (N,).

    Nothing orders the two in general (log p(x|z) is not concave in z); notebook 08 compares them on test digits.
    """
    require_int("samples", samples)
    x = flatten_images(images).to(model.device)
    with in_eval_mode(model):
        mu, logvar = model.encoder(x)
        log_likelihood = decoder_log_likelihood(model, x)
        z, _ = sample_posterior(mu, logvar, samples, torch.Generator(device=model.device).manual_seed(seed))
        return log_likelihood(mu[None])[0].cpu(), log_likelihood(z).mean(dim=0).cpu()


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s² I): the marginal p(x) = N(b, WWᵀ + s² I) is known exactly.

    Its exact posterior is Gaussian with a full covariance; `mean_field_posterior` gives the best diagonal
    approximation instead, so the ELBO is visibly loose and IWAE has a gap to close.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, noise_std: float) -> None:
        self.weight, self.bias, self.noise_std = weight, bias, noise_std

    @classmethod
    def random(cls, x_dim: int = 10, z_dim: int = 4, noise_std: float = 0.3, seed: int = 0) -> LinearGaussian:
        """A random model in float64 (a fixed ``seed`` gives the same model)."""
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(x_dim, z_dim, generator=generator, dtype=torch.float64)
        return cls(weight, torch.randn(x_dim, generator=generator, dtype=torch.float64), noise_std)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of x: z ~ N(0, I), then x ~ N(Wz + b, s² I)."""
        z = torch.randn(n, self.weight.shape[1], generator=generator, dtype=self.weight.dtype)
        noise = torch.randn(n, self.weight.shape[0], generator=generator, dtype=self.weight.dtype)
        return z @ self.weight.T + self.bias + self.noise_std * noise

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x) = log N(x; b, WWᵀ + s² I), per row of ``x``."""
        covariance = self.weight @ self.weight.T + self.noise_std ** 2 * torch.eye(len(self.bias), dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.bias, covariance).log_prob(x)

    def log_likelihood(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """log p(x|z) = log N(x; Wz + b, s² I) for the rows of ``x``, as a function of latents z (k, N, D)."""
        logvar = torch.full_like(x, 2 * math.log(self.noise_std))
        return lambda z: log_normal(x, z @ self.weight.T + self.bias, logvar)

    def mean_field_posterior(self, x: torch.Tensor, widen: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² of the best diagonal q (the exact posterior mean, variances 1 / diag(precision)),
        its standard deviations multiplied by ``widen`` to imitate an imperfect encoder."""
        precision = torch.eye(self.weight.shape[1], dtype=x.dtype) + self.weight.T @ self.weight / self.noise_std ** 2
        mu = torch.linalg.solve(precision, self.weight.T @ (x - self.bias).T / self.noise_std ** 2).T
        return mu, (2 * math.log(widen) - torch.log(torch.diagonal(precision))).expand_as(mu)
