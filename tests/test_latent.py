"""The latent space: posteriors, ranked dimensions, interpolation, PCA, the manifold grid, and the conditional VAE's
encoding with labels, every digit from one style, style transfer and style walks."""
import math

import pytest
import torch

from vae_lab import VAE, Config, kl_divergence, load_pretrained
from vae_lab.latent import (decode_every_digit, encode_posterior, encode_with_labels, gaussian_quantiles, interpolate,
                            kl_per_dimension, manifold_grid, pca_2d, rank_dimensions, require_conditional, style_transfer,
                            style_walk)


@pytest.fixture(scope="module")
def model():
    return load_pretrained("vae").model


def test_encode_posterior_matches_one_pass_of_the_encoder(model, mnist):
    images = mnist.test_images[:300]
    mu, logvar = encode_posterior(model, images, batch_size=128)
    with torch.no_grad():
        expected_mu, expected_logvar = model.encoder(images)
    assert mu.shape == logvar.shape == (300, 20) and not mu.requires_grad
    torch.testing.assert_close(mu, expected_mu)
    torch.testing.assert_close(logvar, expected_logvar)
    torch.testing.assert_close(encode_posterior(model, images.reshape(-1, 1, 28, 28))[0], mu)


def test_dimensions_are_ranked_by_the_variance_of_mu():
    spread = torch.tensor([0.1, 3.0, 0.01, 1.0])
    mu = torch.randn(5000, 4, generator=torch.Generator().manual_seed(0)) * spread
    assert rank_dimensions(mu).tolist() == [1, 3, 0, 2]


def test_kl_per_dimension_sums_to_the_kl_term():
    generator = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 6, generator=generator), torch.randn(50, 6, generator=generator)
    per_dimension = kl_per_dimension(mu, logvar)
    assert per_dimension.shape == (6,) and (per_dimension >= 0).all()
    torch.testing.assert_close(per_dimension.sum(), kl_divergence(mu, logvar).mean())
    assert kl_per_dimension(torch.zeros(3, 2), torch.zeros(3, 2)).abs().max() == 0  # posterior = prior: no KL


def test_linear_interpolation_runs_from_z0_to_z1_in_even_steps():
    z0, z1 = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([4.0, 0.0, 1.0])
    path = interpolate(z0, z1, 5)
    assert path.shape == (5, 3)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    torch.testing.assert_close(path[2], (z0 + z1) / 2)
    torch.testing.assert_close(path.diff(dim=0), ((z1 - z0) / 4).expand(4, 3))
    torch.testing.assert_close(interpolate(z0, z1, [0.25]), (0.75 * z0 + 0.25 * z1)[None])


def test_spherical_interpolation_follows_the_arc():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = interpolate(z0, z1, 9, spherical=True)
    torch.testing.assert_close(path.norm(dim=1), torch.full((9,), 3.0))  # equal norms stay on the circle
    torch.testing.assert_close(path[4], torch.tensor([3.0, 3.0]) / math.sqrt(2))
    torch.testing.assert_close(path[[0, -1]], torch.stack([z0, z1]))
    assert interpolate(z0, z1, 9).norm(dim=1)[4] < 2.2  # the straight line cuts inside: |midpoint| = 3/√2
    parallel = interpolate(z0, 2 * z0, 3, spherical=True)
    torch.testing.assert_close(parallel, interpolate(z0, 2 * z0, 3))


def test_interpolate_rejects_batches_with_a_hint():
    with pytest.raises(ValueError, match=r"mu\[i\]"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="same shape"):
        interpolate(torch.zeros(3), torch.zeros(4), 4)


