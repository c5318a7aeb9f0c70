"""Disentanglement: pixel factors measure what they name, and the alignment score separates an axis-aligned decoder
from a rotated one; the traversals and their figure follow the units' KL."""
import math

import pytest
import torch

from vae_lab import VAE, Config
from vae_lab.latent import encode_posterior, kl_per_dimension
from vae_lab.lessons.disentanglement import (FACTORS, TRAVERSAL_VALUES, Alignment, axis_alignment, pixel_factors,
                                             traversal_figure, traverse, unit_traversals)

CENTRE = 13.5


def ring(slant: torch.Tensor, width: torch.Tensor, thickness: torch.Tensor) -> torch.Tensor:
    """Images (N, 784) of an ellipse outline, 8 pixels high, with semi-axis ``width`` across, stroke ``thickness``,
    sheared so that each row upwards moves ``slant`` columns right."""
    y = torch.arange(28.0)[None, :, None] - CENTRE
    x = torch.arange(28.0)[None, None, :] - CENTRE + slant[:, None, None] * y  # undo the shear
    radius = torch.sqrt((x / width[:, None, None]) ** 2 + (y / 8.0) ** 2)
    distance = (radius - 1) * (width[:, None, None] + 8.0) / 2  # about the distance to the outline, in pixels
    return (-(distance / (thickness[:, None, None] / 2)) ** 4).exp().reshape(-1, 784)


def aligned_decoder(z: torch.Tensor) -> torch.Tensor:
    """Unit 0 sets the slant, unit 1 the width, unit 2 the thickness; unit 3 is ignored, like a collapsed unit."""
    return ring(0.1 * z[:, 0], 5.0 + 0.5 * z[:, 1], 2.0 + 0.3 * z[:, 2])


def rotated_decoder(z: torch.Tensor) -> torch.Tensor:
    """The same factors, each moved by an equal mix of units 0, 1 and 2: the code is rotated against them."""
    turn = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]])
    turn = turn / turn.norm(dim=1, keepdim=True)
    return aligned_decoder(torch.cat([z[:, :3] @ turn.T, z[:, 3:]], dim=1))


@pytest.fixture(scope="module")
def base():
    return 0.5 * torch.randn(20, 4, generator=torch.Generator().manual_seed(0))


def test_pixel_factors_read_slant_width_and_thickness_off_a_drawn_ring():
    slants, widths, thicknesses = (torch.tensor(v) for v in ([0.0, 0.3, -0.3], [4.0, 6.0, 4.0], [1.5, 2.0, 3.0]))
    measured = pixel_factors(ring(slants, widths, thicknesses))
    assert measured.shape == (3, len(FACTORS))
    assert measured[:, 0].tolist() == pytest.approx([0.0, 0.3, -0.3], abs=0.02), "the shear is the slant"
    assert measured[:, 1].tolist() == pytest.approx((widths / math.sqrt(2)).tolist(), rel=0.1), "std of a ring: a/√2"
    ratio = measured[:, 2] / thicknesses
    assert ((0.7 < ratio) & (ratio < 1.0)).all(), f"a blurred stroke of thickness t measures about 0.9 t, got {ratio}"
    assert measured[0, 2] < measured[1, 2] < measured[2, 2]


def test_pixel_factors_refuse_an_image_without_ink():
    with pytest.raises(ValueError, match="some ink"):
        pixel_factors(torch.zeros(2, 784))


def test_traverse_sets_one_unit_to_each_value_and_keeps_the_others():
    base = torch.arange(6.0).reshape(2, 3)
    codes = traverse(lambda z: z, base, unit=1, values=torch.tensor([-1.0, 2.0]))
    assert codes.shape == (2, 2, 3)
    assert codes[1].tolist() == [[3.0, -1.0, 5.0], [3.0, 2.0, 5.0]]


def test_an_axis_aligned_decoder_scores_near_one_and_a_rotated_one_lower(base):
    aligned = axis_alignment(aligned_decoder, base)
    assert aligned.top_unit.tolist() == [0, 1, 2], "factor f is moved by unit f"
    assert (aligned.importance[3] == 0).all(), "an ignored unit moves nothing"
    assert aligned.score > 0.9
    rotated = axis_alignment(rotated_decoder, base)
    assert rotated.score < aligned.score - 0.3
    assert (rotated.shares < 0.75).all(), "every factor is shared by several units"


def test_the_score_is_the_mean_of_each_factors_top_share():
    importance = torch.tensor([[3.0, 0.0, 1.0], [1.0, 2.0, 1.0], [0.0, 2.0, 2.0]])
    alignment = Alignment(importance)
    assert alignment.shares.tolist() == pytest.approx([0.75, 0.5, 0.5])
    assert alignment.score == pytest.approx(7 / 12)
    assert alignment.top_unit.tolist()[0] == 0


def test_unit_traversals_follow_the_units_kl_and_the_figure_labels_them(mnist):
    model = VAE(Config(latent_dim=5, hidden_dim=32, seed=2)).eval()
    images = mnist.test_images[:200]
    mu, logvar = encode_posterior(model, images)
    traversal = unit_traversals(model, images, mu[0], rows=3)
    kl = kl_per_dimension(mu, logvar)
    busiest = kl.sort(descending=True).values[:3].tolist()
    assert traversal.kl == sorted(traversal.kl, reverse=True) == pytest.approx(busiest)
    assert traversal.images.shape == (3 * len(TRAVERSAL_VALUES), 784)
    row, column = 1, 5  # the second busiest unit at z_u = TRAVERSAL_VALUES[5]
    code = mu[0].clone()
    code[traversal.units[row]] = TRAVERSAL_VALUES[column]
    expected = model.decode(code[None])[0]
    assert torch.allclose(traversal.images[row * len(TRAVERSAL_VALUES) + column], expected, atol=1e-6), \
        "row r is unit r's traversal, the other units held at the base code"
    figure = traversal_figure({"untrained": traversal})
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert labels == [f"unit {u} · {k:.2f} nats" for u, k in zip(traversal.units, traversal.kl)]
