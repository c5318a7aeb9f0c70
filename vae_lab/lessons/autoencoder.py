"""Notebook 00's plain autoencoder: the VAE's 784-400-20 MLP without the noise and the KL, a short training loop, and
how far its codes sit from the prior N(0, I). The exercise's check is in `lessons.checks`."""
from __future__ import annotations

from typing import NamedTuple

import torch
from matplotlib.figure import Figure
from torch import nn

from ..config import Config
from ..data import MNIST, batches
from ..loss import reconstruction_loss
from ..model import Decoder, Encoder
from ..plots import new_figure


class Autoencoder(nn.Module):
    """x → z = μ(x) → pixel logits: the lab's Encoder (its log σ² head unused) and Decoder, with no noise and no KL.

    It offers the methods the lab's pictures call on a VAE (``encoder``, ``decode``, ``reconstruct``, ``sample``,
    ``device``), so `sample_grid` and `interpolation_strip` draw both models the same way.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, as a VAE's, without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.encoder = Encoder(config.latent_dim, config.hidden_dim)
            self.decoder = Decoder(config.latent_dim, config.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits (N, 784) decoded from the deterministic code z = μ(x)."""
        code, _ = self.encoder(x)
        return self.decoder(code)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The codes z = μ(x), shape (N, latent_dim)."""
        return self.encoder(x.to(self.device))[0].cpu()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, latent_dim) → images (N, 784) in [0, 1]: sigmoid of the decoder's logits."""
        return torch.sigmoid(self.decoder(z.to(self.device)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Encode and decode: images (N, 784) in [0, 1]."""
        return self.decode(self.encoder(x.to(self.device))[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` codes drawn from N(0, I), as a VAE generates: images (n, 784) in [0, 1]."""
        return self.decode(torch.randn(n, self.config.latent_dim, generator=generator))


class AutoencoderHistory(NamedTuple):
    """Mean binary cross-entropy per epoch, in nats per image, on the training images seen and on the test set."""

    train_loss: list[float]
    test_loss: list[float]


@torch.no_grad()
def mean_bce(model: Autoencoder, images: torch.Tensor, batch_size: int = 2000) -> float:
    """Mean BCE, −Σ_j [x_j log x̂_j + (1 − x_j) log(1 − x̂_j)], per image of ``images``."""
    total = sum(reconstruction_loss(model(x), x).sum().item() for x in batches(images, batch_size))
    return total / len(images)


def train_autoencoder(model: Autoencoder, data: MNIST) -> AutoencoderHistory:
    """Adam on the BCE summed over pixels and averaged over each batch, as the VAE trains but with no KL term.

    Batch size, learning rate, epochs, training images and the shuffling's seed come from ``model.config``.
    """
    config = model.config
    images = data.train_images[:config.train_size]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)
    history = AutoencoderHistory([], [])
    for epoch in range(1, config.epochs + 1):
        model.train()
        total = 0.0
        for x in batches(images, config.batch_size, shuffle):
            loss = reconstruction_loss(model(x), x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        model.eval()
        history.train_loss.append(total / len(images))
        history.test_loss.append(mean_bce(model, data.test_images))
        print(f"epoch {epoch}: BCE {history.train_loss[-1]:.1f} on training images, "
              f"{history.test_loss[-1]:.1f} on test images (nats per image)")
    return history


def fitted_gaussian_kl(codes: torch.Tensor) -> float:
    """How far codes (N, d) are from N(0, I): the KL of the diagonal Gaussian fitted to them, in nats,
    KL(N(m, diag s²) ‖ N(0, I)) = ½ Σ_j (m_j² + s_j² − 1 − log s_j²), with m_j and s_j² each dimension's mean and variance."""
    mean, variance = codes.double().mean(dim=0), codes.double().var(dim=0)
    return 0.5 * float((mean.pow(2) + variance - 1 - variance.log()).sum())


def code_spread_figure(codes: dict[str, torch.Tensor]) -> Figure:
    """One panel per model: each latent dimension's mean ± 2 standard deviations of the codes, on the prior's ±2 band."""
    figure = new_figure(4.6 * len(codes), 3.2)
    first = figure.add_subplot(1, len(codes), 1)
    for index, (name, values) in enumerate(codes.items(), 1):
        axes = first if index == 1 else figure.add_subplot(1, len(codes), index, sharey=first)
        dims = torch.arange(1, values.shape[1] + 1)
        axes.axhspan(-2, 2, color="0.85", label="prior N(0, 1): ±2")
        axes.errorbar(dims, values.mean(dim=0), yerr=2 * values.std(dim=0), fmt="o", markersize=3, capsize=2,
                      label="codes: mean ± 2 std")
        axes.set(title=name, xlabel="latent dimension j", xticks=dims[::2])
        axes.grid(alpha=0.3)
    first.set_ylabel("z_j")
    first.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure
