"""A convolutional encoder and decoder with the same interface as the MLP ones, and tools to measure them (notebook 10).

Strided 4×4 convolutions halve the image twice (28 → 14 → 7); transposed convolutions undo it. Weights are
shared across positions, so the model has fewer parameters than the MLP but does more arithmetic per image.
The encoder and decoder follow the DCGAN pattern (Radford, Metz & Chintala 2016): strides instead of pooling.
Below them: tools that measure a model (layer shapes, parameters, multiply-adds, training-step time) and two
pictures; the pictures import matplotlib only when drawn, because `VAE` imports this module to build the model.
"""
from __future__ import annotations

import copy
import re
import statistics
import time
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .loss import vae_loss
from .model import IMAGE_PIXELS, LOGVAR_RANGE, check_latents, flatten_images, with_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .model import VAE

CHANNELS = (32, 64)  # feature maps after the first and the second strided convolution
FEATURES = CHANNELS[1] * 7 * 7  # 64 maps of 7×7 = 3,136 numbers between the convolutions and the latent


class ConvEncoder(nn.Module):
    """q(z|x): 1×28×28 → 32×14×14 → 64×7×7 (ReLU after each) → μ and log σ².

    Each convolution has kernel 4, stride 2, padding 1, so n_out = ⌊(n + 2·1 − 4) / 2⌋ + 1 = n / 2.
    """

    def __init__(self, latent_dim: int = 20, n_classes: int = 0) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.conv1 = nn.Conv2d(1, CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(CHANNELS[0], CHANNELS[1], kernel_size=4, stride=2, padding=1)
        self.mu = nn.Linear(FEATURES + n_classes, latent_dim)
        self.logvar = nn.Linear(FEATURES + n_classes, latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = flatten_images(x).view(-1, 1, 28, 28)
        h = F.relu(self.conv2(F.relu(self.conv1(h)))).flatten(1)
        h = with_labels(h, labels, self.n_classes)
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


class ConvDecoder(nn.Module):
    """p(x|z): latent → 64×7×7 → 32×14×14 → 1×28×28 pixel logits, by transposed convolutions.

    Each transposed convolution has kernel 4, stride 2, padding 1, so n_out = (n − 1)·2 − 2·1 + 4 = 2n.
    """

    def __init__(self, latent_dim: int = 20, n_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_classes = n_classes
        self.hidden = nn.Linear(latent_dim + n_classes, FEATURES)
        self.deconv1 = nn.ConvTranspose2d(CHANNELS[1], CHANNELS[0], kernel_size=4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(CHANNELS[0], 1, kernel_size=4, stride=2, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_latents(z, self.latent_dim)
        h = F.relu(self.hidden(with_labels(z, labels, self.n_classes))).view(-1, CHANNELS[1], 7, 7)
        return self.deconv2(F.relu(self.deconv1(h))).reshape(-1, IMAGE_PIXELS)


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


NUMBER = re.compile(r"[-+−]?[\d,]*\.?\d+ ?[×%]?")  # how text_table recognises a number written as text


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned plain text. Integers get thousands separators (652,824), floats two decimals, anything else
    is shown as it is; a column whose filled cells are all numbers (or read like "5.53×", "-3.2", "87%") is
    right-aligned, any other column left-aligned."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} values, one per column of the header {list(header)}")
    show = lambda value: f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
        else f"{value:.2f}" if isinstance(value, float) else str(value)
    cells = [[show(value) for value in row] for row in rows]
    numeric = [all(NUMBER.fullmatch(row[i]) for row in cells if row[i]) and any(row[i] for row in cells)
               for i in range(len(header))]
    cells = [list(header)] + cells
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) if right else cell.ljust(width)
                       for cell, width, right in zip(row, widths, numeric)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def format_layer_table(rows: Sequence[LayerRow]) -> str:
    """The layer table as text, shapes written C×H×W, with a total row for parameters and multiply-adds."""
    shape = lambda dims: "×".join(map(str, dims))
    body = [[r.name, r.kind, shape(r.input_shape), shape(r.output_shape), r.parameters, r.multiply_adds] for r in rows]
    total = ["total", "", "", "", sum(r.parameters for r in rows), sum(r.multiply_adds for r in rows)]
    return text_table(["layer", "kind", "input", "output", "parameters", "multiply-adds"], body + [total])


def training_step_seconds(models: dict[str, VAE], images: torch.Tensor, steps: int = 5,
                          batch_size: int = 128) -> dict[str, float]:
    """Median wall-clock seconds of one training step (forward, negative ELBO, backward, Adam update) of each model.

    The models take turns, step by step, on copies of themselves and one batch of ``images``, so a busy
    machine slows them alike; one warm-up step each is not timed. The models and the global RNG are unchanged.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if any(model.config.conditional for model in models.values()):
        raise ValueError("training_step_seconds times unconditional VAEs; a conditional one would also need labels")
    x = flatten_images(images)[:batch_size]
    copies = {name: copy.deepcopy(model).train() for name, model in models.items()}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=model.config.lr) for name, model in copies.items()}
    seconds: dict[str, list[float]] = {name: [] for name in copies}
    with torch.random.fork_rng(devices=[]):
        for _ in range(steps + 1):
            for name, model in copies.items():
                started = time.perf_counter()
                loss = vae_loss(x, *model(x), likelihood=model.config.likelihood).total
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[name].step()
                seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(times[1:]) for name, times in seconds.items()}


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
    from .plots import new_figure

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
    from torchvision.utils import make_grid

    from .plots import new_figure

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
    tile = lambda t: make_grid(t[:, None], nrow=nrow, padding=1, pad_value=float("nan"))[0].numpy()
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
