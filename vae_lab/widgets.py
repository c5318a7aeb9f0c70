"""Sliders that decode live: a latent explorer, an interpolation slider, and a conditional VAE's digit-style explorer.

Only core widgets that behave the same in ipywidgets 7.7 (Google Colab) and 8 (JupyterLab 4) are used:
FloatSlider, ToggleButtons, Button, IntText, Label, HTML, HBox, VBox and Image holding PNG bytes. Each builder returns
its parts, so tests can move the sliders and click the buttons without a browser.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import ipywidgets as widgets
import torch
from PIL import Image as PILImage

from .latent import decode_every_digit, encode_posterior, encode_with_labels, interpolate, kl_per_dimension, rank_dimensions
from .model import N_DIGITS, VAE, flatten_images

PIXEL_SCALE = 5  # each MNIST pixel becomes a 5×5 block: a sharp 140×140 picture that browsers do not blur


def png_bytes(image: torch.Tensor, scale: int = PIXEL_SCALE) -> bytes:
    """One 28×28 image in [0, 1] (any shape holding 784 values) as grayscale PNG bytes, scaled up ``scale`` times."""
    if image.numel() != 28 * 28:
        raise ValueError(f"expected one 28×28 image (784 values), got shape {tuple(image.shape)}; "
                         "pass images[i], not a batch")
    pixels = (image.detach().cpu().reshape(28, 28).clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels.numpy()).save(buffer, format="png")
    return buffer.getvalue()


def _picture(image: torch.Tensor | None = None) -> widgets.Image:
    size = str(28 * PIXEL_SCALE)
    return widgets.Image(value=png_bytes(image) if image is not None else b"", format="png", width=size, height=size)


def _captioned(caption: str, picture: widgets.Image) -> widgets.VBox:
    return widgets.VBox([widgets.Label(caption), picture])


def latent_sliders(dims: list[int], limit: float, step: float) -> list[widgets.FloatSlider]:
    """One slider per latent dimension in ``dims``, from −``limit`` to ``limit``, starting at 0."""
    return [widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=step, description=f"z[{j}]",
                                continuous_update=True, readout_format=".2f") for j in dims]


def snap(value: float, limit: float, step: float) -> float:
    """The slider position nearest to ``value``: rounded to ``step``, clipped to ±``limit``."""
    return min(max(round(round(value / step) * step, 6), -limit), limit)


class SliderBank:
    """Sliders bound to entries ``dims`` of the code ``z``: moving one writes its z[j] and calls ``show``;
    `set_code` moves them all to a new code with one redraw at the end, not one per slider."""

    def __init__(self, z: torch.Tensor, dims: list[int], limit: float, step: float, show: Callable[[], None]) -> None:
        self.z, self.dims, self.limit, self.step, self.show = z, dims, limit, step, show
        self.sliders = latent_sliders(dims, limit, step)
        self._moving = False
        for slider in self.sliders:
            slider.observe(self.redraw, names="value")

    def redraw(self, change: dict | None = None) -> None:
        """Copy the sliders into z and show it (skipped while `set_code` moves them)."""
        if self._moving:
            return
        for j, slider in zip(self.dims, self.sliders):
            self.z[j] = slider.value
        self.show()

    def set_code(self, code: torch.Tensor) -> None:
        """Make ``code`` the whole of z, move the sliders to it (snapped to their steps), and redraw once."""
        self.z.copy_(code)
        self._moving = True
        try:
            for j, slider in zip(self.dims, self.sliders):
                slider.value = snap(self.z[j].item(), self.limit, self.step)
        finally:
            self._moving = False
        self.redraw()


@dataclass
class LatentExplorer:
    """The explorer's parts: display ``box``; move ``sliders`` (for latent dimensions ``dims``), set ``index`` and
    click ``reset`` to drive it; ``image`` shows decoder(z) and ``original`` the chosen test digit."""

    box: widgets.HBox
    sliders: list[widgets.FloatSlider]
    dims: list[int]
    index: widgets.IntText
    reset: widgets.Button
    image: widgets.Image
    original: widgets.Image
    z: torch.Tensor


def latent_explorer(model: VAE, images: torch.Tensor, dims: list[int] | torch.Tensor | None = None,
                    n_sliders: int = 8, index: int = 0, limit: float = 4.0, step: float = 0.1) -> LatentExplorer:
    """Sliders for latent dimensions ``dims`` (default: the ``n_sliders`` with the largest Var(μ) on ``images``)
    decoding z live; 'reset' sets z to μ of ``images[index]``, each slider rounded to ``step`` within ±``limit``."""
    images = flatten_images(images)
    if dims is None:
        dims = rank_dimensions(encode_posterior(model, images)[0])[:n_sliders]
    dims = [int(j) for j in dims]
    if not dims or not all(0 <= j < model.config.latent_dim for j in dims):
        raise ValueError(f"dims must name latent dimensions between 0 and {model.config.latent_dim - 1}, got {dims}")
    chooser = widgets.IntText(value=index, description="test index")
    reset = widgets.Button(description="reset to μ", tooltip="set every z[j] to the encoding μ of the test digit")
    image, original = _picture(), _picture()
    z = torch.zeros(model.config.latent_dim)  # the code being decoded, changed in place

    def show() -> None:
        image.value = png_bytes(model.decode(z[None])[0])

    bank = SliderBank(z, dims, limit, step, show)

    def reset_to_digit(button: widgets.Button | None = None) -> None:
        chooser.value = min(max(chooser.value, 0), len(images) - 1)
        original.value = png_bytes(images[chooser.value])
        bank.set_code(encode_posterior(model, images[chooser.value][None])[0][0])

    reset.on_click(reset_to_digit)
    reset_to_digit()
    note = widgets.HTML(f"<small>the other {model.config.latent_dim - len(dims)} dimensions stay at the digit's μ</small>")
    box = widgets.HBox([widgets.VBox(bank.sliders),
                        widgets.VBox([widgets.HBox([_captioned("decoder(z)", image), _captioned("test digit", original)]),
                                      chooser, reset, note])])
    return LatentExplorer(box, bank.sliders, dims, chooser, reset, image, original, z)


@dataclass
class InterpolationSlider:
    """The interpolation widget's parts: display ``box`` (the slider above one row of three pictures: digit A,
    decoder(z(t)), digit B); move ``slider`` (t); ``image`` shows decoder(z(t))."""

    box: widgets.VBox
    slider: widgets.FloatSlider
    image: widgets.Image
    z0: torch.Tensor
    z1: torch.Tensor


def interpolation_slider(model: VAE, image_a: torch.Tensor, image_b: torch.Tensor, spherical: bool = False,
                         step: float = 0.05) -> InterpolationSlider:
    """A slider t ∈ [0, 1] decoding z(t) = `interpolate`(μ_A, μ_B, [t]) between the encodings of two digits."""
    pair = flatten_images(torch.stack([image_a, image_b]).reshape(2, -1))
    mu, _ = encode_posterior(model, pair)
    slider = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=step, description="t",
                                 continuous_update=True, readout_format=".2f")
    image = _picture()

    def redraw(change: dict | None = None) -> None:
        image.value = png_bytes(model.decode(interpolate(mu[0], mu[1], [slider.value], spherical))[0])

    slider.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([slider, widgets.HBox([_captioned("digit A (t = 0)", _picture(pair[0])),
                                              _captioned("decoder(z(t))", image),
                                              _captioned("digit B (t = 1)", _picture(pair[1]))])])
    return InterpolationSlider(box, slider, image, mu[0], mu[1])


@dataclass
class DigitStyleExplorer:
    """The digit-style explorer's parts: display ``box``; pick a ``digit``, move ``sliders`` (latent dimensions
    ``dims``), click ``random`` or ``reset`` to drive it; ``image`` shows decoder(z, digit), ``strip`` z as 0…9."""

    box: widgets.VBox
    digit: widgets.ToggleButtons
    sliders: list[widgets.FloatSlider]
    dims: list[int]
    random: widgets.Button
    reset: widgets.Button
    image: widgets.Image
    strip: list[widgets.Image]
    z: torch.Tensor


def digit_style_explorer(model: VAE, images: torch.Tensor, labels: torch.Tensor, n_sliders: int = 6, digit: int = 0,
                         limit: float = 3.0, step: float = 0.1, seed: int = 0) -> DigitStyleExplorer:
    """A conditional VAE's style sliders: the ``n_sliders`` latent dimensions with the most average KL on ``images``
    (encoded with their ``labels``) decode z as the picked digit and as all ten. z starts at the prior mean 0;
    'random style' draws z ~ N(0, I) (seeded), each slider rounded to ``step`` within ±``limit``."""
    if not 0 < n_sliders <= model.config.latent_dim:
        raise ValueError(f"n_sliders must be between 1 and latent_dim={model.config.latent_dim}, got {n_sliders}")
    dims = kl_per_dimension(*encode_with_labels(model, images, labels)).argsort(descending=True)[:n_sliders].tolist()
    picker = widgets.ToggleButtons(options=list(range(N_DIGITS)), value=digit, description="digit",
                                   style={"button_width": "32px"})
    draw, reset = widgets.Button(description="random style"), widgets.Button(description="reset to 0")
    image = _picture()
    small = str(28 * 2)
    strip = [widgets.Image(value=b"", format="png", width=small, height=small) for _ in range(N_DIGITS)]
    z = torch.zeros(model.config.latent_dim)  # the style being decoded, changed in place
    generator = torch.Generator().manual_seed(seed)

    def show() -> None:
        every_digit = decode_every_digit(model, z[None])
        image.value = png_bytes(every_digit[picker.value])
        for picture, drawn in zip(strip, every_digit):
            picture.value = png_bytes(drawn, scale=2)

    bank = SliderBank(z, dims, limit, step, show)
    picker.observe(bank.redraw, names="value")
    draw.on_click(lambda button: bank.set_code(torch.randn(model.config.latent_dim, generator=generator)))
    reset.on_click(lambda button: bank.set_code(torch.zeros(model.config.latent_dim)))
    bank.redraw()
    note = widgets.HTML(f"<small>sliders: the {len(dims)} dimensions with the most KL; 'random style' also redraws "
                        f"the other {model.config.latent_dim - len(dims)}, 'reset' sets all to 0</small>")
    box = widgets.VBox([picker,
                        widgets.HBox([widgets.VBox(bank.sliders),
                                      widgets.VBox([_captioned("decoder(z, digit)", image), draw, reset])]),
                        note, widgets.Label("the same style z as every digit 0 … 9"), widgets.HBox(strip)])
    return DigitStyleExplorer(box, picker, bank.sliders, dims, draw, reset, image, strip, z)
