"""What a training run records after every epoch: the negative ELBO, its two parts and the seconds, saved as JSON.

A history read from a file (``history.json`` or a checkpoint) is checked in full: every list, of equal length, of
finite numbers; a negative ELBO equal to its reconstruction plus its KL; ``interrupted`` True or False.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import LabError
from .files import write_atomically

HISTORY_FILE_LIMIT = 64 * 2**20  # bytes: a million epochs fit in less
SUM_TOLERANCE = 1e-3  # how far (relative) a recorded loss may sit from its reconstruction + KL: float32 rounding


class HistoryError(LabError, ValueError):
    """A history file or dictionary is not one that `fit` records; the message names the file, the value and the fix."""


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
        for name in SERIES:
            del getattr(self, name)[-1:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> History:
        """The history ``values`` describes, if it is one `fit` could have recorded; else a `HistoryError` naming
        the first problem."""
        problem = history_problem(values)
        if problem:
            raise HistoryError(problem)
        return cls(**{name: [float(v) for v in values[name]] for name in SERIES}, interrupted=values["interrupted"])

    def save(self, path: str | Path) -> None:
        """Write the history as JSON, atomically, once it is known to be a valid history."""
        problem = history_problem(self.to_dict())
        if problem:
            raise HistoryError(f"refused to write {path}: {problem}")
        plain = {**{name: [float(v) for v in getattr(self, name)] for name in SERIES}, "interrupted": self.interrupted}
        text = json.dumps(plain, indent=1, allow_nan=False)
        write_atomically(Path(path), lambda handle: handle.write(text.encode()))

    @classmethod
    def load(cls, path: str | Path, fix: str | None = None) -> History:
        """Read a history written by `save`, checked in full; a damaged file is one sentence ending in ``fix``
        (by default: how to write it again from the run's checkpoint)."""
        path = Path(path)
        fix = fix or (f"write it again from the run's checkpoint with load_checkpoint("
                      f"{str(path.parent / 'checkpoint.pt')!r}).history.save({str(path)!r}), or delete it and retrain")
        try:
            if path.exists() and not path.is_file() and not path.is_dir():  # a pipe or a device: never read
                raise HistoryError("it is not a file but a device, a pipe or a socket")
            if path.stat().st_size > HISTORY_FILE_LIMIT:
                raise HistoryError(f"it is {path.stat().st_size / 2**20:,.0f} MB, far more than any history")
            return cls.from_dict(json.loads(path.read_bytes(), parse_constant=_refuse_constant))
        except FileNotFoundError:
            raise FileNotFoundError(f"no history at {path}; train first with: python -m vae_lab train") from None
        except IsADirectoryError:
            raise HistoryError(f"{path} is a folder, not a history file; give the run's history.json") from None
        except (ValueError, RecursionError) as error:  # JSON that does not parse, or a HistoryError
            what = str(error) if isinstance(error, HistoryError) else f"not JSON: {str(error)[:80]}"
            raise HistoryError(f"{path} is not a valid vae_lab history ({what}); {fix}") from None


SERIES = tuple(f.name for f in fields(History) if f.name != "interrupted")  # the per-epoch lists


def _refuse_constant(name: str) -> float:
    raise ValueError(f"it holds {name}, which is not a number JSON allows")


def finite_number(value: Any) -> bool:
    """True for a real number (not a bool) that is neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def describe(value: Any) -> str:
    """A short, safe description of a value for an error message: numbers and short strings as they are, else a type."""
    if isinstance(value, str):
        return repr(value[:40] + "…" if len(value) > 40 else value)
    if value is None or isinstance(value, (bool, int, float)):
        try:
            text = repr(value)
        except ValueError:  # an integer of more digits than Python will print
            return "an integer of thousands of digits"
        return text if len(text) <= 40 else f"{text[:20]}… ({len(text)} digits)"
    return f"a {type(value).__name__}"


def history_problem(values: Any) -> str | None:
    """What makes ``values`` other than a history `fit` records (the keys of `History`, lists of equal length of finite
    numbers, seconds ≥ 0, KL ≥ 0, each loss its reconstruction + KL, ``interrupted`` a bool), or None."""
    if not isinstance(values, dict):
        return f"a history is a dictionary of per-epoch lists, not {describe(values)}"
    names = {f.name for f in fields(History)}
    missing, unknown = sorted(names - set(values)), sorted(map(str, set(values) - names))
    if missing or unknown:
        return ", ".join(part for part in (f"missing {missing}" if missing else "",
                                           f"unknown keys {unknown[:3]}" if unknown else "") if part)
    if not isinstance(values["interrupted"], bool):
        return f"'interrupted' must be true or false, not {describe(values['interrupted'])}"
    for name in SERIES:
        series = values[name]
        if not isinstance(series, list):
            return f"'{name}' must be a list of numbers, one per epoch, not {describe(series)}"
        for epoch, value in enumerate(series, 1):
            if not finite_number(value):
                return f"{name}[{epoch - 1}] (epoch {epoch}) is {describe(value)}, not a finite number"
    lengths = {name: len(values[name]) for name in SERIES}
    if len(set(lengths.values())) > 1:
        return f"its lists differ in length ({', '.join(f'{n}: {k}' for n, k in lengths.items())}); each needs one entry per epoch"
    for epoch in range(lengths["seconds"]):
        for split in ("train", "test"):
            loss, reconstruction, kl = (values[f"{split}_{part}"][epoch] for part in ("loss", "reconstruction", "kl"))
            if kl < -SUM_TOLERANCE:
                return f"{split}_kl of epoch {epoch + 1} is {kl:g}, but a KL divergence is never negative"
            if abs(loss - (reconstruction + kl)) > SUM_TOLERANCE * max(1.0, abs(loss)):
                return (f"{split}_loss of epoch {epoch + 1} is {loss:g}, not its reconstruction {reconstruction:g} "
                        f"+ KL {kl:g}")
        if values["seconds"][epoch] < 0:
            return f"seconds of epoch {epoch + 1} is {values['seconds'][epoch]:g}, but time does not run backwards"
    return None
