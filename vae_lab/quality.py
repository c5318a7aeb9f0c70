"""Sample quality, judged by the lab's MNIST classifier: a Fréchet distance and the digits a model draws.

- The Fréchet classifier distance (FD) compares two sets of images through the classifier's 128-wide
  feature layer; like FID, it fits a Gaussian to each set's features and measures how far apart they are.
- The class distribution asks which digit each image is, how sure the classifier is, and whether a
  model draws every digit equally often.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .classifier import Classifier, load_classifier
from .data import batches
from .model import flatten_images, in_eval_mode


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D), in float64.

    FD = ‖μa − μb‖² + Tr(Ca + Cb − 2 (Ca Cb)^½); Tr (Ca Cb)^½ is the sum of √λ over the eigenvalues λ
    of the symmetric matrix Ca^½ Cb Ca^½. Zero for identical statistics; larger is further apart.
    """
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        if not isinstance(features, torch.Tensor) or features.dim() != 2:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"{name} must be a tensor of shape (N, D), one row per image, got {shape}")
        if len(features) < 2:
            raise ValueError(f"{name} has {len(features)} row(s); a covariance needs at least 2 images (use hundreds)")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features_a has {features_a.shape[1]} columns but features_b has {features_b.shape[1]}; "
                         "compute both with the same classifier")
    a, b = features_a.double().cpu(), features_b.double().cpu()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(cov_a)
    sqrt_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _eval_batches(classifier: Classifier, images: torch.Tensor, batch_size: int, layer: str) -> torch.Tensor:
    images = flatten_images(images)
    if len(images) == 0:
        raise ValueError("expected at least one image, got an empty batch")
    device = next(classifier.parameters()).device
    with torch.no_grad(), in_eval_mode(classifier):  # no dropout: deterministic, and the global RNG is left alone
        return torch.cat([getattr(classifier, layer)(x.to(device)).cpu() for x in batches(images, batch_size)])


def classifier_features(images: torch.Tensor, classifier: Classifier, batch_size: int = 1000) -> torch.Tensor:
    """The classifier's feature layer for every image: (N, 128) floats, computed in batches without gradients."""
    return _eval_batches(classifier, images, batch_size, "features")


def frechet_classifier_distance(images_a: torch.Tensor, images_b: torch.Tensor,
                                classifier: Classifier | None = None) -> float:
    """FD between two sets of images in the classifier's feature space (None: the shipped classifier).

    0 means the two sets look alike to the classifier; MNIST's test set against its training set gives
    a small value, a blurry or mode-dropping model a larger one, noise a very large one.
    """
    classifier = classifier if classifier is not None else load_classifier()
    return frechet_distance(classifier_features(images_a, classifier), classifier_features(images_b, classifier))


class ClassDistribution(NamedTuple):
    """Which digits a set of images shows, as the classifier sees them.

    fractions: share of images per digit 0–9 (argmax of the softmax), summing to 1; 0.1 each when balanced.
    confidence: mean max-softmax probability, in [0.1, 1]; near 1 for clear digits, lower for ambiguous ones.
    entropy: H = −Σ p log p of ``fractions`` in nats; log 10 ≈ 2.303 for every digit equally often, 0 for one digit only.
    """

    fractions: tuple[float, ...]
    confidence: float
    entropy: float


def class_distribution(images: torch.Tensor, classifier: Classifier | None = None) -> ClassDistribution:
    """The digit histogram, mean confidence and histogram entropy of ``images`` (None: the shipped classifier)."""
    classifier = classifier if classifier is not None else load_classifier()
    probabilities = _eval_batches(classifier, images, 1000, "forward").double().softmax(1)
    fractions = torch.bincount(probabilities.argmax(1), minlength=10).double() / len(probabilities)
    entropy = -sum(p * math.log(p) for p in fractions.tolist() if p > 0)
    return ClassDistribution(tuple(fractions.tolist()), float(probabilities.max(1).values.mean()), entropy)


def sample_quality(images: torch.Tensor, reference_images: torch.Tensor,
                   classifier: Classifier | None = None) -> dict[str, float | list[float]]:
    """Every sample-quality number for one model's ``images``, against real ``reference_images`` (e.g. the test set).

    fd: Fréchet classifier distance to the reference (lower is better; 0 is indistinguishable).
    confidence: mean max-softmax probability (higher is better; real test digits score about 0.99).
    class_entropy: entropy of the digit histogram in nats (log 10 ≈ 2.303 is best: every digit equally often).
    class_fractions: share of each digit 0–9 (about 0.1 each for a model that covers all digits).
    """
    classifier = classifier if classifier is not None else load_classifier()
    distribution = class_distribution(images, classifier)
    return {"fd": frechet_classifier_distance(images, reference_images, classifier),
            "confidence": distribution.confidence,
            "class_entropy": distribution.entropy,
            "class_fractions": list(distribution.fractions)}
