"""Reference solutions to the notebooks' exercises (try the exercise first!)."""
from __future__ import annotations

import math

import torch

from ..loss import vae_loss
from ..model import VAE, Encoder


# ---- 01_data_and_encoder ----


def encode(encoder: Encoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder by hand: h = ReLU(x W₁ᵀ + b₁) (N, 400), then μ = h W_μᵀ + b_μ and log σ² = h W_σᵀ + b_σ (N, 20)."""
    layer = lambda linear, v: v @ linear.weight.T + linear.bias
    h = torch.relu(layer(encoder.hidden, x))
    return layer(encoder.mu, h), layer(encoder.logvar, h)

# ---- 02_reparameterization ----
def reparameterize_with(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·ε with σ = exp(½ · log σ²): differentiable in μ and log σ², all randomness in ε."""
    return mu + torch.exp(0.5 * logvar) * eps

# ---- 03_loss ----
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per image: −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²), summed over the latent dimensions."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)

# ---- 04_training ----


def training_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """One step of `fit`: forward, negative ELBO, zero the gradients, backward, Adam step; return the loss before it."""
    loss = vae_loss(x, *model(x)).total
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()

# ---- 05_generation ----
def decode_prior_samples(model: VAE, n: int, generator: torch.Generator) -> torch.Tensor:
    """Draw n latents z ~ N(0, I) and decode them to pixel probabilities: images (n, 784) in [0, 1]."""
    z = torch.randn(n, model.config.latent_dim, generator=generator)
    return model.decode(z)

# ---- 07_latent_space ----

def linear_interpolation(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` rows z(t) = (1 − t)·z0 + t·z1 for t evenly spaced from 0 to 1, both ends included."""
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * z0 + t * z1

# ---- 08_evaluation ----


def iwae_from_log_weights(log_w: torch.Tensor) -> torch.Tensor:
    """L_K = log (1/K) Σ_k w_k per image, for log-weights of shape (K, N): logsumexp never underflows."""
    return torch.logsumexp(log_w, dim=0) - math.log(len(log_w))


# ---- 09_beta_vae ----


def count_active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Burda et al. (2016): unit u is active if A_u = Cov_x(E_q[z_u|x]) = Var_n(μ_nu) > threshold; count those units."""
    return int((mu.var(dim=0) > threshold).sum())

# ---- 10_conditional_vae ----


def write_as_every_digit(model: VAE, image: torch.Tensor, label: int) -> torch.Tensor:
    """Style transfer: z = μ(x, y) encoded with the image's own label y, then the mean of p(x | z, y') for y' = 0…9."""
    mu, _ = model.encoder(image.reshape(1, 784), torch.tensor([label]))
    return model.decode(mu.repeat(10, 1), torch.arange(10))

# ---- 11_conv_vae ----


def output_size(n: int, kernel: int, stride: int, padding: int, transposed: bool = False) -> int:
    """Side length after a layer: ⌊(n + 2p − k) / s⌋ + 1 for a convolution, (n − 1)·s − 2p + k for a transposed one."""
    if transposed:
        return (n - 1) * stride - 2 * padding + kernel
    return (n + 2 * padding - kernel) // stride + 1
