"""The widgets driven headless: move sliders, click buttons, and read the PNG bytes they show."""
import io
import re
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

import vae_lab
from vae_lab import load_pretrained
from vae_lab.latent import decode_every_digit, encode_posterior, encode_with_labels, kl_per_dimension, rank_dimensions
from vae_lab.widgets import digit_style_explorer, interpolation_slider, latent_explorer, png_bytes

# Core widgets whose constructor arguments, traits and events are the same in ipywidgets 7.7.1 (Colab) and 8.
PORTABLE = {"FloatSlider", "Button", "IntText", "Label", "HTML", "HBox", "VBox", "Image"}


@pytest.fixture(scope="module")
def model():
    return load_pretrained("vae").model


@pytest.fixture(scope="module")
def test_images(mnist):
    return mnist.test_images[:500]


def widget_classes(widget):
    yield type(widget).__name__
    for child in getattr(widget, "children", ()):
        yield from widget_classes(child)


def test_png_bytes_are_a_sharp_enlarged_grayscale_digit():
    image = torch.zeros(784)
    image[:28] = 1.0  # top row white
    data = png_bytes(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    picture = PILImage.open(io.BytesIO(data))
    assert picture.size == (140, 140) and picture.mode == "L"
    assert picture.getpixel((70, 4)) == 255 and picture.getpixel((70, 5)) == 0
    assert png_bytes(image.reshape(1, 28, 28)) == data
    assert png_bytes(torch.rand(784)) != data
    with pytest.raises(ValueError, match="not a batch"):
        png_bytes(torch.zeros(2, 784))


def test_explorer_starts_at_the_chosen_digit_with_the_most_informative_dimensions(model, test_images):
    explorer = latent_explorer(model, test_images, n_sliders=5, index=3)
    mu = encode_posterior(model, test_images)[0]
    assert explorer.dims == rank_dimensions(mu)[:5].tolist()
    assert [slider.description for slider in explorer.sliders] == [f"z[{j}]" for j in explorer.dims]
    assert explorer.original.value == png_bytes(test_images[3])
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert set(widget_classes(explorer.box)) <= PORTABLE


def test_moving_a_slider_changes_the_decoded_digit(model, test_images):
    explorer = latent_explorer(model, test_images, dims=[4, 0, 7], index=0)
    before = explorer.image.value
    explorer.sliders[1].value = 3.0
    assert explorer.image.value != before
    assert explorer.z[0] == pytest.approx(3.0)
    expected = explorer.z.clone()
    assert explorer.image.value == png_bytes(model.decode(expected[None])[0])
    explorer.sliders[1].value = -3.0
    assert explorer.image.value != before


def test_reset_sets_the_sliders_to_the_digits_mu(model, test_images):
    explorer = latent_explorer(model, test_images, n_sliders=8, index=0, step=0.1, limit=4.0)
    for slider in explorer.sliders:
        slider.value = 0.0
    at_zero = explorer.image.value
    explorer.index.value = 42
    explorer.reset.click()
    mu = encode_posterior(model, test_images[42][None])[0][0]
    expected = [min(max(round(mu[j].item(), 1), -4.0), 4.0) for j in explorer.dims]
    assert [slider.value for slider in explorer.sliders] == pytest.approx(expected, abs=1e-9)
    assert explorer.image.value != at_zero
    assert explorer.original.value == png_bytes(test_images[42])
    hidden = [j for j in range(20) if j not in explorer.dims]
    torch.testing.assert_close(explorer.z[hidden], mu[hidden])  # dimensions without a slider sit at μ


def test_reset_keeps_the_index_inside_the_dataset(model, test_images):
    explorer = latent_explorer(model, test_images, n_sliders=2)
    explorer.index.value = 10_000
    explorer.reset.click()
    assert explorer.index.value == len(test_images) - 1
    explorer.index.value = -5
    explorer.reset.click()
    assert explorer.index.value == 0


def test_explorer_rejects_dimensions_the_model_does_not_have(model, test_images):
    with pytest.raises(ValueError, match="between 0 and 19"):
        latent_explorer(model, test_images, dims=[3, 20])


def test_interpolation_slider_decodes_the_two_endpoints(model, test_images):
    a, b = test_images[0], test_images[1]
    interpolation = interpolation_slider(model, a, b)
    assert interpolation.slider.description == "t" and interpolation.slider.value == 0.0
    start, end = (png_bytes(image) for image in model.reconstruct(torch.stack([a, b])))
    assert interpolation.image.value == start
    interpolation.slider.value = 0.5
    middle = interpolation.image.value
    assert middle not in (start, end)
    interpolation.slider.value = 1.0
    assert interpolation.image.value == end
    assert set(widget_classes(interpolation.box)) <= PORTABLE


def test_interpolation_puts_the_slider_above_one_row_of_the_three_pictures(model, test_images):
    interpolation = interpolation_slider(model, test_images[0], test_images[1])
    slider, row = interpolation.box.children
    assert slider is interpolation.slider and type(interpolation.box).__name__ == "VBox"
    assert type(row).__name__ == "HBox" and len(row.children) == 3
    captions = [picture.children[0].value for picture in row.children]
    assert captions == ["digit A (t = 0)", "decoder(z(t))", "digit B (t = 1)"]
    pictures = [picture.children[1] for picture in row.children]
    assert pictures[1] is interpolation.image and all(type(p).__name__ == "Image" for p in pictures)
    a, b = (png_bytes(image) for image in test_images[:2])
    assert (bytes(pictures[0].value), bytes(pictures[2].value)) == (a, b)


def test_spherical_interpolation_slider_also_ends_at_the_digits(model, test_images):
    a, b = test_images[0].reshape(1, 28, 28), test_images[1].reshape(1, 28, 28)
    interpolation = interpolation_slider(model, a, b, spherical=True)
    interpolation.slider.value = 1.0
    assert interpolation.image.value == png_bytes(model.reconstruct(b.reshape(1, 784))[0])


def test_only_the_widgets_module_imports_ipywidgets():
    package = Path(vae_lab.__file__).parent
    importers = sorted(path.name for path in package.glob("*.py")
                       if re.search(r"^\s*(import|from) ipywidgets", path.read_text(), re.MULTILINE))
    assert importers == ["widgets.py"]


@pytest.fixture(scope="module")
def cvae():
    return load_pretrained("cvae").model


def test_digit_style_explorer_starts_at_z_0_with_the_dimensions_of_most_kl(cvae, mnist):
    images, labels = mnist.test_images[:500], mnist.test_labels[:500]
    explorer = digit_style_explorer(cvae, images, labels, n_sliders=4, digit=3)
    kl = kl_per_dimension(*encode_with_labels(cvae, images, labels))
    assert explorer.dims == kl.argsort(descending=True)[:4].tolist()
    assert kl[explorer.dims].min() == kl.sort(descending=True).values[3]
    assert [slider.description for slider in explorer.sliders] == [f"z[{j}]" for j in explorer.dims]
    every_digit = decode_every_digit(cvae, torch.zeros(1, 20))
    assert explorer.image.value == png_bytes(every_digit[3])
    assert [picture.value for picture in explorer.strip] == [png_bytes(image, scale=2) for image in every_digit]
    assert set(widget_classes(explorer.box)) <= PORTABLE | {"ToggleButtons"}


def test_picking_a_digit_and_moving_a_slider_redraw_the_same_style(cvae, mnist):
    explorer = digit_style_explorer(cvae, mnist.test_images[:500], mnist.test_labels[:500], n_sliders=3)
    strip = [picture.value for picture in explorer.strip]
    explorer.digit.value = 7
    assert explorer.image.value == png_bytes(decode_every_digit(cvae, explorer.z[None])[7])
    assert [picture.value for picture in explorer.strip] == strip, "a new digit keeps the style"
    explorer.sliders[0].value = 2.5
    assert explorer.z[explorer.dims[0]] == pytest.approx(2.5)
    assert explorer.image.value == png_bytes(decode_every_digit(cvae, explorer.z[None])[7])
    assert explorer.strip[0].value != strip[0], "a new style redraws every digit"


def test_random_style_sets_the_sliders_and_reset_returns_to_0(cvae, mnist):
    explorer = digit_style_explorer(cvae, mnist.test_images[:500], mnist.test_labels[:500], n_sliders=5, seed=4)
    start = explorer.image.value
    explorer.random.click()
    expected = torch.randn(20, generator=torch.Generator().manual_seed(4))
    assert [slider.value for slider in explorer.sliders] == pytest.approx(
        [min(max(round(expected[j].item(), 1), -3.0), 3.0) for j in explorer.dims], abs=1e-9)
    hidden = [j for j in range(20) if j not in explorer.dims]
    torch.testing.assert_close(explorer.z[hidden], expected[hidden])  # dimensions without a slider are drawn too
    assert explorer.image.value != start
    explorer.reset.click()
    assert [slider.value for slider in explorer.sliders] == [0.0] * 5 and not explorer.z.any()
    assert explorer.image.value == start


def test_digit_style_explorer_needs_a_conditional_vae_and_a_sensible_slider_count(model, cvae, mnist):
    images, labels = mnist.test_images[:50], mnist.test_labels[:50]
    with pytest.raises(ValueError, match="conditional"):
        digit_style_explorer(model, images, labels)
    with pytest.raises(ValueError, match="between 1 and latent_dim=20"):
        digit_style_explorer(cvae, images, labels, n_sliders=21)
