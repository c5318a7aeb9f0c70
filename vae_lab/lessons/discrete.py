"""Notebook 14's measures and figures: a VQ-VAE's codebook in use (codes used, dead codes, perplexity), its
reconstruction error and rate beside the Gaussian VAEs', and samples from uniform codes and from its learned prior."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from matplotlib.figure import Figure

from ..config import Config
from ..data import MNIST
from ..history import History
from ..model import CODE_GRID, VAE, VQVAE, build_model, in_eval_mode
from ..plots import draw_images, new_figure, save_figure
from ..quality import sample_quality
from ..train import evaluate_loss, fit
from .tables import text_table


@dataclass(frozen=True)
class CodeUse:
    """How a VQ-VAE's codebook is used on a set of images: ``frequencies`` p_k (K,) of each code over every grid
    position, the codes ever chosen, the dead ones (never chosen) and the perplexity exp(−Σ_k p_k log p_k)."""

    frequencies: torch.Tensor
    used: int
    dead: int
    perplexity: float


@torch.no_grad()
def code_use(model: VQVAE, images: torch.Tensor, batch_size: int = 1000) -> CodeUse:
    """`CodeUse` of ``model`` on ``images``: the perplexity is K when every code is chosen equally often, 1 when one
    code is chosen everywhere."""
    indices = torch.cat([model.encode_codes(images[start:start + batch_size]).flatten().cpu()
                         for start in range(0, len(images), batch_size)])
    counts = torch.bincount(indices, minlength=model.config.codebook_size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return CodeUse(p, used, len(p) - used, float(entropy.exp()))


def code_use_table(uses: Mapping[str, CodeUse]) -> str:
    """Codes used, dead codes and perplexity per model, as aligned text."""
    return text_table(["model", "codes K", "used", "dead", "perplexity"],
                      [[name, len(u.frequencies), u.used, u.dead, round(u.perplexity, 1)] for name, u in uses.items()])


def code_use_figure(uses: Mapping[str, CodeUse], path: str | Path | None = None) -> Figure:
    """One bar chart per model: each code's share of the grid positions, codes sorted from most to least used."""
    figure = new_figure(4.2 * len(uses), 3.0)
    for index, (name, use) in enumerate(uses.items(), 1):
        axes = figure.add_subplot(1, len(uses), index)
        shares = use.frequencies.sort(descending=True).values
        axes.bar(range(len(shares)), shares.numpy(), width=1.0, color="C0")
        axes.set(title=f"{name}: {use.used} of {len(shares)} codes used", xlabel="codes, most used first",
                 ylabel="share of grid positions")
    figure.tight_layout()
    return save_figure(figure, path)


@dataclass(frozen=True)
class RateDistortion:
    """One model's test ELBO terms in nats per image: −log p(x|z) (the BCE of its reconstruction) and the KL term, the
    rate; ``capacity_bits`` is a VQ-VAE's largest possible code, 49 log₂ K bits (None for a Gaussian latent)."""

    name: str
    reconstruction: float
    rate: float
    capacity_bits: float | None

    @property
    def rate_bits(self) -> float:
        """The rate in bits: nats / ln 2."""
        return self.rate / math.log(2)


def rate_and_distortion(models: Mapping[str, VAE | VQVAE], images: torch.Tensor, seed: int = 0
                        ) -> list[RateDistortion]:
    """Each model's mean −log p(x|z) and KL term on ``images`` (`train.evaluate_loss`, one z ~ q(z|x) per image,
    drawn with ``seed``); a VQ-VAE's KL is −log p(k) of its codes under its PixelCNN prior."""
    rows = []
    for name, model in models.items():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, reconstruction, rate = evaluate_loss(model, images)
        k = model.config.codebook_size
        rows.append(RateDistortion(name, reconstruction, rate, CODE_GRID ** 2 * math.log2(k) if k else None))
    return rows


