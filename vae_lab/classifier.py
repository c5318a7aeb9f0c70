"""A small MNIST classifier: the judge behind the lab's sample-quality numbers (see `vae_lab.quality`).

conv 1→32 3×3 · batch norm · ReLU · max-pool 2 → conv 32→64 3×3 · batch norm · ReLU · max-pool 2 → dropout
→ linear 1600→128 · ReLU (the feature layer) → dropout → linear 128→10.
About 225k weights (under 1 MB on disk); pooling twice keeps the feature layer small. > 99 % on the test set.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import PRETRAINED_DIR, CheckpointError, Damaged, read_tagged_file, require_entries, tensors_problem
from .data import MNIST, batches
from .files import write_atomically
from .history import describe
from .model import flatten_images, in_eval_mode

CLASSIFIER_FORMAT = "vae_lab.classifier/1"
CLASSIFIER_PATH = PRETRAINED_DIR / "classifier.pt"
FEATURE_DIM = 128


class Classifier(nn.Module):
    """Digit classifier for images (N, 784) or (N, 1, 28, 28) in [0, 1]; `features` is its 128-wide penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, bias=False)  # 28 → 26, pooled to 13; batch norm supplies the bias
        self.norm1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)  # 13 → 11, pooled to 5
        self.norm2 = nn.BatchNorm2d(64)
        self.hidden = nn.Linear(64 * 5 * 5, FEATURE_DIM)
        self.out = nn.Linear(FEATURE_DIM, 10)
        self.dropout = nn.Dropout(0.25)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature layer h = ReLU(W · conv(x) + b), shape (N, 128); Fréchet distances are measured here."""
        x = flatten_images(x).reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.norm2(self.conv2(x))), 2)
        return F.relu(self.hidden(self.dropout(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10); softmax turns them into p(digit | image)."""
        return self.out(self.dropout(self.features(x)))


def _shifted(images: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Each image (N, 1, 28, 28) moved by its own random shift of up to ``pixels`` in x and y, zeros filled in."""
    n = len(images)
    padded = F.pad(images, (pixels,) * 4)
    dx, dy = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(28))[:, None, :, None].expand(n, 1, 28, 28 + 2 * pixels)
    cropped = padded.gather(2, rows)
    columns = (dx[:, None] + torch.arange(28))[:, None, None, :].expand(n, 1, 28, 28)
    return cropped.gather(3, columns)


def train_classifier(data: MNIST, epochs: int = 3, seed: int = 1, batch_size: int = 128, lr: float = 3e-3,
                     shift: int = 1) -> Classifier:
    """Train a `Classifier` with Adam on ``data``'s training images (random shifts of up to ``shift`` pixels).

    The learning rate falls from ``lr`` to zero along a cosine; everything random comes from ``seed``,
    and the global RNG is left as it was.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    images = flatten_images(data.train_images).reshape(-1, 1, 28, 28)
    labels = data.train_labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weight initialisation and dropout
        classifier = Classifier()
        generator = torch.Generator().manual_seed(seed)  # shuffling and shifts
        optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
        steps = epochs * math.ceil(len(images) / batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
        classifier.train()
        for _ in range(epochs):
            for x, y in batches(images, batch_size, generator, labels=labels):
                x = _shifted(x, generator, shift) if shift else x
                loss = F.cross_entropy(classifier(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return classifier.eval()


@torch.no_grad()
def accuracy(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose most likely digit equals ``labels``, in [0, 1]."""
    images = flatten_images(images)
    if labels.shape != (len(images),):
        raise ValueError(f"expected one label per image, shape ({len(images)},), got {tuple(labels.shape)}")
    with in_eval_mode(classifier):
        correct = sum(int((classifier(x).argmax(1) == y).sum()) for x, y in batches(images, batch_size, labels=labels))
    return correct / len(images)


def save_classifier(path: str | Path, classifier: Classifier, test_accuracy: float) -> None:
    """Write the weights and their measured test accuracy atomically to ``path``."""
    payload = {"format": CLASSIFIER_FORMAT,
               "model": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
               "test_accuracy": float(test_accuracy)}
    write_atomically(Path(path), lambda handle: torch.save(payload, handle))


def load_classifier(path: str | Path | None = None) -> Classifier:
    """Load a classifier written by `save_classifier` (None: the shipped one), checked in full, in eval mode."""
    path = Path(path) if path is not None else CLASSIFIER_PATH
    payload = read_tagged_file(path, CLASSIFIER_FORMAT, "classifier", "train one with: python scripts/train_classifier.py",
                               classifier_outline)
    bad = [name for name, tensor in payload["model"].items() if not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"{path} has NaN or infinite weights in {', '.join(bad[:3])}; retrain it with: "
                              "python scripts/train_classifier.py")
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; keep the global RNG as it was
        classifier = Classifier()
    classifier.load_state_dict(payload["model"])
    return classifier.eval()


def classifier_outline(outline: dict) -> list[torch.Tensor]:
    """Check a classifier file's outline (tensors on the meta device) against `Classifier`; return its tensors."""
    require_entries(outline, ("format", "model", "test_accuracy"), "classifier")
    with torch.device("meta"):
        expected = Classifier().state_dict()
    problem = tensors_problem(outline["model"], expected)
    if problem:
        raise Damaged(f"holds weights for a different architecture than vae_lab's Classifier ({problem})")
    if not isinstance(outline["test_accuracy"], float) or not 0 <= outline["test_accuracy"] <= 1:
        raise Damaged(f"records a test accuracy of {describe(outline['test_accuracy'])}, not a fraction from 0 to 1")
    return list(outline["model"].values())
