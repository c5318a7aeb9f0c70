"""Reference solutions to the notebooks' exercises (try the exercise first!)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..loss import vae_loss
from ..model import VAE, Encoder


# ---- 00_from_autoencoder_to_vae ----


def gap_to_prior(codes: torch.Tensor) -> torch.Tensor:
    """½ Σ_j (m_j² + s_j² − 1 − log s_j²) in nats: the KL from the Gaussian fitted to codes (N, d) to N(0, I)."""
    m, s2 = codes.mean(dim=0), codes.var(dim=0)
    return 0.5 * (m ** 2 + s2 - 1 - s2.log()).sum()

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

# ---- 06_your_own_vae ----


class MyVAE(nn.Module):
    """784 → 400 (ReLU) → μ, log σ² (20 each); z = μ + σ·ε; 20 → 400 (ReLU) → 784 pixel logits."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, 400)
        self.mu = nn.Linear(400, 20)
        self.logvar = nn.Linear(400, 20)
        self.decoder_hidden = nn.Linear(20, 400)
        self.out = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 784) → μ and log σ², each (N, 20)."""
        h = F.relu(self.hidden(x))
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = μ + exp(½ log σ²)·ε with fresh ε ~ N(0, I)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, 20) → pixel logits (N, 784)."""
        return self.out(F.relu(self.decoder_hidden(z)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw z, decode: (logits, μ, log σ²)."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def negative_elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of BCE(x, sigmoid(logits)) summed over pixels + KL(N(μ, σ²) ‖ N(0, I)), nats per image."""
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return (bce + kl).mean()


def train_my_vae(model: nn.Module, loss_fn, train_images: torch.Tensor, test_images: torch.Tensor,
                 epochs: int, seed: int) -> tuple[list[float], list[float]]:
    """Adam (lr 1e-3) on shuffled batches of 128 for `epochs` epochs; per-epoch train and test loss, nats per image."""
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_losses, test_losses = [], []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(train_images), generator=shuffle).split(128):
            x = train_images[batch]
            loss = loss_fn(x, *model(x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        train_losses.append(total / len(train_images))
        model.eval()
        with torch.no_grad():
            test_total = sum(loss_fn(x, *model(x)).item() * len(x) for x in test_images.split(1000))
        test_losses.append(test_total / len(test_images))
    return train_losses, test_losses

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

# ---- 12_learned_priors ----


def vamp_log_density(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log p(z) = log (1/K) Σ_k N(z; m_k, diag s_k²) for codes z (N, D) and components (K, D): the K log densities,
    then logsumexp over k (no underflow) minus log K."""
    log_densities = -0.5 * ((z[:, None, :] - means) ** 2 / logvars.exp() + logvars + math.log(2 * math.pi)).sum(dim=-1)
    return torch.logsumexp(log_densities, dim=1) - math.log(len(means))

# ---- 13_hierarchy_of_latents ----


def kl_between_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                         logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per image: ½ Σ_j [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1]."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(dim=1)

# ---- 14_vq_vae ----


def quantize(encoded: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k = argmin_j ‖z_e − e_j‖² for each vector z_e (N, D), codebook (K, D); z_q = z_e + sg[e_k − z_e]."""
    distances = ((encoded[:, None, :] - codebook[None, :, :]) ** 2).sum(dim=2)
    indices = distances.argmin(dim=1)
    quantized = encoded + (codebook[indices] - encoded).detach()
    return quantized, indices