def rate_table(rows: list[RateDistortion]) -> str:
    """The comparison as aligned text: BCE, KL in nats and in bits, and the largest code a VQ-VAE could send."""
    return text_table(["model", "BCE −log p(x|z)", "KL (nats)", "KL (bits)", "code size (bits)"],
                      [[r.name, r.reconstruction, r.rate, r.rate_bits,
                        "—" if r.capacity_bits is None else round(r.capacity_bits)] for r in rows])


@torch.no_grad()
def uniform_code_samples(model: VQVAE, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` grids of codes drawn uniformly and independently, k ~ U{0, …, K−1} at each of the 49 positions, decoded:
    images (n, 784)."""
    codes = torch.randint(model.config.codebook_size, (n, CODE_GRID, CODE_GRID), generator=torch.Generator().manual_seed(seed))
    with in_eval_mode(model):
        return model.decode_codes(codes)


def quality_table(samples: Mapping[str, torch.Tensor], reference: torch.Tensor) -> str:
    """Each set of samples scored by the lab's classifier against ``reference`` digits: FD, mean confidence and the
    entropy of the digit histogram (log 10 ≈ 2.303 when every digit is drawn equally often)."""
    rows = []
    for name, images in samples.items():
        quality = sample_quality(images, reference)
        rows.append([name, round(quality["fd"], 1), round(quality["confidence"], 3), round(quality["class_entropy"], 3)])
    return text_table(["samples", "FD", "confidence", "class entropy"], rows)


def image_panels_figure(panels: Mapping[str, torch.Tensor], nrow: int = 8, path: str | Path | None = None) -> Figure:
    """One panel of images (N, 784) per name, side by side."""
    figure = new_figure(3.3 * len(panels), 3.0)
    for index, (name, images) in enumerate(panels.items(), 1):
        axes = figure.add_subplot(1, len(panels), index)
        draw_images(axes, images, nrow=nrow)
        axes.set(title=name, xticks=[], yticks=[])
    figure.tight_layout()
    return save_figure(figure, path)


@torch.no_grad()
def code_grids_figure(model: VQVAE, images: torch.Tensor, path: str | Path | None = None) -> Figure:
    """For each image (a column): the digit, its 7×7 grid of code indices (one colour per code) and its
    reconstruction from those codes."""
    codes = model.encode_codes(images).cpu()
    reconstructions = model.reconstruct(images).cpu()
    figure = new_figure(1.2 * len(images), 3.8)
    for column, (image, grid, again) in enumerate(zip(images, codes, reconstructions)):
        for row, (picture, colours) in enumerate([(image.reshape(28, 28), "gray_r"), (grid, "tab20"),
                                                  (again.reshape(28, 28), "gray_r")]):
            axes = figure.add_subplot(3, len(images), row * len(images) + column + 1)
            axes.imshow(picture.numpy(), cmap=colours, vmin=0, vmax=1 if row != 1 else model.config.codebook_size - 1)
            if row == 1:
                for (i, j), k in zip(((i, j) for i in range(CODE_GRID) for j in range(CODE_GRID)), grid.flatten()):
                    axes.text(j, i, str(int(k)), ha="center", va="center", fontsize=4.5)
            axes.set(xticks=[], yticks=[])
            if column == 0:
                axes.set_ylabel(["digit", "codes k", "decoded"][row])
    figure.tight_layout()
    return save_figure(figure, path)


def train_with_quantizer(config: Config, data: MNIST,
                         quantize: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                         ) -> tuple[VQVAE, History]:
    """Train a VQ-VAE of ``config`` whose quantiser is ``quantize`` (the exercise's answer) instead of the lab's own;
    the rest of `fit` is unchanged."""
    if not config.codebook_size:
        raise ValueError("train_with_quantizer trains a VQ-VAE; set codebook_size > 0 in the config")
    model = build_model(config)
    model.quantizer.quantize = quantize
    return model, fit(model, data, progress=False)
