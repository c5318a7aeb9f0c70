"""Notebook 10's tools (vae_lab.lessons.conditional): its figures and the label left in z."""
import pytest
import torch
from matplotlib.figure import Figure

from vae_lab import load_pretrained
from vae_lab.latent import encode_with_labels
from vae_lab.lessons.conditional import (between_class_share, digit_grid_figure, knn_label_accuracy,
                                         negative_elbo_per_image, style_transfer_figure, style_walk_figure)
from vae_lab.latent import encode_posterior
from vae_lab.train import evaluate_loss


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


def test_the_figures_draw_and_save(random_cvae, labelled_images, tmp_path):
    images, labels = labelled_images
    for name, figure in [("grid.png", digit_grid_figure(random_cvae, n_styles=2, path=tmp_path / "grid.png")),
                         ("transfer.png", style_transfer_figure(random_cvae, images[:3], labels[:3], path=tmp_path / "transfer.png")),
                         ("walk.png", style_walk_figure(random_cvae, [0, 3], steps=4, path=tmp_path / "walk.png"))]:
        assert isinstance(figure, Figure)
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert len(style_walk_figure(random_cvae, [0, 1, 2]).axes) == 3


def test_the_shipped_cvae_keeps_less_of_the_label_in_z_than_the_vae(mnist):
    images, labels = mnist.test_images[:1000], mnist.test_labels[:1000]
    cvae_mu = encode_with_labels(load_pretrained("cvae").model, images, labels)[0]
    vae_mu = encode_posterior(load_pretrained("vae").model, images)[0]
    assert between_class_share(cvae_mu, labels) < 0.5 * between_class_share(vae_mu, labels)
    assert knn_label_accuracy(cvae_mu, labels) < knn_label_accuracy(vae_mu, labels)



def test_each_images_negative_elbo_averages_to_the_test_loss_and_a_wrong_label_costs_more(mnist):
    images, labels = mnist.test_images[:500], mnist.test_labels[:500]
    vae, cvae = load_pretrained("vae").model, load_pretrained("cvae").model
    per_image = negative_elbo_per_image(vae, images, labels, draws=16, batch_size=200)
    assert per_image.shape == (500,)
    torch.manual_seed(0)
    assert float(per_image.mean()) == pytest.approx(evaluate_loss(vae, images)[0], abs=0.5)
    told = negative_elbo_per_image(cvae, images, labels, draws=16)
    misled = negative_elbo_per_image(cvae, images, (labels + 1) % 10, draws=16)
    assert (misled > told).float().mean() > 0.95, "told the wrong digit, almost every image costs more"
    with pytest.raises(ValueError, match="one label per image"):
        negative_elbo_per_image(cvae, images, labels[:10])
