"""What every notebook shares: validated parameters, friendly one-line errors, and exercise feedback."""
from __future__ import annotations

import importlib.metadata
import sys
from typing import Any, Callable

from .config import Config

PARAMETER_NAMES = {"epochs": "epochs", "n_train": "train_size", "batch_size": "batch_size",
                   "latent_dim": "latent_dim", "hidden_dim": "hidden_dim", "lr": "lr", "seed": "seed",
                   "beta": "beta", "warmup_epochs": "warmup_epochs", "binarize": "binarize",
                   "architecture": "architecture", "conditional": "conditional"}


class LessonError(ValueError):
    """A mistake in a notebook's parameters or inputs, shown as one sentence instead of a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        return [f"{type(self).__name__}: {self}"]


def lesson_config(**parameters: Any) -> Config:
    """Validate a notebook's parameters cell and turn it into a `Config` (``n_train`` becomes ``train_size``)."""
    unknown = sorted(set(parameters) - set(PARAMETER_NAMES))
    if unknown:
        raise LessonError(f"unknown parameter(s) {unknown}; the parameters cell may set {sorted(PARAMETER_NAMES)}")
    if isinstance(parameters.get("n_train"), int) and not isinstance(parameters["n_train"], bool) \
            and parameters["n_train"] > 60_000:
        raise LessonError(f"n_train={parameters['n_train']} but MNIST has 60000 training images; "
                          "use at most 60000 (or None for all)")
    try:
        return Config(**{PARAMETER_NAMES[name]: value for name, value in parameters.items()})
    except ValueError as error:
        raise LessonError(f"{error} (fix it in the parameters cell, or pass it with papermill -p)") from None


def whole_number(name: str, value: Any, most: int) -> int:
    """Check a notebook parameter that counts something: a whole number from 1 to ``most``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise LessonError(f"{name} must be a whole number from 1 to {most}, got {value!r}")
    return value


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def repository_url() -> str:
    """The repository URL, defined once in pyproject's [project.urls]."""
    for entry in importlib.metadata.metadata("vae-lab").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise LookupError("pyproject.toml has no [project.urls] Repository entry")


def colab_url(notebook: str) -> str:
    """The 'Open in Colab' link of ``notebook`` (e.g. 'notebooks/01_data_and_encoder.ipynb')."""
    return repository_url().replace("https://github.com/", "https://colab.research.google.com/github/") \
        + f"/blob/main/{notebook}"


def feedback(passed: bool, success: str, hint: str) -> bool:
    """Print a ✅ with ``success`` or a ❌ with ``hint``; return whether the check passed."""
    print(f"✅ {success}" if passed else f"❌ Not yet: {hint}")
    return passed


def attempt(answer: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """Call a student's function; (False, None) with a nudge when it still holds the ``...`` stub."""
    try:
        result = answer(*args)
    except NotImplementedError:
        print("✏️  Exercise not attempted yet: replace the `raise NotImplementedError` with your code, then rerun.")
        return False, None
    if result is None or result is Ellipsis:
        print("✏️  Exercise not attempted yet: your function returns nothing; fill in the `...` and rerun.")
        return False, None
    return True, result
