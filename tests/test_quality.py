"""Sample quality: the Fréchet distance against closed forms, and the classifier's view of real and fake digits."""
import math

import pytest
import torch

from vae_lab.classifier import load_classifier
from vae_lab.quality import (ClassDistribution, class_distribution, classifier_features, frechet_classifier_distance,
                             frechet_distance, sample_quality)


def gaussian_features(n, mean, std, seed):
    """n rows whose sample mean is exactly ``mean`` and sample covariance exactly diag(std²)."""
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # whitened: sample covariance = I
    return torch.tensor(mean, dtype=torch.float64) + z * torch.tensor(std, dtype=torch.float64)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def test_features(classifier, mnist):
    return classifier_features(mnist.test_images, classifier)


def test_fd_of_a_set_with_itself_is_zero():
    features = torch.randn(500, 20, generator=torch.Generator().manual_seed(0)) ** 2
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_fd_of_diagonal_gaussians_is_the_closed_form():
    mean_a, std_a = [0.0, 1.0, -2.0, 0.5], [1.0, 2.0, 0.5, 3.0]
    mean_b, std_b = [1.0, 1.0, 0.0, 0.5], [2.0, 0.5, 0.5, 1.0]
    expected = sum((a - b) ** 2 for a, b in zip(mean_a, mean_b)) + sum((a - b) ** 2 for a, b in zip(std_a, std_b))
    a, b = gaussian_features(1000, mean_a, std_a, seed=1), gaussian_features(700, mean_b, std_b, seed=2)
    assert expected == pytest.approx(1 + 4 + 1 + 2.25 + 0 + 4)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a.float(), b.float()) == pytest.approx(expected, rel=1e-4)


def test_fd_of_large_gaussian_samples_approaches_the_closed_form():
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(200_000, 3, generator=generator) * torch.tensor([1.0, 2.0, 3.0])
    b = torch.randn(200_000, 3, generator=generator) * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([3.0, 0.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(9 + 1 + 0 + 4, rel=0.01)


def test_fd_with_correlated_covariances_matches_the_eigenvalues_of_their_product():
    generator = torch.Generator().manual_seed(4)
    a = torch.randn(400, 6, generator=generator, dtype=torch.float64) @ torch.randn(6, 6, generator=generator, dtype=torch.float64)
    b = torch.randn(300, 6, generator=generator, dtype=torch.float64) @ torch.randn(6, 6, generator=generator, dtype=torch.float64) + 1
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    trace_sqrt = torch.linalg.eigvals(cov_a @ cov_b).real.clamp(min=0).sqrt().sum()  # (Ca Cb) has real eigenvalues ≥ 0
    expected = (a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    assert frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-9)


def test_fd_is_symmetric_and_grows_with_a_shift():
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(800, 10, generator=generator), torch.randn(600, 10, generator=generator) * 1.5
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    distances = [frechet_distance(a, b + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[-1] > distances[0] + 30  # a shift of 2 in 10 dims adds 40


def test_fd_refuses_mismatched_or_too_small_feature_sets():
    with pytest.raises(ValueError, match="same classifier"):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(ValueError, match="at least 2 images"):
        frechet_distance(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        frechet_distance(torch.randn(10), torch.randn(10, 1))


def test_test_images_are_far_closer_to_training_images_than_to_noise(classifier, mnist, test_features):
    train = frechet_distance(test_features, classifier_features(mnist.train_images[:10_000], classifier))
    noise = frechet_distance(test_features, classifier_features(torch.rand(10_000, 784, generator=torch.Generator().manual_seed(0)), classifier))
    assert train < 0.02 * noise
    assert frechet_classifier_distance(mnist.test_images[:2000], mnist.train_images[:2000], classifier) < 0.1 * noise


def test_features_are_deterministic_and_batch_independent(classifier, mnist, test_features):
    images = mnist.test_images[:1000]
    assert classifier_features(images, classifier, batch_size=300).shape == (1000, 128)
    assert torch.allclose(classifier_features(images, classifier, batch_size=300), test_features[:1000], atol=1e-5)
    with pytest.raises(ValueError, match="empty batch"):
        classifier_features(images[:0], classifier)


def test_class_distribution_of_real_test_digits_is_balanced_and_confident(classifier, mnist):
    distribution = class_distribution(mnist.test_images, classifier)
    assert isinstance(distribution, ClassDistribution)
    true_fractions = torch.bincount(mnist.test_labels, minlength=10).double() / len(mnist.test_labels)
    assert torch.allclose(torch.tensor(distribution.fractions, dtype=torch.float64), true_fractions, atol=0.002)
    assert sum(distribution.fractions) == pytest.approx(1.0)
    assert distribution.entropy == pytest.approx(math.log(10), abs=0.01)
    assert distribution.confidence > 0.95


def test_class_distribution_sees_a_single_digit_as_zero_entropy(classifier, mnist):
    ones = mnist.test_images[mnist.test_labels == 1][:200]
    distribution = class_distribution(ones, classifier)
    assert distribution.fractions[1] > 0.98
    assert distribution.entropy < 0.1


def test_sample_quality_gives_every_number_and_leaves_the_global_rng_alone(classifier, mnist):
    classifier.train()  # even a classifier left in training mode is judged without dropout
    state = torch.get_rng_state()
    real = sample_quality(mnist.test_images[:1000], mnist.train_images[:1000], classifier)
    noise = sample_quality(torch.rand(1000, 784, generator=torch.Generator().manual_seed(1)), mnist.train_images[:1000])
    assert torch.equal(torch.get_rng_state(), state)
    assert classifier.training
    classifier.eval()
    assert set(real) == {"fd", "confidence", "class_entropy", "class_fractions"}
    assert len(real["class_fractions"]) == 10
    assert real["fd"] < 0.1 * noise["fd"]
    assert real["confidence"] > 0.95  # noise can score near 1 too: confidence alone does not detect nonsense
    assert real["class_entropy"] > 2.2 > noise["class_entropy"]


def test_quality_refuses_images_of_the_wrong_shape(classifier):
    with pytest.raises(ValueError, match="flatten 28×28 images first"):
        class_distribution(torch.rand(10, 28, 28), classifier)
    with pytest.raises(ValueError, match="flatten 28×28 images first"):
        frechet_classifier_distance(torch.rand(10, 784), torch.rand(10, 729), classifier)
