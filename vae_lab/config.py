"""The lab's settings in one validated dataclass; its defaults are the lab's numbers."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "continuous_bernoulli")


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
    warmup_epochs: int = 0  # KL warm-up: β rises linearly from 0 to `beta` over this many epochs (0: no warm-up)
    lr_final: float | None = None  # if set, the learning rate decays geometrically from `lr` to this by the last epoch
    architecture: str = "mlp"  # "mlp": fully connected layers; "conv": convolutional encoder and decoder
    hidden_layers: int = 1  # hidden layers in the MLP encoder and in the MLP decoder
    conditional: bool = False  # a conditional VAE: encoder and decoder also see the digit label
    likelihood: str = "bernoulli"  # p(x|z) per pixel: "bernoulli" or "continuous_bernoulli"
    iwae_samples: int = 1  # k > 1 trains on the importance-weighted bound with k samples (IWAE) instead of the ELBO

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "latent_dim", "hidden_dim", "hidden_layers", "iwae_samples"):
            _require_positive_int(name, getattr(self, name))
        if self.train_size is not None:
            _require_positive_int("train_size", self.train_size)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise ValueError(f"lr must be a number between 0 and 1, got {self.lr!r}; the lab uses 1e-3")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < float("inf"):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}; 1 trains the true ELBO")
        for name in ("binarize", "conditional"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be a non-negative integer, got {self.warmup_epochs!r}; 0 turns warm-up off")
        if self.lr_final is not None and (isinstance(self.lr_final, bool) or not isinstance(self.lr_final, (int, float))
                                          or not 0 < self.lr_final <= self.lr):
            raise ValueError(f"lr_final must be None or a number in (0, lr={self.lr:g}], got {self.lr_final!r}")
        if self.iwae_samples > 1 and (self.beta != 1 or self.warmup_epochs):
            raise ValueError(f"the IWAE objective (iwae_samples={self.iwae_samples}) is a bound on log p(x) only with "
                             "beta=1 and no warm-up; set iwae_samples=1 to train a β-VAE")
        for name, allowed in (("architecture", ARCHITECTURES), ("likelihood", LIKELIHOODS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")

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

    def beta_at(self, progress: float) -> float:
        """The KL weight after ``progress`` epochs (fractional): `beta`, ramped up linearly during warm-up."""
        if self.warmup_epochs == 0:
            return self.beta
        return self.beta * min(1.0, progress / self.warmup_epochs)

    def lr_at(self, epoch: int) -> float:
        """The learning rate for epoch ``epoch`` (1-based): `lr`, decaying geometrically to `lr_final`."""
        if self.lr_final is None or self.epochs == 1:
            return self.lr
        return self.lr * (self.lr_final / self.lr) ** ((epoch - 1) / (self.epochs - 1))


def _require_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
