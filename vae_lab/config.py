"""The lab's settings in one validated dataclass; its defaults are the lab's numbers."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run: model sizes, optimiser and data."""

    batch_size: int = 128
    epochs: int = 10
    latent_dim: int = 20
    hidden_dim: int = 400
    lr: float = 1e-3
    seed: int = 1
    train_size: int | None = None  # None: all 60,000 training images
    binarize: bool = False  # dynamically binarised pixels instead of grayscale targets
    beta: float = 1.0  # weight of the KL term: loss = reconstruction + β·KL (1 is the true negative ELBO)

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "latent_dim", "hidden_dim"):
            _require_positive_int(name, getattr(self, name))
        if self.train_size is not None:
            _require_positive_int("train_size", self.train_size)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise ValueError(f"lr must be a number between 0 and 1, got {self.lr!r}; the lab uses 1e-3")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < float("inf"):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}; 1 trains the true ELBO")
        if not isinstance(self.binarize, bool):
            raise ValueError(f"binarize must be True or False, got {self.binarize!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (for JSON and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Rebuild a Config, naming any setting this version of the lab does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known settings are {sorted(known)}")
        return cls(**values)


def _require_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
