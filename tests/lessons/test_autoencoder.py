"""Notebook 00: the plain autoencoder and how far its codes are from N(0, I) (its exercise's check: test_checks.py)."""
import pytest
import torch

from vae_lab import Config, load_pretrained
from vae_lab.latent import encode_posterior
from vae_lab.lessons.autoencoder import Autoencoder, fitted_gaussian_kl, train_autoencoder
from vae_lab.model import reparameterize


def test_the_fitted_kl_is_zero_exactly_for_codes_with_the_priors_moments():
    noise = torch.randn(500, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    standard = (noise - noise.mean(dim=0)) / noise.std(dim=0)
    assert fitted_gaussian_kl(standard) == pytest.approx(0, abs=1e-12)
    assert fitted_gaussian_kl(standard * 2 + 1) == pytest.approx(4 * 0.5 * (1 + 4 - 1 - torch.log(torch.tensor(4.0)).item()))


def test_the_autoencoder_is_seeded_and_deterministic():
    config = Config(latent_dim=3, hidden_dim=16, seed=4)
    first, second = Autoencoder(config), Autoencoder(config)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first(x), first(x)), "no noise: the code is z = μ(x)"
    assert torch.equal(first.reconstruct(x), first.decode(first.encode(x)))
    assert torch.equal(first.sample(4, torch.Generator().manual_seed(3)), first.sample(4, torch.Generator().manual_seed(3)))


def test_the_autoencoder_trains_and_its_codes_are_further_from_the_prior_than_the_vaes(mnist, capsys):
    autoencoder = Autoencoder(Config(epochs=2, train_size=2000, seed=1))
    history = train_autoencoder(autoencoder, mnist)
    assert len(history.test_loss) == 2 and history.test_loss[1] < history.test_loss[0] < 545  # 784·log 2: a coin per pixel
    assert capsys.readouterr().out.count("epoch") == 2
    test_images = mnist.test_images[:2000]
    vae = load_pretrained("vae").model
    mu, logvar = encode_posterior(vae, test_images)
    vae_gap = fitted_gaussian_kl(reparameterize(mu, logvar, torch.Generator().manual_seed(1)))
    autoencoder_gap = fitted_gaussian_kl(autoencoder.encode(test_images))
    assert vae_gap < 1 and autoencoder_gap > 10 * vae_gap + 10
