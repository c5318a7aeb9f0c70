"""The conditional VAE's tools: encoding with labels, one style as every digit, the label left in z, and notebook 10's exercise."""
import pytest
import torch
from matplotlib.figure import Figure

from vae_lab.lessons import solutions
from vae_lab import VAE, Config, load_pretrained, reparameterize
from vae_lab.latent import decode_every_digit, encode_with_labels, require_conditional, style_transfer, style_walk
from vae_lab.lessons.conditional import (between_class_share, digit_grid_figure, knn_label_accuracy, style_transfer_figure,
                                         style_walk_figure)
from vae_lab.lessons.exercises import check_style_transfer
from vae_lab.latent import encode_posterior, gaussian_quantiles


@pytest.fixture(scope="module")
def cvae():
    return VAE(Config(conditional=True, latent_dim=4, hidden_dim=32, seed=3)).eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(7, 784, generator=generator), torch.randint(0, 10, (7,), generator=generator)


def test_a_plain_vae_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="load_pretrained\\('cvae'\\)"):
        require_conditional(VAE(Config(latent_dim=4, hidden_dim=32)))


def test_encoding_with_labels_matches_the_encoder_in_any_batch_size(cvae, batch):
    images, labels = batch
    mu, logvar = encode_with_labels(cvae, images.reshape(7, 1, 28, 28), labels, batch_size=3)
    with torch.no_grad():
        expected = cvae.encoder(images, labels)
    torch.testing.assert_close((mu, logvar), expected)
    other_labels = (labels + 1) % 10
    assert not torch.allclose(encode_with_labels(cvae, images, other_labels)[0], mu), "the label reaches the encoder"
    with pytest.raises(ValueError, match="one label per image"):
        encode_with_labels(cvae, images, labels[:5])


def test_every_digit_is_decoded_from_each_latent_in_row_order(cvae):
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    images = decode_every_digit(cvae, z)
    assert images.shape == (30, 784)
    for i, y in [(0, 0), (1, 7), (2, 9)]:
        torch.testing.assert_close(images[10 * i + y], cvae.decode(z[i:i + 1], torch.tensor([y]))[0])
    assert not torch.allclose(images[0], images[1]), "the label changes the picture"


def test_style_transfer_decodes_mu_and_its_own_label_gives_the_reconstruction(cvae, batch):
    images, labels = batch
    transferred = style_transfer(cvae, images, labels).reshape(7, 10, 784)
    torch.testing.assert_close(transferred.reshape(70, 784), decode_every_digit(cvae, encode_with_labels(cvae, images, labels)[0]))
    own = transferred[torch.arange(7), labels]
    torch.testing.assert_close(own, cvae.reconstruct(images, labels))


def test_a_style_walk_moves_one_dimension_through_gaussian_quantiles(cvae):
    walk = style_walk(cvae, dim=2, steps=5).reshape(10, 5, 784)
    z = torch.zeros(1, 4)
    z[0, 2] = gaussian_quantiles(5)[3]
    torch.testing.assert_close(walk[6, 3], cvae.decode(z, torch.tensor([6]))[0])
    with pytest.raises(ValueError, match="between 0 and 3"):
        style_walk(cvae, dim=4)


def test_between_class_share_is_one_for_points_at_their_class_means_and_zero_for_equal_means():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    at_means = torch.tensor([[1.0, 2.0], [1.0, 2.0], [-3.0, 0.0], [-3.0, 0.0], [5.0, 1.0], [5.0, 1.0]])
    assert between_class_share(at_means, labels) == pytest.approx(1.0)
    same_means = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0], [3.0, 3.0], [-3.0, -3.0]])
    assert between_class_share(same_means, labels) == pytest.approx(0.0)
    points = torch.tensor([[0.0], [2.0], [10.0], [12.0]])  # means 1 and 11 around 6: between 4·25 = 100, total 104
    assert between_class_share(points, torch.tensor([0, 0, 1, 1])) == pytest.approx(100 / 104)


def test_knn_accuracy_leaves_each_point_out_and_breaks_ties_to_the_smaller_label():
    points, labels = torch.tensor([[0.0], [1.0], [5.0]]), torch.tensor([0, 1, 1])
    assert knn_label_accuracy(points, labels, k=1) == pytest.approx(1 / 3)  # 1.0 if a point could vote for itself
    tie = torch.tensor([[0.0], [-1.0], [1.0]]), torch.tensor([1, 1, 0])  # point 0: one vote each for 1 and 0
    assert knn_label_accuracy(*tie, k=2) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="between 1 and 2"):
        knn_label_accuracy(points, labels, k=3)


def test_knn_accuracy_separates_clusters_and_is_near_chance_for_random_labels():
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(10).repeat(30)
    clusters = 10 * torch.eye(10)[labels] + torch.randn(300, 10, generator=generator)
    assert knn_label_accuracy(clusters, labels, k=5) == 1.0
    assert knn_label_accuracy(clusters, labels, k=5, chunk=7) == 1.0
    shuffled = labels[torch.randperm(300, generator=generator)]
    assert knn_label_accuracy(clusters, shuffled, k=5) < 0.25


def test_the_figures_draw_and_save(cvae, batch, tmp_path):
    images, labels = batch
    for name, figure in [("grid.png", digit_grid_figure(cvae, n_styles=2, path=tmp_path / "grid.png")),
                         ("transfer.png", style_transfer_figure(cvae, images[:3], labels[:3], path=tmp_path / "transfer.png")),
                         ("walk.png", style_walk_figure(cvae, [0, 3], steps=4, path=tmp_path / "walk.png"))]:
        assert isinstance(figure, Figure)
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert len(style_walk_figure(cvae, [0, 1, 2]).axes) == 3


def test_the_shipped_cvae_keeps_less_of_the_label_in_z_than_the_vae(mnist):
    images, labels = mnist.test_images[:1000], mnist.test_labels[:1000]
    cvae_mu = encode_with_labels(load_pretrained("cvae").model, images, labels)[0]
    vae_mu = encode_posterior(load_pretrained("vae").model, images)[0]
    assert between_class_share(cvae_mu, labels) < 0.5 * between_class_share(vae_mu, labels)
    assert knn_label_accuracy(cvae_mu, labels) < knn_label_accuracy(vae_mu, labels)


def test_the_exercise_check_accepts_the_solution_and_names_common_mistakes(capsys):
    assert check_style_transfer(solutions.write_as_every_digit)

    def encoded_with_target_labels(model, image, label):
        return model.reconstruct(image.repeat(10, 1), torch.arange(10))

    def own_label_only(model, image, label):
        return model.reconstruct(image[None], torch.tensor([label])).repeat(10, 1)

    def sampled(model, image, label):
        mu, logvar = model.encoder(image[None], torch.tensor([label]))
        return model.decode(reparameterize(mu, logvar).repeat(10, 1), torch.arange(10))

    def logits(model, image, label):
        mu, _ = model.encoder(image[None], torch.tensor([label]))
        return model.decoder(mu.repeat(10, 1), torch.arange(10))

    def stub(model, image, label):
        raise NotImplementedError

    capsys.readouterr()
    for answer, words in [(encoded_with_target_labels, "with its own label y"), (own_label_only, "same digit"),
                          (sampled, "not a sample"), (logits, "logits"), (lambda m, i, y: i, "shape (10, 784)"),
                          (stub, "not attempted")]:
        assert not check_style_transfer(answer)
        assert words in capsys.readouterr().out
