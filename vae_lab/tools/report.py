"""`python -m vae_lab report`: every model of the lab scored the same way, as one Markdown table.

For each model in `zoo.PRETRAINED_CONFIGS` (the shipped weights, or freshly trained with ``retrain``):
the test ELBO and the importance-weighted NLL on the pixels it was trained on, the Fréchet classifier
distance and class statistics of 10,000 prior samples, its parameter count and its training seconds.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import Checkpoint, load_pretrained
from ..data import MNIST
from ..evaluate import evaluate
from ..files import write_atomically
from ..model import build_model, sample_digits
from ..quality import sample_quality
from ..train import fit
from ..zoo import PRETRAINED_CONFIGS

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
SAMPLE_SEED = 0  # the prior samples every model is judged on


@dataclass(frozen=True)
class ModelScores:
    """One row of the results table; likelihoods in nats per test image."""

    name: str
    pixels: str  # "binary" (dynamically binarised: true likelihoods) or "gray" (Bernoulli on gray: not a density)
    parameters: int
    epochs: int
    train_seconds: float
    elbo: float
    nll: float
    fd: float
    confidence: float
    class_entropy: float


def score_model(name: str, checkpoint: Checkpoint, data: MNIST, iwae_samples: int, n_samples: int = 10_000,
                progress: bool = False) -> ModelScores:
    """Score one trained model on ``data``'s test set."""
    model, config = checkpoint.model, checkpoint.config
    scores = evaluate(model, data.test_images, data.test_labels, iwae_samples=iwae_samples, binarized=config.binarize,
                      progress=progress)
    quality = sample_quality(sample_digits(model, n_samples, SAMPLE_SEED), data.test_images)
    return ModelScores(name, "binary" if config.binarize else "gray", model.parameter_count(), len(checkpoint.history),
                       sum(checkpoint.history.seconds), scores.elbo, scores.nll, quality["fd"], quality["confidence"],
                       quality["class_entropy"])


def trained_model(name: str, data: MNIST, retrain: bool, runs: Path) -> Checkpoint:
    """The shipped checkpoint of ``name``, or (``retrain``) one trained now from its zoo settings into ``runs``."""
    if not retrain:
        return load_pretrained(name)
    model = build_model(PRETRAINED_CONFIGS[name])
    history = fit(model, data, checkpoint=runs / f"{name}.pt", resume=True)  # fit saves (and resumes) every epoch
    return Checkpoint(model, model.config, history, None, None)


def build_report(data: MNIST, names: list[str] | None = None, iwae_samples: int = 100, retrain: bool = False,
                 runs: Path = Path("runs/report"), n_samples: int = 10_000, progress: bool = True,
                 on_row: Callable[[ModelScores], None] | None = None) -> list[ModelScores]:
    """Score each named model (default: every model in the zoo), in the zoo's order."""
    names = names or list(PRETRAINED_CONFIGS)
    unknown = sorted(set(names) - set(PRETRAINED_CONFIGS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(PRETRAINED_CONFIGS)}")
    rows = []
    for name in names:
        rows.append(score_model(name, trained_model(name, data, retrain, runs), data, iwae_samples, n_samples, progress))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def reference_quality(data: MNIST, n_samples: int = 10_000) -> dict[str, float | list[float]]:
    """The sample-quality numbers of real training digits: what a perfect model would score."""
    return sample_quality(data.train_images[:n_samples], data.test_images)


def markdown_table(rows: list[ModelScores], iwae_samples: int, test_images: int,
                   reference: dict[str, float | list[float]]) -> str:
    """The results as a Markdown table, with a note on what the columns mean."""
    lines = ["| model | pixels | parameters | epochs | train s | test ELBO | NLL | FD ↓ | confidence | class entropy |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r.name}` | {r.pixels} | {r.parameters:,} | {r.epochs} | {r.train_seconds:.0f} | {r.elbo:.2f} "
                     f"| {r.nll:.2f} | {r.fd:.2f} | {r.confidence:.3f} | {r.class_entropy:.3f} |")
    iwae = "".join(f"; `{r.name}` trains on the {config.iwae_samples}-sample IWAE bound" for r in rows
                   if (config := PRETRAINED_CONFIGS.get(r.name)) is not None and config.iwae_samples > 1)
    lines += ["", f"ELBO and NLL (= −IWAE with K = {iwae_samples}) in nats per image on the {test_images:,} test images, "
              "binarised once with seed 0 for `binary` models; on `gray` pixels a Bernoulli's numbers are not true "
              "likelihoods. FD: Fréchet distance on the lab classifier's features between prior samples and the test "
              "set; confidence: mean top softmax of those samples; class entropy: of their digit histogram, log 10 ≈ 2.303 "
              f"when balanced. Real training digits score FD {reference['fd']:.2f}, confidence {reference['confidence']:.3f}, "
              f"class entropy {reference['class_entropy']:.3f}. Train s: seconds of the shipped model's training run on a "
              f"2-core CPU{iwae}."]
    return "\n".join(lines) + "\n"


def write_report(rows: list[ModelScores], table: str, out: Path, readme: Path | None = None) -> list[Path]:
    """Write ``out``/results.md and results.json (atomically) and, given ``readme``, replace its results section."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.md", out / "results.json"]
    write_atomically(written[0], lambda handle: handle.write(table.encode()))
    write_atomically(written[1], lambda handle: handle.write(json.dumps([asdict(r) for r in rows], indent=1).encode()))
    if readme is not None:
        try:
            text = readme.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{readme} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}); "
                             "fix its encoding, or leave --readme out") from None
        pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no results section; add the lines {README_START} and {README_END} "
                             "where the table should go")
        updated = pattern.sub(lambda _: f"{README_START}\n{table}{README_END}", text)
        write_atomically(readme, lambda handle: handle.write(updated.encode()))
        written.append(readme)
    return written
