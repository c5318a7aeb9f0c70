"""The latent space: encode a dataset, rank its dimensions, walk between codes, project to 2-D, tile a 2-D manifold,
and, for a conditional VAE, decode one style as every digit. Tensor functions only; figures and sliders draw them."""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch

from .data import batches
from .loss import log_normal
from .model import IMAGE_PIXELS, N_DIGITS, VAE, flatten_images
from .prior import log_mixture_density


@torch.no_grad()
def encode_posterior(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None,
                     batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) = N(μ, diag σ²) for every image (a conditional VAE also needs its ``labels``):
    μ and log σ², each (N, latent_dim), encoded in batches."""
    images = flatten_images(images)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"expected one label per image, got {len(labels)} labels for {len(images)} images")
    device = model.device
    if labels is None:
        parts = [model.encoder(x.to(device)) for x in batches(images, batch_size)]
    else:
        parts = [model.encoder(x.to(device), y.to(device)) for x, y in batches(images, batch_size, labels=labels)]
    return torch.cat([mu for mu, _ in parts]).cpu(), torch.cat([logvar for _, logvar in parts]).cpu()


def rank_dimensions(mu: torch.Tensor) -> torch.Tensor:
    """Latent dimensions ordered by Var_n(μ_nj), how much the mean moves from image to image, largest first."""
    return torch.argsort(mu.var(dim=0), descending=True, stable=True)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Average KL to the prior in each dimension: ½ mean_n(μ² + σ² − 1 − log σ²); summed, it is the KL term."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(dim=0)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int | Sequence[float] | torch.Tensor = 10,
                spherical: bool = False) -> torch.Tensor:
    """Points z(t) from z0 (t = 0) to z1 (t = 1), one row per t: linear (1 − t)·z0 + t·z1, or spherical
    (slerp) [sin((1 − t)Ω)·z0 + sin(tΩ)·z1] / sin Ω with Ω the angle between z0 and z1.

    ``steps`` is a number of evenly spaced t (both ends included) or the t values themselves.
    """
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"expected two latent codes of the same shape (d,), got {tuple(z0.shape)} and "
                         f"{tuple(z1.shape)}; pick single codes with mu[i], not batches")
    if isinstance(steps, int) and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = torch.linspace(0, 1, steps) if isinstance(steps, int) else torch.as_tensor(steps, dtype=z0.dtype)
    t = t.to(z0.dtype).reshape(-1, 1)
    omega = torch.arccos(torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1))
    if not spherical or omega < 1e-4:  # (nearly) parallel codes: slerp and lerp coincide
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


class Projection(NamedTuple):
    """Points on the top two principal axes, the fraction of the total variance each axis carries, and the centre and
    axes themselves (2, D), so that other points can be drawn in the same plane."""

    coordinates: torch.Tensor
    explained: torch.Tensor
    mean: torch.Tensor
    axes: torch.Tensor

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Other points (M, D) in the same plane: (points − mean)·axesᵀ, shape (M, 2)."""
        return ((points.double() - self.mean) @ self.axes.T).to(points.dtype)


def pca_2d(points: torch.Tensor) -> Projection:
    """PCA by SVD: X − mean = U S Vᵀ; coordinates (X − mean)·V[:, :2], explained S²ₖ / Σ S² for k = 1, 2."""
    mean = points.double().mean(dim=0)
    centred = points.double() - mean
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]
    axes = axes * torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # SVD's signs are arbitrary
    return Projection((centred @ axes.T).to(points.dtype), (s[:2] ** 2 / (s ** 2).sum()).to(points.dtype), mean, axes)


def gaussian_quantiles(n: int = 20, low: float = 0.05, high: float = 0.95) -> torch.Tensor:
    """z = Φ⁻¹(p) for n evenly spaced p in [low, high]: neighbouring z's hold equal prior mass between them."""
    if not 0 < low < high < 1:
        raise ValueError(f"need 0 < low < high < 1 for Gaussian quantiles, got low={low}, high={high}")
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(low, high, n))


@torch.no_grad()
def manifold_grid(model: VAE, n: int = 20) -> torch.Tensor:
    """Decode the n×n grid z = (Φ⁻¹(p_j), Φ⁻¹(p_{n−1−i})) of a 2-D model: images (n², 784), z₂ largest on top."""
    if model.config.latent_dim != 2:
        raise ValueError(f"the manifold grid needs a model with a 2-D latent space, got latent_dim="
                         f"{model.config.latent_dim}; use load_pretrained('vae_latent2')")
    q = gaussian_quantiles(n)
    z = torch.stack([q.repeat(n), q.flip(0).repeat_interleave(n)], dim=1)
    return model.decode(z).cpu()


