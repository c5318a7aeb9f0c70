"""The VAE: an encoder to (μ, log σ²), the reparameterization z = μ + σ·ε, and a decoder to pixel logits.

Two architectures share one interface: fully connected layers (the lab's MLP) and strided convolutions
(notebook 11; DCGAN's pattern, Radford, Metz & Chintala 2016: strides instead of pooling). Two other kinds: two
stochastic layers (notebook 13) and the VQ-VAE's discrete codes with its quantiser (notebook 14).
Tensors in, tensors out: this module knows nothing about datasets, training or screens.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import MAX_SEED, Config, require_int
from .loss import (ElboParts, ImportanceDraws, LayerKL, VQParts, codebook_losses, gaussian_kl, gaussian_kl_per_unit,
                   log_normal, pixel_means, reconstruction_loss, sample_posterior)
from .prior import CodePrior, build_prior

IMAGE_PIXELS = 28 * 28
N_DIGITS = 10  # the classes a conditional VAE can be told
LOGVAR_RANGE = (-30.0, 20.0)  # σ from 3e-7 to 2e4: wide enough never to bind in normal training, finite always


def flatten_images(x: torch.Tensor) -> torch.Tensor:
    """Check a batch of images and return it as (N, 784) floats."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}; convert with torch.as_tensor(x)")
    if not x.is_floating_point():
        raise TypeError(f"expected floating-point images in [0, 1], got dtype {x.dtype}; convert with x.float() / 255")
    if x.dim() in (2, 4) and len(x) == 0:
        raise ValueError("got an empty batch (0 images); pass at least one image")
    if x.dim() == 2 and x.shape[1] == IMAGE_PIXELS:
        return x
    if x.dim() == 4 and tuple(x.shape[1:]) == (1, 28, 28):
        return x.reshape(len(x), IMAGE_PIXELS)
    raise ValueError(f"expected images of shape (N, 784) or (N, 1, 28, 28), got {tuple(x.shape)}; "
                     "flatten 28×28 images first, and add a batch dimension to a single image with x[None]")


def with_labels(features: torch.Tensor, labels: torch.Tensor | None, n_classes: int) -> torch.Tensor:
    """Append one-hot digit labels to ``features`` for a conditional VAE (n_classes > 0); otherwise pass through."""
    if n_classes == 0:
        if labels is not None:
            raise ValueError("this VAE is not conditional; call it without labels, or build it with Config(conditional=True)")
        return features
    if labels is None:
        raise ValueError("this is a conditional VAE: pass the digit labels too, e.g. model(x, labels)")
    labels = torch.as_tensor(labels, device=features.device)
    if labels.shape != (len(features),) or labels.is_floating_point() or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"expected {len(features)} integer labels in 0..{n_classes - 1}, one per image, "
                         f"got shape {tuple(labels.shape)} and dtype {labels.dtype}")
    return torch.cat([features, F.one_hot(labels.long(), n_classes).to(features.dtype)], dim=1)


def check_latents(z: torch.Tensor, latent_dim: int, dtype: torch.dtype) -> None:
    """Raise a clear error unless ``z`` has shape (N, latent_dim) and the weights' dtype."""
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"the decoder expects latents of shape (N, {latent_dim}), got {tuple(z.shape)}; "
                         f"draw them with torch.randn(n, {latent_dim})")
    check_dtype("latents", z, dtype)


def check_dtype(what: str, x: torch.Tensor, dtype: torch.dtype) -> None:
    """Raise a clear error unless ``x`` has the dtype of the weights it meets (NumPy's float64 is the usual slip)."""
    if x.dtype != dtype:
        fix = "x.float()" if dtype == torch.float32 else f"x.to({dtype})"
        raise TypeError(f"expected {what} of dtype {dtype} like the model's weights, got {x.dtype}; convert with {fix}")


def _deeper_layers(hidden_dim: int, hidden_layers: int) -> nn.ModuleList | None:
    """The hidden → hidden layers after the first hidden layer; None for the lab's one-layer networks."""
    if hidden_layers == 1:
        return None
    return nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(hidden_layers - 1))


