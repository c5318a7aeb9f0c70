"""Notebook 07's figures (vae_lab.lessons.latent_space): scatter with a legend per digit, interpolation, dimensions, manifold;
and its measurement of the best diagonal posterior in rotated latent axes."""
import pytest
import torch
from matplotlib.figure import Figure

from vae_lab import VAE, Config
from vae_lab.latent import encode_posterior, pca_2d
from vae_lab.lessons.latent_space import (best_diagonal_posterior, dimension_figure, interpolation_strip, latent_scatter,
                                          manifold_figure, random_rotation, rotated_negative_elbo, rotated_posterior,
                                          rotated_reconstruction, rotation_costs)
from vae_lab.loss import kl_divergence, reconstruction_loss


def test_figures_are_returned_with_a_legend_per_digit(vae, mnist, tmp_path):
    images, labels = mnist.test_images[:400], mnist.test_labels[:400]
    mu, logvar = encode_posterior(vae, images)
    scatter = latent_scatter(pca_2d(mu).coordinates, labels, "PCA of μ", prior=True, path=tmp_path / "pca.png")
    legend = [text.get_text() for text in scatter.axes[0].get_legend().get_texts()]
    assert legend == [str(digit) for digit in range(10)] + ["prior 1σ, 2σ"]
    assert (tmp_path / "pca.png").read_bytes().startswith(b"\x89PNG")
    assert isinstance(interpolation_strip(vae, images[0], images[1], steps=6), Figure)
    assert len(dimension_figure(mu, logvar).axes) == 2
    assert isinstance(manifold_figure(VAE(Config(latent_dim=2, hidden_dim=16)), n=5), Figure)


def test_random_rotations_are_seeded_proper_rotations():
    rotation = random_rotation(20, seed=3)
    assert torch.allclose(rotation @ rotation.T, torch.eye(20), atol=1e-5)
    assert torch.det(rotation.double()) == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(rotation, random_rotation(20, seed=3))
    assert not torch.allclose(rotation, random_rotation(20, seed=4))


def test_the_identity_rotation_scores_the_plain_elbo(vae, mnist):
    images = mnist.test_images[:16]
    mu, logvar = encode_posterior(vae, images)
    noise = torch.randn(3, *mu.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = torch.stack([reconstruction_loss(vae.decoder(mu + torch.exp(0.5 * logvar) * eps), images)
                             for eps in noise]).mean(dim=0) + kl_divergence(mu, logvar)
        rotated = rotated_negative_elbo(vae, images, mu, logvar, torch.eye(20), noise)
    assert torch.allclose(rotated, plain, atol=1e-3)


def test_a_rotated_decoder_with_the_rotated_full_covariance_posterior_keeps_the_elbo(vae, mnist):
    """q′ = N(R μ, R diag(σ²) Rᵀ) under decoder(Rᵀ z′) is q under decoder: same draws, same KL (rotation-invariant)."""
    images, rotation = mnist.test_images[:16], random_rotation(20, seed=1)
    mu, logvar = encode_posterior(vae, images)
    eps = torch.randn(4, *mu.shape, generator=torch.Generator().manual_seed(0))
    z = mu + torch.exp(0.5 * logvar) * eps
    covariance = rotation @ torch.diag_embed(logvar.exp()) @ rotation.T
    mean = mu @ rotation.T
    full_kl = 0.5 * (covariance.diagonal(dim1=1, dim2=2).sum(dim=1) + mean.pow(2).sum(dim=1) - 20
                     - torch.logdet(covariance))
    with torch.no_grad():
        rotated = rotated_reconstruction(vae, images, z @ rotation.T, rotation).mean(dim=0) + full_kl
        unrotated = rotated_negative_elbo(vae, images, mu, logvar, torch.eye(20), eps)
    assert torch.allclose(rotated, unrotated, atol=1e-2)


def test_the_diagonal_view_of_a_rotated_posterior_keeps_each_axis_variance():
    mu, logvar = torch.tensor([[1.0, 2.0]]), torch.log(torch.tensor([[4.0, 1.0]]))
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mean, rotated_logvar = rotated_posterior(mu, logvar, swap)
    assert torch.allclose(mean, torch.tensor([[2.0, 1.0]])) and torch.allclose(rotated_logvar.exp(), torch.tensor([[1.0, 4.0]]))
    half_turn = torch.tensor([[1.0, -1.0], [1.0, 1.0]]) / 2 ** 0.5
    assert torch.allclose(rotated_posterior(mu, logvar, half_turn)[1].exp(), torch.tensor([[2.5, 2.5]]))


def test_the_optimiser_lowers_the_negative_elbo_in_any_axes(vae, mnist):
    images = mnist.test_images[:32]
    costs = rotation_costs(vae, images, {"identity": torch.eye(20), "random": random_rotation(20, seed=0)}, steps=0)
    optimised = rotation_costs(vae, images, {"identity": torch.eye(20), "random": random_rotation(20, seed=0)},
                               steps=60)
    assert optimised["identity"] < costs["identity"] and optimised["random"] < costs["random"] - 1
    assert costs["identity"] < costs["random"], "dropping the rotated posterior's correlations costs nats"


def test_the_rotation_must_be_orthogonal_and_the_model_unconditional(vae, mnist, random_cvae):
    with pytest.raises(ValueError, match="not orthogonal"):
        best_diagonal_posterior(vae, mnist.test_images[:4], 2 * torch.eye(20), steps=1)
    with pytest.raises(ValueError, match="20×20 rotation"):
        best_diagonal_posterior(vae, mnist.test_images[:4], torch.eye(4), steps=1)
    with pytest.raises(ValueError, match="unconditional"):
        best_diagonal_posterior(random_cvae, mnist.test_images[:4], torch.eye(4), steps=1)
