"""What a training run records after every epoch: the negative ELBO, its two parts and the seconds, saved as JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .files import write_atomically


@dataclass
class History:
    """Per-epoch negative ELBO and its two parts (nats per image, β = 1 whatever β trains) and wall-clock seconds.

    A model trained on binarised pixels is tested on the binarised test set (`data.binarized_test_images`).
    """

    train_loss: list[float] = field(default_factory=list)
    train_reconstruction: list[float] = field(default_factory=list)
    train_kl: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_reconstruction: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.train_loss)

    def append(self, **values: float) -> None:
        for name, value in values.items():
            getattr(self, name).append(float(value))

    def drop_last(self) -> None:
        """Forget the last epoch (one that could not be saved)."""
        for setting in fields(self):
            if setting.name != "interrupted":
                del getattr(self, setting.name)[-1:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not set(values) <= names:
            raise ValueError(f"a history needs the keys {sorted(names)}")
        return cls(**values)

    def save(self, path: str | Path) -> None:
        """Write the history as JSON, atomically."""
        write_atomically(Path(path), lambda handle: handle.write(json.dumps(self.to_dict(), indent=1).encode()))

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by `save`, with a clear error for a damaged file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no history at {path}; train first with: python -m vae_lab train") from None
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid vae_lab history ({error}); delete it and retrain, "
                             "or restore it from the run's checkpoint.pt") from None