class Encoder(nn.Module):
    """q(z|x): 784 → hidden (ReLU) [→ hidden (ReLU) …] → μ and log σ², each of size latent_dim."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400, hidden_layers: int = 1, n_classes: int = 0) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.hidden = nn.Linear(IMAGE_PIXELS + n_classes, hidden_dim)
        self.more_hidden = _deeper_layers(hidden_dim, hidden_layers)
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = flatten_images(x)
        check_dtype("images", x, self.hidden.weight.dtype)
        h = F.relu(self.hidden(with_labels(x, labels, self.n_classes)))
        for layer in self.more_hidden or ():
            h = F.relu(layer(h))
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) and σ = exp(½ log σ²); gradients flow to μ and log σ²."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


class Decoder(nn.Module):
    """p(x|z): latent_dim → hidden (ReLU) [→ hidden (ReLU) …] → 784 pixel logits (a Sigmoid turns them into pixels)."""

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400, hidden_layers: int = 1, n_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_classes = n_classes
        self.hidden = nn.Linear(latent_dim + n_classes, hidden_dim)
        self.more_hidden = _deeper_layers(hidden_dim, hidden_layers)
        self.out = nn.Linear(hidden_dim, IMAGE_PIXELS)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_latents(z, self.latent_dim, self.hidden.weight.dtype)
        h = F.relu(self.hidden(with_labels(z, labels, self.n_classes)))
        for layer in self.more_hidden or ():
            h = F.relu(layer(h))
        return self.out(h)


CHANNELS = (32, 64)  # feature maps after the first and the second strided convolution
FEATURES = CHANNELS[1] * 7 * 7  # 64 maps of 7×7 = 3,136 numbers between the convolutions and the latent


class ConvEncoder(nn.Module):
    """q(z|x): 1×28×28 → 32×14×14 → 64×7×7 (ReLU after each) → μ and log σ².

    Each convolution has kernel 4, stride 2, padding 1, so n_out = ⌊(n + 2·1 − 4) / 2⌋ + 1 = n / 2.
    """

    def __init__(self, latent_dim: int = 20, n_classes: int = 0) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.conv1 = nn.Conv2d(1, CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(CHANNELS[0], CHANNELS[1], kernel_size=4, stride=2, padding=1)
        self.mu = nn.Linear(FEATURES + n_classes, latent_dim)
        self.logvar = nn.Linear(FEATURES + n_classes, latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = flatten_images(x).view(-1, 1, 28, 28)
        check_dtype("images", h, self.conv1.weight.dtype)
        h = F.relu(self.conv2(F.relu(self.conv1(h)))).flatten(1)
        h = with_labels(h, labels, self.n_classes)
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


class ConvDecoder(nn.Module):
    """p(x|z): latent → 64×7×7 → 32×14×14 → 1×28×28 pixel logits, by transposed convolutions.

    Each transposed convolution has kernel 4, stride 2, padding 1, so n_out = (n − 1)·2 − 2·1 + 4 = 2n.
    """

    def __init__(self, latent_dim: int = 20, n_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_classes = n_classes
        self.hidden = nn.Linear(latent_dim + n_classes, FEATURES)
        self.deconv1 = nn.ConvTranspose2d(CHANNELS[1], CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(CHANNELS[0], 1, kernel_size=4, stride=2, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_latents(z, self.latent_dim, self.hidden.weight.dtype)
        h = F.relu(self.hidden(with_labels(z, labels, self.n_classes))).view(-1, CHANNELS[1], 7, 7)
        return self.deconv2(F.relu(self.deconv1(h))).reshape(-1, IMAGE_PIXELS)


class VAEOutput(NamedTuple):
    """What the loss needs: pixel logits and the posterior's μ and log σ²."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def images(self) -> torch.Tensor:
        """Reconstructions as pixels in [0, 1], shape (N, 784)."""
        return torch.sigmoid(self.logits)


