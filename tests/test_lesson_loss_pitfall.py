"""The sum-vs-mean pitfall of notebook 03: the mean-reduced loss is a β-VAE with β = 784, and training on it
collapses the posterior."""
import pytest
import torch
import torch.nn.functional as F

import dataclasses

from vae_lab import VAE, Config, fit, kl_divergence, vae_loss
from vae_lab.train import evaluate_loss


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 784, generator=generator)
    logits, mu, logvar = torch.randn(8, 784, generator=generator), *torch.randn(2, 8, 20, generator=generator)
    return x, logits, mu, logvar


def test_mean_reduction_is_pytorchs_default_bce_plus_kl_and_weighs_the_kl_784_times(batch):
    x, logits, mu, logvar = batch
    pitfall = F.binary_cross_entropy_with_logits(logits, x) + kl_divergence(mu, logvar).mean()
    assert pitfall.item() == pytest.approx(vae_loss(*batch, beta=784).total.item() / 784, rel=1e-6)


def test_the_mean_reduced_loss_collapses_the_posterior(small):
    config = Config(epochs=2, batch_size=100, hidden_dim=64, latent_dim=4, seed=0)
    results = {}
    for reduction, beta in (("sum", 1.0), ("mean", 784.0)):  # mean-reduced BCE trains like beta = 784
        model = VAE(dataclasses.replace(config, beta=beta))
        history = fit(model, small, progress=False)
        assert len(history) == 2
        torch.manual_seed(0)
        results[reduction] = evaluate_loss(model, small.test_images)
    assert results["mean"][2] < 0.1 < results["sum"][2]  # KL: collapsed vs used
    assert results["sum"][1] < results["mean"][1]  # the collapsed model reconstructs worse