def require_conditional(model: VAE) -> None:
    """Raise a clear error unless ``model`` is a conditional VAE."""
    if not model.config.conditional:
        raise ValueError("this needs a conditional VAE, which is told the digit; load one with load_pretrained('cvae') "
                         "or build it with VAE(Config(conditional=True))")


@torch.no_grad()
def encode_with_labels(model: VAE, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x, y) = N(μ, diag σ²) for every image and its label: μ and log σ², each (N, latent_dim), in batches."""
    require_conditional(model)
    return encode_posterior(model, images, labels, batch_size)


@torch.no_grad()
def decode_every_digit(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Decode each latent z_i with every label y = 0…9: images (len(z)·10, 784), row i·10 + y is the mean of p(x|z_i, y)."""
    require_conditional(model)
    return model.decode(z.repeat_interleave(N_DIGITS, dim=0), torch.arange(N_DIGITS).repeat(len(z))).cpu()


def style_transfer(model: VAE, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's style z = μ(x, y), encoded with its own label, written as every digit: images (N·10, 784)."""
    return decode_every_digit(model, encode_with_labels(model, images, labels)[0])


def style_walk(model: VAE, dim: int, steps: int = 9) -> torch.Tensor:
    """Rows y = 0…9, columns z_dim = Φ⁻¹(p) for ``steps`` evenly spaced p in [0.05, 0.95], the other z_j = 0:
    images (10·steps, 784)."""
    if not 0 <= dim < model.config.latent_dim:
        raise ValueError(f"dim must name a latent dimension between 0 and {model.config.latent_dim - 1}, got {dim}")
    z = torch.zeros(steps, model.config.latent_dim)
    z[:, dim] = gaussian_quantiles(steps)
    return decode_every_digit(model, z).reshape(steps, N_DIGITS, IMAGE_PIXELS).transpose(0, 1).reshape(-1, IMAGE_PIXELS)


class MarginalKLSplit(NamedTuple):
    """ELBO surgery (Hoffman & Johnson 2016), in nats per image: the average KL term = the mutual information
    I_q(x; z) between image index and code + KL(q(z) ‖ p(z)), the aggregate posterior's distance from the prior."""

    average_kl: float
    mutual_information: float
    marginal_kl: float


@torch.no_grad()
def marginal_kl_split(mu: torch.Tensor, logvar: torch.Tensor, log_density: Callable[[torch.Tensor], torch.Tensor],
                      draws: int = 1, seed: int = 0, chunk: int = 500) -> MarginalKLSplit:
    """Split the average KL of N posteriors q(z|x_n) = N(μ_n, σ_n²) against the prior ``log_density`` (log p(z)).

    With the aggregate posterior q(z) = (1/N) Σ_m q(z|x_m), for ``draws`` z ~ q(z|x_n) per image:
    average KL ≈ mean[log q(z|x_n) − log p(z)], I ≈ mean[log q(z|x_n) − log q(z)], marginal KL ≈ mean[log q(z) −
    log p(z)], so the three add up exactly. log q(z) is a mixture of all N posteriors (`log_mixture_density`), computed
    ``chunk`` draws at a time. I can never exceed log N: N images carry at most log N nats of identity.
    """
    generator = torch.Generator().manual_seed(seed)
    log_q_own, log_q_aggregate, log_p = [], [], []
    for start in range(0, len(mu), chunk):
        m, lv = mu[start:start + chunk], logvar[start:start + chunk]
        z = m + torch.exp(0.5 * lv) * torch.randn((draws, *m.shape), generator=generator)
        log_q_own.append(log_normal(z, m, lv).double())
        log_q_aggregate.append(log_mixture_density(z, mu, logvar).double())
        log_p.append(log_density(z).double())
    own, aggregate, prior = (torch.cat(parts, dim=1).mean().item() for parts in (log_q_own, log_q_aggregate, log_p))
    return MarginalKLSplit(own - prior, own - aggregate, aggregate - prior)


@torch.no_grad()
def hole_fraction(prior_draws: torch.Tensor, new_codes: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  quantile: float = 0.05) -> float:
    """The share of prior draws that land in a hole of the aggregate posterior q(z) = (1/N) Σ_n N(μ_n, σ_n²):
    where q(z) is lower than at all but the ``quantile`` least likely of ``new_codes``, codes drawn from the
    posteriors of other images than those q is made of. A prior that matched q(z) would score ``quantile``."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie strictly between 0 and 1, got {quantile}")
    threshold = torch.quantile(log_mixture_density(new_codes, mu, logvar).double(), quantile)
    return float((log_mixture_density(prior_draws, mu, logvar).double() < threshold).double().mean())
