"""Notebook 00's plain autoencoder: the VAE's 784-400-20 MLP without the noise and the KL, a short training loop, how
far its codes sit from the prior N(0, I), and the check of the notebook's exercise."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from matplotlib.figure import Figure
from torch import nn

from ..config import Config
from ..data import MNIST, batches
from ..latent import kl_per_dimension
from ..loss import kl_divergence, reconstruction_loss
from ..model import Decoder, Encoder
from ..plots import new_figure
from .setup import attempt, feedback, own_work


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


# ---- the exercise ----


def _known_codes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1,000 codes in 6 dimensions whose means and variances are exactly the ones returned with them."""
    means = torch.tensor([0.0, 2.0, -1.0, 0.5, 3.0, 0.0], dtype=torch.float64)
    variances = torch.tensor([1.0, 4.0, 0.25, 9.0, 1.0, 0.5], dtype=torch.float64)
    noise = torch.randn(1000, 6, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    codes = (noise - noise.mean(dim=0)) / noise.std(dim=0) * variances.sqrt() + means
    return codes.float(), means, variances


def _known_mistakes(means: torch.Tensor, variances: torch.Tensor) -> list[tuple[float, str]]:
    """The value each classic slip gives on codes with these moments, and the hint that names it."""
    kl = lambda m, s2, log_s2: 0.5 * float((m.pow(2) + s2 - 1 - log_s2).sum())
    exact = kl(means, variances, variances.log())
    std = variances.sqrt()
    return [
        (-exact, "sign: a KL is never negative; it is ½ Σ (m² + s² − 1 − log s²)"),
        (2 * exact, "twice too large: forgot the ½ in front of the sum?"),
        (exact / len(means), "you averaged over the dimensions; the KL of independent dimensions is their sum"),
        (kl(torch.zeros_like(means), variances, variances.log()),
         "the codes' means are missing: a code cloud centred away from 0 is far from N(0, I) too, add m_j²"),
        (kl(means, std, std.log()), "you used the standard deviation s where the formula has the variance s² = codes.var()"),
        (kl(means, variances, std.log()), "the log term is log s², the log of the variance, not log s"),
        (kl(means, variances, torch.zeros_like(means)), "forgot the − log s² term"),
    ]


@own_work(kl_divergence, kl_per_dimension, fitted_gaussian_kl, solution=fitted_gaussian_kl,
          advice="compute each dimension's mean m and variance s² over the codes (dim=0), "
                 "then ½ Σ (m² + s² − 1 − log s²) with torch")
def check_gap_to_prior(answer: Callable[[torch.Tensor], torch.Tensor | float]) -> bool:
    """Compare ``answer(codes)`` with `fitted_gaussian_kl` on 1,000 codes with known means and variances."""
    codes, means, variances = _known_codes()
    attempted, result = attempt(answer, codes.clone())
    if not attempted:
        return False
    expected = fitted_gaussian_kl(codes)
    if isinstance(result, torch.Tensor) and result.numel() == codes.shape[1]:
        return feedback(False, "", "that is one number per dimension; add them up: the KL of independent "
                        "dimensions is their sum")
    if isinstance(result, torch.Tensor) and result.numel() == len(codes):
        return feedback(False, "", "that is one number per code; take each dimension's mean and variance "
                        "across the codes, dim=0, not across dimensions")
    try:
        value = float(result)
    except (TypeError, ValueError, RuntimeError):
        return feedback(False, "", f"return one number (a float or a 0-d tensor), got {type(result).__name__}")
    close = lambda a, b: abs(a - b) <= 2e-3 * max(1.0, abs(b))  # also forgives the 1/N variance instead of 1/(N − 1)
    hint = next((hint for wrong, hint in _known_mistakes(means, variances) if close(value, wrong)), "")
    if not hint and not close(value, expected):
        hint = (f"expected {expected:.3f} nats for these codes, got {value:.3f}: compute m = codes.mean(dim=0), "
                "s² = codes.var(dim=0), then ½ Σ (m² + s² − 1 − log s²)")
    return feedback(not hint, f"your gap matches the lab's: {expected:.3f} nats for 1,000 codes whose "
                    "means and variances are known.", hint)
