"""The two gradient estimators of notebook 02: both unbiased, the reparameterized one with far less variance."""
import math

import pytest
import torch

from vae_lab.lessons.estimators import gradient_variance, reparameterized_gradients, score_function_gradients

ESTIMATORS = [score_function_gradients, reparameterized_gradients]
square = lambda z: z ** 2  # E[z²] = μ² + σ², so ∂/∂μ = 2μ


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("f, exact", [
    (square, lambda mu, sigma: 2 * mu),
    (torch.sin, lambda mu, sigma: math.cos(mu) * math.exp(-sigma ** 2 / 2)),  # E[sin z] = sin μ · e^{−σ²/2}
])
def test_both_estimators_are_unbiased(estimator, f, exact):
    mu, sigma, n, repeats = 1.5, 0.8, 10, 20_000
    estimates = estimator(f, mu, sigma, n, repeats, torch.Generator().manual_seed(0))
    standard_error = (estimates.var() / repeats).sqrt().item()
    assert estimates.shape == (repeats,)
    assert estimates.mean().item() == pytest.approx(exact(mu, sigma), abs=5 * standard_error)


@pytest.mark.parametrize("mu, sigma", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.5)])
def test_variances_match_the_closed_forms_for_z_squared(mu, sigma):
    # per sample: Var[f′(z)] = 4σ²; Var[f(z)(z − μ)/σ²] = μ⁴/σ² + 14μ² + 15σ²
    n, repeats = 5, 40_000
    generator = torch.Generator().manual_seed(1)
    score = score_function_gradients(square, mu, sigma, n, repeats, generator).var().item() * n
    pathwise = reparameterized_gradients(square, mu, sigma, n, repeats, generator).var().item() * n
    assert pathwise == pytest.approx(4 * sigma ** 2, rel=0.05)
    assert score == pytest.approx(mu ** 4 / sigma ** 2 + 14 * mu ** 2 + 15 * sigma ** 2, rel=0.1)


def test_reparameterized_variance_is_smaller_and_both_fall_like_one_over_n():
    sizes = [1, 10, 100]
    score = gradient_variance(score_function_gradients, square, 1.0, 1.0, sizes, repeats=4000, seed=0)
    pathwise = gradient_variance(reparameterized_gradients, square, 1.0, 1.0, sizes, repeats=4000, seed=0)
    assert all(p < s / 3 for p, s in zip(pathwise, score))
    for variances in (score, pathwise):
        assert variances[0] / variances[2] == pytest.approx(100, rel=0.25)


def test_gradient_variance_is_reproducible_from_its_seed():
    run = lambda seed: gradient_variance(score_function_gradients, square, 1.0, 1.0, [3, 30], 500, seed)
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_the_score_function_needs_no_derivative_of_f():
    step = lambda z: (z > 0).double()  # E = Φ(μ/σ), ∂/∂μ = φ(μ/σ)/σ; f′ = 0 almost everywhere
    estimates = score_function_gradients(step, 0.0, 1.0, 50, 4000, torch.Generator().manual_seed(2))
    assert estimates.mean().item() == pytest.approx(1 / math.sqrt(2 * math.pi), abs=0.02)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 0}, "n_samples must be a positive integer"),
    ({"repeats": 2.5}, "repeats must be a positive integer"),
    ({"sigma": -1.0}, "sigma must be positive"),
])
def test_bad_sizes_are_named(estimator, kwargs, message):
    arguments = {"f": square, "mu": 0.0, "sigma": 1.0, "n_samples": 4, "repeats": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        estimator(**arguments)
