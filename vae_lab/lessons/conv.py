"""Notebook 11's tools for the convolutional VAE: layer shapes, parameters, multiply-adds, training-step time, and two
pictures (the first layer's filters, and why transposed convolutions can draw checkerboards).

The convolutional encoder and decoder themselves live in `vae_lab.model`.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ..config import require_int
from ..loss import vae_loss
from ..model import IMAGE_PIXELS, VAE, flatten_images
from ..plots import new_figure, tile_images
from ..train import make_optimizer
from .tables import text_table

# ---- Measuring a model: shapes, parameters, arithmetic and time ----

MEASURED_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


class LayerRow(NamedTuple):
    """One weight layer as a single image passes through it; shapes leave out the batch dimension."""

    name: str  # e.g. "encoder.conv1"
    kind: str  # "Linear", "Conv2d" or "ConvTranspose2d"
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    multiply_adds: int


def multiply_adds(layer: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-adds per image: each weight is used once by a Linear layer, once per output position by a Conv2d
    (C_out·H_out·W_out·C_in·k²), and once per input position by a ConvTranspose2d (C_in·H_in·W_in·C_out·k²).

    Positions in the zero padding count too, as in the usual convention; biases and ReLUs are not counted.
    """
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.weight.numel() * input_shape[-2] * input_shape[-1]
    if isinstance(layer, nn.Conv2d):
        return layer.weight.numel() * output_shape[-2] * output_shape[-1]
    if isinstance(layer, nn.Linear):
        return layer.weight.numel()
    raise TypeError(f"multiply_adds counts Linear, Conv2d and ConvTranspose2d layers, got {type(layer).__name__}")


