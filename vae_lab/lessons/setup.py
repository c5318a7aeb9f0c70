"""What every notebook shares: validated parameters and friendly one-line errors (the exercises' checks are in
`lessons.checks`)."""
from __future__ import annotations

import ast
import importlib.metadata
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import Config, LabError, is_number, require_int
from ..runtime import configure_process

MNIST_TRAINING_IMAGES = 60_000


class LessonError(LabError, ValueError):
    """A mistake in a notebook's parameters or inputs, shown as one sentence instead of a traceback."""


def setup_notebook() -> None:
    """The first thing a notebook runs: the process-wide switches that make its training repeatable and fast."""
    configure_process()


PAPERMILL_PARAMETERS = "# Parameters\n"  # how papermill's injected cell begins, right after the parameters cell


def assigned_names(source: str) -> set[str]:
    """The names a cell's ``source`` assigns at its top level (``epochs = 10`` → ``{"epochs"}``); a cell that is not
    valid Python raises `SyntaxError`."""
    return {target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def refuse_unknown_injected_parameters() -> None:
    """Refuse a parameter papermill passed (``-p n_trian 500``) that the notebook's parameters cell does not set.

    Papermill adds such a name in a cell of its own and only warns; the kernel's input history shows that cell and the
    parameters cell just before it. Outside IPython, or without papermill, there is nothing to check.
    """
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    injected = [i for i, source in enumerate(history) if source.startswith(PAPERMILL_PARAMETERS) and i > 0]
    if injected:
        declared = assigned_names(history[injected[-1] - 1])
        unknown = sorted(assigned_names(history[injected[-1]]) - declared)
        if unknown:
            raise LessonError(f"unknown parameter(s) {unknown}: this notebook's parameters are {sorted(declared)}")


def lesson_config(**parameters: Any) -> Config:
    """Validate a notebook's parameters cell and turn it into a `Config`; the parameters are `Config`'s own fields.

    Run under papermill, it also refuses a passed parameter that the notebook does not have.
    """
    refuse_unknown_injected_parameters()
    known = [setting.name for setting in fields(Config)]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise LessonError(f"unknown parameter(s) {unknown}; the parameters cell may set {known}")
    train_size = parameters.get("train_size")
    if is_number(train_size) and train_size > MNIST_TRAINING_IMAGES:
        raise LessonError(f"train_size={train_size} but MNIST has {MNIST_TRAINING_IMAGES} training images; "
                          f"use at most {MNIST_TRAINING_IMAGES} (or None for all)")
    try:
        return Config(**parameters)
    except ValueError as error:
        raise LessonError(f"{error} (fix it in the parameters cell, or pass it with papermill -p)") from None


def whole_number(name: str, value: Any, most: int, least: int = 1) -> int:
    """Check a notebook parameter that counts something: a whole number from ``least`` to ``most``."""
    try:
        return require_int(name, value, minimum=least, maximum=most)
    except ValueError as error:
        raise LessonError(str(error)) from None


def yes_or_no(name: str, value: Any) -> bool:
    """Check a notebook parameter that switches something on or off."""
    if not isinstance(value, bool):
        raise LessonError(f"{name} must be True or False, got {value!r}")
    return value


def runs_root() -> Path:
    """Where notebooks keep their training runs: ``runs/`` of the checkout, else of the working folder (as in Colab)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout / "runs" if (checkout / "pyproject.toml").is_file() else Path.cwd() / "runs"


def changed_settings(config: Config) -> list[str]:
    """The settings of ``config`` that differ from the lab's, as ``name=value`` (``["epochs=1", "seed=3"]``)."""
    defaults = Config().to_dict()
    return [f"{name}={value}" for name, value in config.to_dict().items() if value != defaults[name]]


def run_folder(notebook: str, config: Config) -> Path:
    """The run folder of ``notebook`` for these settings: ``runs/04_training/lab-settings`` for the lab's defaults,
    ``runs/04_training/epochs=1,seed=3`` otherwise. Changed parameters start their own run instead of clashing."""
    return runs_root() / notebook / (",".join(changed_settings(config)) or "lab-settings")


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


def release() -> str:
    """The release the notebooks are written against: the git tag ``v{version}`` of pyproject's [project] version."""
    return f"v{importlib.metadata.version('vae-lab')}"


def colab_url(notebook: str) -> str:
    """The 'Open in Colab' link of ``notebook`` (e.g. 'notebooks/01_data_and_encoder.ipynb') at the release."""
    return repository_url().replace("https://github.com/", "https://colab.research.google.com/github/") \
        + f"/blob/{release()}/{notebook}"