class GenerativeModel(nn.Module):
    """What every model kind shares: the device its weights are on and its number of weights."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def parameter_count(self) -> int:
        """The number of trainable numbers in the model."""
        return sum(p.numel() for p in self.parameters())


class VAE(GenerativeModel):
    """The lab's VAE; its architecture and sizes come from ``config``, its initial weights from ``config.seed``.

    Its prior p(z) is ``config.prior`` (standard, mixture or VampPrior), built after the networks, so the networks'
    initial weights are the same whichever prior a seed gets.
    """

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else Config()
        c = self.config
        n_classes = N_DIGITS if c.conditional else 0
        with torch.random.fork_rng(devices=[]):  # seeded initial weights without touching the caller's RNG
            torch.manual_seed(c.seed)
            if c.architecture == "conv":
                self.encoder = ConvEncoder(c.latent_dim, n_classes)
                self.decoder = ConvDecoder(c.latent_dim, n_classes)
            else:
                self.encoder = Encoder(c.latent_dim, c.hidden_dim, c.hidden_layers, n_classes)
                self.decoder = Decoder(c.latent_dim, c.hidden_dim, c.hidden_layers, n_classes)
            self.prior = build_prior(c, c.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encoder(x, labels)
        return VAEOutput(self.decoder(reparameterize(mu, logvar), labels), mu, logvar)

    def elbo_parts(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> ElboParts:
        """−log p(x|z) and the KL term per image, one z = μ + σ·ε each: the KL in closed form against N(0, I), else
        the single-sample estimate log q(z|x) − log p(z)."""
        x = flatten_images(x)
        mu, logvar = self.encoder(x, labels)
        z = reparameterize(mu, logvar)
        reconstruction = reconstruction_loss(self.decoder(z, labels), x, self.config.likelihood)
        return ElboParts(reconstruction, (self.prior.layer_kl(z, mu, logvar, self.encoder),))

    def importance_draws(self, x: torch.Tensor, labels: torch.Tensor | None = None, k: int = 1,
                         generator: torch.Generator | None = None) -> ImportanceDraws:
        """``k`` draws z ~ q(z|x) per image with log p(x|z), log p(z) and log q(z|x), each (k, N)."""
        x = flatten_images(x)
        mu, logvar = self.encoder(x, labels)
        z, log_q = sample_posterior(mu, logvar, k, generator)
        log_likelihood = decoder_log_likelihood(self, x, labels)(z)
        log_p = self.prior.log_prob(z, self.encoder)
        kl = self.prior.closed_form_kl(mu, logvar)
        return ImportanceDraws(log_likelihood, log_p, log_q, (log_q - log_p).mean(dim=0) if kl is None else kl)

    def encode_layers(self, x: torch.Tensor, labels: torch.Tensor | None = None
                      ) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """q(z|x)'s μ and log σ² for each latent layer: here the one layer."""
        return (self.encoder(x, labels),)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (N, latent_dim) → images (N, 784) in [0, 1]: the mean of p(x|z)."""
        return pixel_means(self.decoder(z.to(self.device), labels), self.config.likelihood)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Encode and decode with z = μ (no noise): images (N, 784) in [0, 1]."""
        mu, _ = self.encoder(x.to(self.device), labels)
        return self.decode(mu, labels)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | int | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior N(0, I): images (n, 784) in [0, 1].

        A conditional VAE also needs ``labels``: one digit for all samples, or one per sample.
        """
        z = self.prior.sample(n, generator, self.encoder)
        if isinstance(labels, int):
            labels = torch.full((n,), labels, dtype=torch.long)
        return self.decode(z, labels)


class MLPFeatures(nn.Module):
    """784 → hidden (ReLU) [→ hidden (ReLU) …]: the encoder's hidden layers without its heads."""

    def __init__(self, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(IMAGE_PIXELS, hidden_dim)
        self.more_hidden = _deeper_layers(hidden_dim, hidden_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dtype("images", x, self.hidden.weight.dtype)
        h = F.relu(self.hidden(x))
        for layer in self.more_hidden or ():
            h = F.relu(layer(h))
        return h


class GaussianLayer(nn.Module):
    """in → hidden (ReLU) t → μ and log σ² of a diagonal Gaussian over the next latent layer; returns t as well."""

    def __init__(self, n_in: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, hidden_dim)
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = F.relu(self.hidden(x))
        return self.mu(t), self.logvar(t).clamp(*LOGVAR_RANGE), t


class HierarchyDraw(NamedTuple):
    """One pass through a two-layer VAE: z₂ ~ q(z₂|x), z₁ ~ q(z₁|z₂, x), and the Gaussians they came from."""

    z2: torch.Tensor
    mu2: torch.Tensor
    logvar2: torch.Tensor
    z1: torch.Tensor
    mu1: torch.Tensor
    logvar1: torch.Tensor
    prior_mu1: torch.Tensor
    prior_logvar1: torch.Tensor


class HierarchicalVAE(GenerativeModel):
    """Two stochastic layers: the generative path p(z₂) p(z₁|z₂) p(x|z₁), z₁ near the pixels and z₂ above it.

    Inference runs top-down, as in the Ladder VAE (Sønderby et al. 2016), NVAE and VDVAE: a bottom-up pass
    h₁ = f(x), then q(z₂|x) from h₁, and q(z₁|z₂, x) from h₁ and the same top-down features t(z₂) that give the prior
    p(z₁|z₂). Posterior and prior of z₁ are then two diagonal Gaussians over the same units, so the KL of z₁ has a
    closed form given z₂. (Bottom-up inference, q(z₁|x) q(z₂|z₁) as in the IWAE paper's two-layer model, runs against
    the generative direction; its z₁ term has no such form.) p(z₂) is ``config.prior``.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.bottom_up = MLPFeatures(c.hidden_dim, c.hidden_layers)
            self.top_posterior = GaussianLayer(c.hidden_dim, c.top_hidden_dim, c.top_latent_dim)
            self.top_down = GaussianLayer(c.top_latent_dim, c.top_hidden_dim, c.latent_dim)
            self.posterior_mu = nn.Linear(c.hidden_dim + c.top_hidden_dim, c.latent_dim)
            self.posterior_logvar = nn.Linear(c.hidden_dim + c.top_hidden_dim, c.latent_dim)
            self.decoder = Decoder(c.latent_dim, c.hidden_dim, c.hidden_layers)
            self.prior = build_prior(c, c.top_latent_dim)

    def encode_top(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z₂|x): μ₂ and log σ₂² (N, top_latent_dim); the VampPrior evaluates it at its pseudo-inputs."""
        mu, logvar, _ = self.top_posterior(self.bottom_up(flatten_images(x)))
        return mu, logvar

    def bottom_posterior(self, h1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z₁|z₂, x): μ₁ and log σ₁² from the bottom-up features h₁ and the top-down features t(z₂)."""
        joint = torch.cat([h1.expand(*t.shape[:-1], h1.shape[-1]), t], dim=-1)
        return self.posterior_mu(joint), self.posterior_logvar(joint).clamp(*LOGVAR_RANGE)

    def draw(self, x: torch.Tensor, k: int | None = None, generator: torch.Generator | None = None) -> HierarchyDraw:
        """z₂ ~ q(z₂|x), then z₁ ~ q(z₁|z₂, x): one draw per image (k None, shapes (N, D)) or k (shapes (k, N, D))."""
        h1 = self.bottom_up(flatten_images(x))
        mu2, logvar2, _ = self.top_posterior(h1)
        z2 = sample_posterior(mu2, logvar2, k or 1, generator)[0]
        prior_mu1, prior_logvar1, t = self.top_down(z2)
        mu1, logvar1 = self.bottom_posterior(h1, t)
        z1 = sample_posterior(mu1, logvar1, 1, generator)[0][0]
        if k is None:
            z2, prior_mu1, prior_logvar1, mu1, logvar1, z1 = (v[0] for v in (z2, prior_mu1, prior_logvar1, mu1, logvar1, z1))
        return HierarchyDraw(z2, mu2, logvar2, z1, mu1, logvar1, prior_mu1, prior_logvar1)

    def elbo_parts(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> ElboParts:
        """−log p(x|z₁) and the two KL terms per image: KL(q(z₁|z₂, x) ‖ p(z₁|z₂)) in closed form at the drawn z₂, and
        z₂'s KL against p(z₂) (closed form for the standard prior, else log q(z₂|x) − log p(z₂))."""
        reject_labels(labels)
        x = flatten_images(x)
        d = self.draw(x)
        reconstruction = reconstruction_loss(self.decoder(d.z1), x, self.config.likelihood)
        per_unit = gaussian_kl_per_unit(d.mu1, d.logvar1, d.prior_mu1, d.prior_logvar1)
        bottom = LayerKL(per_unit.sum(dim=-1), per_unit, self.config.latent_dim)
        return ElboParts(reconstruction, (bottom, self.prior.layer_kl(d.z2, d.mu2, d.logvar2, self.encode_top)))

    def importance_draws(self, x: torch.Tensor, labels: torch.Tensor | None = None, k: int = 1,
                         generator: torch.Generator | None = None) -> ImportanceDraws:
        """``k`` draws (z₁, z₂) ~ q(z₂|x) q(z₁|z₂, x) per image: log p(x|z₁), log p(z₁|z₂) + log p(z₂) and
        log q(z₁|z₂, x) + log q(z₂|x), each (k, N)."""
        reject_labels(labels)
        x = flatten_images(x)
        d = self.draw(x, k, generator)
        log_p2, log_q2 = self.prior.log_prob(d.z2, self.encode_top), log_normal(d.z2, d.mu2, d.logvar2)
        log_p = log_normal(d.z1, d.prior_mu1, d.prior_logvar1) + log_p2
        log_q = log_normal(d.z1, d.mu1, d.logvar1) + log_q2
        top_kl = self.prior.closed_form_kl(d.mu2, d.logvar2)
        top_kl = (log_q2 - log_p2).mean(dim=0) if top_kl is None else top_kl
        kl = gaussian_kl(d.mu1, d.logvar1, d.prior_mu1, d.prior_logvar1).mean(dim=0) + top_kl
        return ImportanceDraws(decoder_log_likelihood(self, x)(d.z1), log_p, log_q, kl)

    def encode_layers(self, x: torch.Tensor, labels: torch.Tensor | None = None
                      ) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """μ and log σ² of q(z₁|z₂ = μ₂, x) and of q(z₂|x): the means of each layer, lowest first."""
        reject_labels(labels)
        h1 = self.bottom_up(flatten_images(x))
        mu2, logvar2, _ = self.top_posterior(h1)
        return self.bottom_posterior(h1, self.top_down(mu2)[2]), (mu2, logvar2)

    @torch.no_grad()
    def decode(self, z1: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents z₁ (N, latent_dim) → images (N, 784) in [0, 1]: the mean of p(x|z₁)."""
        reject_labels(labels)
        return pixel_means(self.decoder(z1.to(self.device)), self.config.likelihood)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Encode and decode with the means (z₂ = μ₂, then z₁ = μ₁): images (N, 784) in [0, 1]."""
        return self.decode(self.encode_layers(x.to(self.device), labels)[0][0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | int | None = None
               ) -> torch.Tensor:
        """Down the generative path: z₂ ~ p(z₂), z₁ ~ p(z₁|z₂), then the mean of p(x|z₁): images (n, 784)."""
        reject_labels(labels)
        z2 = self.prior.sample(n, generator, self.encode_top).to(self.device)
        mu1, logvar1, _ = self.top_down(z2)
        eps = torch.randn(mu1.shape, generator=generator).to(self.device)
        return self.decode(mu1 + torch.exp(0.5 * logvar1) * eps)


# ---- Discrete codes: the VQ-VAE (notebook 14) ----

CODE_GRID = 7  # the conv encoder's 7×7 feature map: one code per position, 49 codes per image


def quantize(encoded: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-neighbour quantisation with the straight-through gradient, for vectors z_e (N, D) and a codebook (K, D):
    k = argmin_j ‖z_e − e_j‖², returned with z_q = z_e + sg[e_k − z_e], whose value is e_k and whose gradient
    passes to z_e unchanged (sg stops the gradient). ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖²: one matrix product."""
    with torch.no_grad():
        distances = encoded.pow(2).sum(1, keepdim=True) - 2 * encoded @ codebook.T + codebook.pow(2).sum(1)
        indices = distances.argmin(dim=1)
    return encoded + (codebook[indices] - encoded).detach(), indices


class Quantized(NamedTuple):
    """The quantiser's outputs for a grid of encoder outputs: z_q (straight-through, N×D×G×G), the chosen codes e_k
    (the same values, with the gradient to the codebook), and their indices k (N×G×G)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    indices: torch.Tensor


class VectorQuantizer(nn.Module):
    """A codebook of K vectors e_k ∈ R^D, started uniform in ±1/K as the authors' code does. In training, a code
    that no encoder output chose for ``restart_after`` batches restarts at a random encoder output of the batch
    (Dhariwal et al. 2020's random restarts; 0: never)."""

    def __init__(self, codebook_size: int, code_dim: int, restart_after: int = 0) -> None:
        super().__init__()
        self.restart_after = restart_after
        self.codebook = nn.Parameter(torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        self.register_buffer("batches_unused", torch.zeros(codebook_size, dtype=torch.long))
        self.quantize: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = quantize

    def forward(self, encoded: torch.Tensor) -> Quantized:
        n, d, g, _ = encoded.shape
        flat = encoded.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training and self.restart_after:
            self.restart_dead_codes(flat.detach())
        quantized, indices = self.quantize(flat, self.codebook)
        if self.training:
            used = torch.bincount(indices, minlength=len(self.codebook)) > 0
            self.batches_unused.copy_(torch.where(used, 0, self.batches_unused + 1))
        grid = lambda v: v.reshape(n, g, g, d).permute(0, 3, 1, 2)
        return Quantized(grid(quantized), grid(self.codebook[indices]), indices.reshape(n, g, g))

    @torch.no_grad()
    def restart_dead_codes(self, encoded: torch.Tensor) -> None:
        """Move every code unused for ``restart_after`` batches onto an encoder output drawn from ``encoded``."""
        dead = (self.batches_unused >= self.restart_after).nonzero()[:, 0]
        if len(dead):
            self.codebook[dead] = encoded[torch.randint(len(encoded), (len(dead),), device=encoded.device)]
            self.batches_unused[dead] = 0


class CodeEncoder(nn.Module):
    """z_e(x): 1×28×28 → 32×14×14 → 64×7×7 (ConvEncoder's two strided convolutions, ReLU after each) → a 1×1
    convolution to D×7×7, one D-vector per position of the code grid."""

    def __init__(self, code_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(CHANNELS[0], CHANNELS[1], kernel_size=4, stride=2, padding=1)
        self.to_codes = nn.Conv2d(CHANNELS[1], code_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = flatten_images(x).view(-1, 1, 28, 28)
        check_dtype("images", h, self.conv1.weight.dtype)
        return self.to_codes(F.relu(self.conv2(F.relu(self.conv1(h)))))


class CodeDecoder(nn.Module):
    """p(x|z_q): D×7×7 → a 1×1 convolution to 64×7×7 → 32×14×14 → 1×28×28 pixel logits (ConvDecoder's transposed
    convolutions, ReLU between)."""

    def __init__(self, code_dim: int) -> None:
        super().__init__()
        self.from_codes = nn.Conv2d(code_dim, CHANNELS[1], kernel_size=1)
        self.deconv1 = nn.ConvTranspose2d(CHANNELS[1], CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(CHANNELS[0], 1, kernel_size=4, stride=2, padding=1)

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.from_codes(quantized))
        return self.deconv2(F.relu(self.deconv1(h))).reshape(-1, IMAGE_PIXELS)


class VQVAE(GenerativeModel):
    """A VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017): a conv encoder to a 7×7 grid of D-vectors, each replaced
    by its nearest of K codebook vectors, and a conv decoder; the posterior q(k|x) is one-hot. Its prior p(k) over the
    grid is a small PixelCNN (`CodePrior`), trained beside the rest on the detached codes; built last, so the
    networks' and the codebook's initial weights do not depend on it."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.encoder = CodeEncoder(c.latent_dim)
            self.quantizer = VectorQuantizer(c.codebook_size, c.latent_dim, c.restart_dead_codes)
            self.decoder = CodeDecoder(c.latent_dim)
            self.prior = CodePrior(c.codebook_size, CODE_GRID)

    def vq_parts(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> VQParts:
        """The loss terms per image (`loss.VQParts`); the code prior scores the codes without a gradient to them."""
        reject_labels(labels)
        x = flatten_images(x)
        encoded = self.encoder(x)
        q = self.quantizer(encoded)
        codebook, commitment = codebook_losses(encoded, q.codes)
        reconstruction = reconstruction_loss(self.decoder(q.quantized), x, self.config.likelihood)
        return VQParts(reconstruction, codebook, commitment, -self.prior.log_prob(q.indices))

    def elbo_parts(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> ElboParts:
        """−log p(x|z_q) and the KL term per image: q(k|x) is one-hot, so KL(q ‖ p) = −log p(k), which splits over
        no units (a uniform prior would give 49 log K)."""
        parts = self.vq_parts(x, labels)
        return ElboParts(parts.reconstruction, (LayerKL(parts.code_nll, None, CODE_GRID ** 2),))

    def importance_draws(self, x: torch.Tensor, labels: torch.Tensor | None = None, k: int = 1,
                         generator: torch.Generator | None = None) -> ImportanceDraws:
        """``k`` copies of the one draw a one-hot q(k|x) makes: log p(x|z_q), log p(k) and log q(k|x) = 0, each (k, N);
        every importance bound is then the ELBO."""
        parts = self.vq_parts(x, labels)
        repeat = lambda v: v.expand(k, len(v))
        return ImportanceDraws(repeat(-parts.reconstruction), repeat(-parts.code_nll),
                               repeat(torch.zeros_like(parts.code_nll)), parts.code_nll)

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Images → the indices of their nearest codes, (N, 7, 7)."""
        return self.quantizer(self.encoder(x.to(self.device))).indices

    @torch.no_grad()
    def decode_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (N, 7, 7) → images (N, 784) in [0, 1]: the mean of p(x|z_q)."""
        k = self.config.codebook_size
        if indices.dim() != 3 or tuple(indices.shape[1:]) != (CODE_GRID, CODE_GRID) or indices.is_floating_point() \
                or len(indices) == 0 or indices.min() < 0 or indices.max() >= k:
            raise ValueError(f"expected code indices of shape (N, {CODE_GRID}, {CODE_GRID}), integers in 0..{k - 1}, "
                             f"got shape {tuple(indices.shape)} and dtype {indices.dtype}; draw them with "
                             f"torch.randint({k}, (n, {CODE_GRID}, {CODE_GRID}))")
        quantized = self.quantizer.codebook[indices.to(self.device)].permute(0, 3, 1, 2)
        return pixel_means(self.decoder(quantized), self.config.likelihood)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Encode, quantise and decode: images (N, 784) in [0, 1]."""
        reject_labels(labels)
        with in_eval_mode(self):
            return self.decode_codes(self.encode_codes(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | int | None = None
               ) -> torch.Tensor:
        """Codes k ~ p(k) from the PixelCNN prior, position by position, then decoded: images (n, 784)."""
        reject_labels(labels)
        return self.decode_codes(self.prior.sample(n, generator))


def reject_labels(labels: torch.Tensor | int | None) -> None:
    """Refuse digit labels for a model that is not conditional."""
    if labels is not None:
        raise ValueError("this VAE is not conditional; call it without labels, or build a one-layer VAE with "
                         "Config(conditional=True)")


def build_model(config: Config) -> VAE | HierarchicalVAE | VQVAE:
    """The model that ``config`` describes, with its seeded initial weights: the one place a config becomes a model."""
    if config.codebook_size:
        return VQVAE(config)
    if config.stochastic_layers == 2:
        return HierarchicalVAE(config)
    return VAE(config)


@contextmanager
def in_eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode, then put back the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def sample_digits(model: VAE, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images from the prior, drawn with a fixed ``seed``; a conditional VAE draws the digits 0–9 equally often."""
    require_int("seed", seed, minimum=0, maximum=MAX_SEED)
    labels = torch.arange(n) % N_DIGITS if model.config.conditional else None
    return model.sample(n, generator=torch.Generator().manual_seed(seed), labels=labels)


def decoder_log_likelihood(model: VAE, x: torch.Tensor, labels: torch.Tensor | None = None
                           ) -> Callable[[torch.Tensor], torch.Tensor]:
    """log p(x|z) of ``model``'s decoder for the images ``x`` (N, 784), as a function of latents z (k, N, D)."""
    def log_likelihood(z: torch.Tensor) -> torch.Tensor:
        k, n, d = z.shape
        repeated = labels.repeat(k) if labels is not None else None
        logits = model.decoder(z.reshape(k * n, d), repeated).view(k, n, -1)
        return -reconstruction_loss(logits, x.expand(k, n, x.shape[-1]), model.config.likelihood)
    return log_likelihood


def choose_device(name: str | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else cuda, then mps, then cpu."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'mps'") from None
    if not {"cpu": True, "cuda": torch.cuda.is_available(), "mps": mps}.get(device.type, False):
        raise ValueError(f"device {name!r} is not available on this machine; use 'auto' or 'cpu'")
    return device
