"""The lab's pictures: what each figure draws, pixel for pixel, and the PNG it saves."""
import numpy as np
import pytest
import torch

from vae_lab import VAE, Config, History
from vae_lab.plots import (continuous_bernoulli_figure, image_grid, loss_curve, reconstruction_grid, sample_grid,
                           show_images, tile_images)

TILE = 28 + 2  # a digit and the padding after it


@pytest.fixture(scope="module")
def model():
    return VAE(Config(latent_dim=4, hidden_dim=32, seed=0)).eval()


def drawn(figure, index: int = 0) -> np.ndarray:
    """The picture on the figure's ``index``-th axes, as the array it was given."""
    return np.asarray(figure.axes[index].images[0].get_array())


def test_image_grid_places_each_digit_row_by_row_on_white_padding():
    images = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    grid = image_grid(images, nrow=2)
    assert grid.shape == (2 * TILE + 2, 2 * TILE + 2)
    digits = images.reshape(3, 28, 28)
    torch.testing.assert_close(grid[2:30, 2:30], digits[0])
    torch.testing.assert_close(grid[2:30, 32:60], digits[1])
    torch.testing.assert_close(grid[32:60, 2:30], digits[2])
    assert (grid[:2] == 1).all() and (grid[32:60, 32:60] == 1).all(), "padding and the empty fourth place are white"
    torch.testing.assert_close(image_grid(images.reshape(3, 1, 28, 28), nrow=2), grid)


def test_show_images_draws_the_grid_in_gray_from_black_0_to_white_1():
    images = torch.rand(5, 784, generator=torch.Generator().manual_seed(1))
    figure = show_images(images, nrow=5, title="five")
    np.testing.assert_array_equal(drawn(figure), image_grid(images, nrow=5).numpy())
    picture = figure.axes[0].images[0]
    assert picture.get_cmap().name == "gray" and picture.get_clim() == (0, 1)
    assert figure.axes[0].get_title() == "five"


def test_reconstruction_grid_shows_originals_above_their_reconstructions(model, tmp_path):
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    figure = reconstruction_grid(model, images, n=4, path=tmp_path / "recon.png")
    originals = images[:4].reshape(4, 784)
    expected = image_grid(torch.cat([originals, model.reconstruct(originals)]), nrow=4)
    np.testing.assert_array_equal(drawn(figure), expected.numpy())
    assert (tmp_path / "recon.png").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["recon.png"], "no temporary file is left beside the PNG"


def test_sample_grid_decodes_the_seeds_prior_draws_in_a_square_ish_grid(model):
    figure = sample_grid(model, n=10, seed=3)
    expected = model.sample(10, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(drawn(figure), image_grid(expected, nrow=3).numpy())
    assert drawn(figure).shape == (4 * TILE + 2, 3 * TILE + 2), "10 samples: round(√10) = 3 per row, 4 rows"
    assert not np.array_equal(drawn(sample_grid(model, n=10, seed=4)), drawn(figure)), "another seed, other digits"
    assert figure.axes[0].get_title() == "10 samples from z ~ N(0, I)"


def test_loss_curve_plots_train_and_test_per_epoch_and_the_two_terms_with_parts(tmp_path):
    history = History(train_loss=[200, 150, 120], test_loss=[180, 140, 125], train_reconstruction=[190, 130, 95],
                      test_reconstruction=[170, 120, 100], train_kl=[10, 20, 25], test_kl=[10, 20, 25], seconds=[1, 1, 1])
    figure = loss_curve(history, path=tmp_path / "loss.png")
    train, test = figure.axes[0].get_lines()
    assert list(train.get_xdata()) == [1, 2, 3] and list(train.get_ydata()) == history.train_loss
    assert list(test.get_ydata()) == history.test_loss
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")
    with_parts = loss_curve(history, parts=True)
    assert [axes.get_title() for axes in with_parts.axes] == ["negative ELBO", "reconstruction (BCE)", "KL"]
    assert list(with_parts.axes[2].get_lines()[0].get_ydata()) == history.train_kl


def test_the_continuous_bernoulli_figure_plots_the_area_under_each_bernoulli_curve_against_lambda():
    left, right = continuous_bernoulli_figure().axes
    x = left.lines[0].get_xdata()
    for curve in left.lines:
        lam = float(curve.get_label().removeprefix("λ = "))
        assert curve.get_ydata() == pytest.approx(lam ** x * (1 - lam) ** (1 - x))
    lam, area = right.lines[0].get_xdata(), right.lines[0].get_ydata()
    grid = np.linspace(0, 1, 2001)
    for index in (0, 200, 499, 800, 998):
        numeric = np.trapezoid(lam[index] ** grid * (1 - lam[index]) ** (1 - grid), grid)
        assert area[index] == pytest.approx(numeric, rel=1e-4), "the right panel is the area 1/C(λ), not what is missing"
    assert area.max() == pytest.approx(0.5, abs=1e-4) and "area" in right.get_title()


@pytest.mark.parametrize("count, nrow, padding, pad_value", [(1, 8, 2, 1.0), (7, 3, 2, 1.0), (64, 8, 2, 1.0),
                                                              (32, 8, 1, float("nan")), (5, 10, 0, 0.5)])
def test_tile_images_lays_tiles_out_as_torchvision_does(count, nrow, padding, pad_value):
    from torchvision.utils import make_grid

    tiles = torch.rand(count, 4, 6, generator=torch.Generator().manual_seed(count))
    expected = make_grid(tiles[:, None], nrow=nrow, padding=padding, pad_value=pad_value)[0]
    torch.testing.assert_close(tile_images(tiles, nrow=nrow, padding=padding, pad_value=pad_value), expected,
                               equal_nan=True, rtol=0, atol=0)