def test_pca_finds_the_widest_direction_first():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(4000, 5, generator=generator) * torch.tensor([0.5, 4.0, 0.2, 2.0, 0.1]) + 7.0
    projection = pca_2d(points)
    assert projection.coordinates.shape == (4000, 2)
    variances = projection.coordinates.var(dim=0)
    assert variances[0] > variances[1] > 1.0
    assert projection.explained[0] > projection.explained[1] and projection.explained.sum() < 1
    torch.testing.assert_close(projection.explained, variances / points.var(dim=0).sum(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(projection.coordinates.mean(dim=0), torch.zeros(2), atol=1e-4, rtol=0)
    assert abs(torch.corrcoef(torch.stack([projection.coordinates[:, 0], points[:, 1]]))[0, 1]) > 0.99


def test_pca_signs_are_fixed_so_the_picture_does_not_flip():
    points = torch.randn(500, 4, generator=torch.Generator().manual_seed(1)) * torch.tensor([3.0, 1.0, 2.0, 0.5])
    torch.testing.assert_close(pca_2d(points).coordinates, pca_2d(points.flip(0)).coordinates.flip(0))
    torch.testing.assert_close(pca_2d(-points).coordinates, -pca_2d(points).coordinates)  # axes follow the data


def test_gaussian_quantiles_are_symmetric_and_follow_the_normal_cdf():
    q = gaussian_quantiles(20)
    assert q.shape == (20,) and (q.diff() > 0).all()
    torch.testing.assert_close(q, -q.flip(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(q[[0, -1]], torch.tensor([-1.6449, 1.6449]), atol=1e-4, rtol=0)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(q)
    torch.testing.assert_close(cdf.diff(), torch.full((19,), 0.9 / 19))  # equal prior mass between neighbours
    with pytest.raises(ValueError, match="0 < low < high < 1"):
        gaussian_quantiles(5, low=0.0)


def test_manifold_grid_decodes_400_images_row_by_row():
    model = VAE(Config(latent_dim=2, hidden_dim=32))
    grid = manifold_grid(model)
    assert grid.shape == (400, 784) and grid.min() >= 0 and grid.max() <= 1
    q = gaussian_quantiles(20)
    torch.testing.assert_close(grid[0], model.decode(torch.stack([q[0], q[-1]])[None])[0])  # top left: z₂ high
    torch.testing.assert_close(grid[19], model.decode(torch.stack([q[-1], q[-1]])[None])[0])  # top right
    torch.testing.assert_close(grid[380], model.decode(torch.stack([q[0], q[0]])[None])[0])  # bottom left
    with pytest.raises(ValueError, match="vae_latent2"):
        manifold_grid(VAE(Config(latent_dim=3, hidden_dim=8)))


def test_a_plain_vae_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="load_pretrained\\('cvae'\\)"):
        require_conditional(VAE(Config(latent_dim=4, hidden_dim=32)))


def test_encoding_with_labels_matches_the_encoder_in_any_batch_size(random_cvae, labelled_images):
    images, labels = labelled_images
    mu, logvar = encode_with_labels(random_cvae, images.reshape(7, 1, 28, 28), labels, batch_size=3)
    with torch.no_grad():
        expected = random_cvae.encoder(images, labels)
    torch.testing.assert_close((mu, logvar), expected)
    other_labels = (labels + 1) % 10
    assert not torch.allclose(encode_with_labels(random_cvae, images, other_labels)[0], mu), "the label reaches the encoder"
    with pytest.raises(ValueError, match="one label per image"):
        encode_with_labels(random_cvae, images, labels[:5])


def test_every_digit_is_decoded_from_each_latent_in_row_order(random_cvae):
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    images = decode_every_digit(random_cvae, z)
    assert images.shape == (30, 784)
    for i, y in [(0, 0), (1, 7), (2, 9)]:
        torch.testing.assert_close(images[10 * i + y], random_cvae.decode(z[i:i + 1], torch.tensor([y]))[0])
    assert not torch.allclose(images[0], images[1]), "the label changes the picture"


def test_style_transfer_decodes_mu_and_its_own_label_gives_the_reconstruction(random_cvae, labelled_images):
    images, labels = labelled_images
    transferred = style_transfer(random_cvae, images, labels).reshape(7, 10, 784)
    torch.testing.assert_close(transferred.reshape(70, 784), decode_every_digit(random_cvae, encode_with_labels(random_cvae, images, labels)[0]))
    own = transferred[torch.arange(7), labels]
    torch.testing.assert_close(own, random_cvae.reconstruct(images, labels))


def test_a_style_walk_moves_one_dimension_through_gaussian_quantiles(random_cvae):
    walk = style_walk(random_cvae, dim=2, steps=5).reshape(10, 5, 784)
    z = torch.zeros(1, 4)
    z[0, 2] = gaussian_quantiles(5)[3]
    torch.testing.assert_close(walk[6, 3], random_cvae.decode(z, torch.tensor([6]))[0])
    with pytest.raises(ValueError, match="between 0 and 3"):
        style_walk(random_cvae, dim=4)


def test_the_marginal_kl_split_on_cases_with_known_answers():
    from vae_lab.latent import marginal_kl_split
    from vae_lab.loss import log_prior

    generator = torch.Generator().manual_seed(0)
    same = torch.randn(1, 4, generator=generator).repeat(500, 1), torch.full((500, 4), -1.0)
    split = marginal_kl_split(*same, log_prior, draws=20)
    assert split.mutual_information == pytest.approx(0.0, abs=1e-6), "identical posteriors say nothing about x"
    assert split.marginal_kl == pytest.approx(kl_divergence(*same)[0].item(), abs=0.1), "so q(z) is that posterior"
    apart = 100 * torch.randn(500, 4, generator=generator), torch.full((500, 4), -2.0)
    split = marginal_kl_split(*apart, log_prior)
    assert split.mutual_information == pytest.approx(math.log(500), abs=1e-4), "far apart, each code names its image"
    assert split.average_kl == pytest.approx(split.mutual_information + split.marginal_kl)
    assert split.average_kl == pytest.approx(kl_divergence(*apart).mean().item(), rel=1e-3)


def test_the_hole_fraction_is_the_quantile_for_a_matching_prior_and_all_for_a_distant_one():
    from vae_lab.latent import hole_fraction

    generator = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(3000, 2, generator=generator), torch.full((3000, 2), math.log(0.05))
    draw = lambda n: torch.randn(n, 2, generator=generator) * math.sqrt(1.05)  # q(z) ≈ N(0, 1.05 I)
    assert hole_fraction(draw(4000), draw(4000), mu, logvar, quantile=0.05) == pytest.approx(0.05, abs=0.02)
    assert hole_fraction(draw(500) + 10, draw(4000), mu, logvar) == 1.0
    with pytest.raises(ValueError, match="quantile must lie strictly between 0 and 1"):
        hole_fraction(draw(5), draw(5), mu, logvar, quantile=1.0)


def test_a_projection_draws_other_points_in_the_same_plane():
    points = torch.randn(200, 5, generator=torch.Generator().manual_seed(2)) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    projection = pca_2d(points)
    assert torch.allclose(projection.project(points), projection.coordinates, atol=1e-5)