@torch.no_grad()
def layer_table(model: VAE) -> list[LayerRow]:
    """Every Linear, Conv2d and ConvTranspose2d layer of ``model`` in the order an image flows through them:
    the encoder up to μ and log σ², then the decoder from z to the pixel logits."""
    rows: list[LayerRow] = []

    def record(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            shape_in, shape_out = tuple(inputs[0].shape[1:]), tuple(output.shape[1:])
            rows.append(LayerRow(name, type(layer).__name__, shape_in, shape_out,
                                 sum(p.numel() for p in layer.parameters()), multiply_adds(layer, shape_in, shape_out)))
        return hook

    handles = [layer.register_forward_hook(record(name)) for name, layer in model.named_modules()
               if isinstance(layer, MEASURED_LAYERS)]
    labels = torch.zeros(1, dtype=torch.long, device=model.device) if model.config.conditional else None
    try:
        mu, _ = model.encoder(torch.zeros(1, IMAGE_PIXELS, device=model.device), labels)
        model.decoder(mu, labels)
    finally:
        for handle in handles:
            handle.remove()
    return rows


def format_layer_table(rows: Sequence[LayerRow]) -> str:
    """The layer table as text, shapes written C×H×W, with a total row for parameters and multiply-adds."""
    shape = lambda dims: "×".join(map(str, dims))
    body = [[r.name, r.kind, shape(r.input_shape), shape(r.output_shape), r.parameters, r.multiply_adds] for r in rows]
    total = ["total", "", "", "", sum(r.parameters for r in rows), sum(r.multiply_adds for r in rows)]
    return text_table(["layer", "kind", "input", "output", "parameters", "multiply-adds"], body + [total])


def training_step_seconds(models: dict[str, VAE], images: torch.Tensor, steps: int = 20,
                          batch_size: int = 128) -> dict[str, float]:
    """CPU seconds of one training step of each model, as `fit` takes it (forward, negative ELBO, backward, Adam
    update), on one thread: the mean of ``steps`` timed turns.

    The models take turns, step by step, on copies of themselves and one batch of ``images``; one warm-up step each
    is not timed. On one thread the process's CPU time is the step's, and its clock stops while other jobs on the
    machine have the processor, so a busy machine hardly changes it. The mean, not the fastest turn, because some
    systems advance that clock only every 15.6 ms (Windows). The models, the global RNG and torch's thread count are
    as they were afterwards.
    """
    require_int("steps", steps)
    if any(model.config.conditional for model in models.values()):
        raise ValueError("training_step_seconds times unconditional VAEs; a conditional one would also need labels")
    x = flatten_images(images)[:batch_size]
    copies = {name: copy.deepcopy(model).train() for name, model in models.items()}
    optimizers = {name: make_optimizer(model) for name, model in copies.items()}
    seconds: dict[str, list[float]] = {name: [] for name in copies}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            for _ in range(steps + 1):
                for name, model in copies.items():
                    started = time.process_time()
                    loss = vae_loss(x, *model(x), likelihood=model.config.likelihood).total
                    optimizers[name].zero_grad(set_to_none=True)
                    loss.backward()
                    optimizers[name].step()
                    seconds[name].append(time.process_time() - started)
    finally:
        torch.set_num_threads(threads)
    return {name: statistics.fmean(times[1:]) for name, times in seconds.items()}


# ---- Pictures: the first layer's filters, and why transposed convolutions can draw checkerboards ----


def overlap_counts(kernel: int, stride: int, padding: int = 0, size: int = 6) -> torch.Tensor:
    """How many (input position, kernel entry) pairs a transposed convolution adds into each output pixel.

    It is conv_transpose2d of a size×size input of ones with a kernel of ones: uniform inside the image when
    the stride divides the kernel size, a checkerboard when it does not (Odena, Dumoulin & Olah 2016).
    """
    ones = torch.ones(1, 1, size, size)
    return F.conv_transpose2d(ones, torch.ones(1, 1, kernel, kernel), stride=stride, padding=padding)[0, 0]


def overlap_figure(settings: Sequence[tuple[int, int, int]] = ((4, 2, 1), (3, 2, 1)), size: int = 6) -> Figure:
    """One panel of `overlap_counts` per (kernel, stride, padding), each count written in its pixel."""
    figure = new_figure(3.4 * len(settings), 3.4)
    for index, (kernel, stride, padding) in enumerate(settings, 1):
        counts = overlap_counts(kernel, stride, padding, size)
        axes = figure.add_subplot(1, len(settings), index)
        axes.imshow(counts.numpy(), cmap="viridis", vmin=0, vmax=float(counts.max()))
        for (row, column), value in zip(torch.cartesian_prod(*map(torch.arange, counts.shape)).tolist(), counts.flatten()):
            axes.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                      color="black" if value > 0.6 * counts.max() else "white")
        axes.set(title=f"kernel {kernel}, stride {stride}, padding {padding}\n{size}×{size} → "
                       f"{counts.shape[0]}×{counts.shape[1]}", xticks=[], yticks=[])
    figure.tight_layout()
    return figure


def filter_figure(model: VAE, image: torch.Tensor, nrow: int = 8) -> Figure:
    """Left: the encoder's first-layer 4×4 filters (red +, blue −); right: each filter's ReLU response to ``image``,
    a 14×14 map, in the same place of the grid."""
    conv1 = getattr(model.encoder, "conv1", None)
    if not isinstance(conv1, nn.Conv2d):
        raise ValueError("filter_figure shows a convolutional encoder's filters; load one with "
                         "load_pretrained('conv_vae') or build it with Config(architecture='conv')")
    if image.numel() != IMAGE_PIXELS:
        raise ValueError(f"expected one 28×28 image (784 values), got shape {tuple(image.shape)}; "
                         "pass images[i], not a batch")
    weights = conv1.weight.detach().cpu()
    with torch.no_grad():
        maps = F.relu(conv1(image.reshape(1, 1, 28, 28).to(model.device)))[0].cpu()
    tile = lambda t: tile_images(t, nrow=nrow, padding=1, pad_value=float("nan")).numpy()
    limit = float(weights.abs().max())
    figure = new_figure(10, 3.4)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    left.imshow(tile(weights[:, 0]), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    left.set_title(f"{len(weights)} learned 4×4 filters of conv1")
    right.imshow(tile(maps), cmap="gray", interpolation="nearest")
    right.set_title("their ReLU responses to the digit (14×14 each)")
    for axes in (left, right):
        axes.set_axis_off()
    figure.tight_layout()
    return figure
