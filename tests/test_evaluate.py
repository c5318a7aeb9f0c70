"""The likelihood estimators: exact on a model with a closed-form log p(x), and consistent on the VAE."""
import math

import pytest
import torch

from vae_lab.evaluate import (LinearGaussian, evaluate, importance_bounds, likelihood_at_mean_and_sampled,
                               mean_code_elbo, scoring_images)
from vae_lab.loss import kl_divergence, reconstruction_loss


@pytest.fixture(scope="module")
def linear_gaussian():
    model = LinearGaussian.random(x_dim=20, z_dim=8, noise_std=0.2, seed=0)
    x = model.sample(200, torch.Generator().manual_seed(1))
    return model, x, model.log_marginal(x).mean().item()


def iwae_error(linear_gaussian, k):
    model, x, truth = linear_gaussian
    mu, logvar = model.mean_field_posterior(x, widen=2.0)
    bounds = importance_bounds(mu, logvar, model.log_likelihood(x), k, chunk=250, generator=torch.Generator().manual_seed(2))
    return truth - bounds.iwae.mean().item(), truth - bounds.elbo.mean().item()


def test_linear_gaussian_marginal_is_the_exact_integral_in_one_dimension():
    model = LinearGaussian(torch.tensor([[2.0]], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), 0.5)
    x = torch.tensor([[0.3]], dtype=torch.float64)
    z = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    density = torch.exp(-0.5 * z ** 2 - 0.5 * ((x[0, 0] - 2 * z - 1) / 0.5) ** 2) / (2 * math.pi * 0.5)
    assert model.log_marginal(x).item() == pytest.approx(math.log(torch.trapezoid(density, z).item()), abs=1e-6)


def test_iwae_with_1000_samples_is_within_half_a_nat_of_the_closed_form(linear_gaussian):
    error_k1, elbo_gap = iwae_error(linear_gaussian, 1)
    error_k1000, _ = iwae_error(linear_gaussian, 1000)
    assert elbo_gap > 2 and error_k1 > 2, "the deliberately wide q leaves a real gap for IWAE to close"
    assert abs(error_k1000) < 0.5


def test_the_iwae_bound_tightens_as_k_grows(linear_gaussian):
    errors = [iwae_error(linear_gaussian, k)[0] for k in (1, 10, 100, 1000)]
    assert errors[0] > errors[1] > errors[2] > abs(errors[3])


def test_iwae_is_never_below_the_elbo_of_the_same_samples(linear_gaussian):
    model, x, _ = linear_gaussian
    mu, logvar = model.mean_field_posterior(x, widen=2.0)
    bounds = importance_bounds(mu, logvar, model.log_likelihood(x), 64, chunk=10, generator=torch.Generator().manual_seed(3))
    assert (bounds.iwae >= bounds.elbo - 1e-9).all()


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_a_bad_number_of_samples_is_refused(linear_gaussian, k):
    model, x, _ = linear_gaussian
    with pytest.raises(ValueError, match="positive integer"):
        importance_bounds(*model.mean_field_posterior(x), model.log_likelihood(x), k)


def test_the_sampled_elbo_agrees_with_the_closed_form_kl(vae, mnist):
    x = mnist.test_images[:100]
    scores = evaluate(vae, x, iwae_samples=200)
    with torch.no_grad():
        mu, logvar = vae.encoder(x)
        analytic = []
        for _ in range(20):
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            analytic.append(-(reconstruction_loss(vae.decoder(z), x) + kl_divergence(mu, logvar)).mean())
    assert scores.elbo == pytest.approx(torch.stack(analytic).mean().item(), abs=0.3)
    assert -scores.elbo - scores.nll > 1, "importance weighting tightens the bound by several nats"


def test_more_importance_samples_give_a_lower_nll(vae, mnist):
    x = mnist.test_images[:100]
    nll = [evaluate(vae, x, iwae_samples=k).nll for k in (1, 10, 100)]
    assert nll[0] > nll[1] > nll[2]


def test_the_binarised_test_set_is_binary_and_the_same_every_time(mnist):
    first, second = scoring_images(mnist.test_images[:50], True), scoring_images(mnist.test_images[:50], True)
    assert set(first.unique().tolist()) == {0.0, 1.0} and torch.equal(first, second)
    assert torch.equal(scoring_images(mnist.test_images[:50], False), mnist.test_images[:50])


def test_a_conditional_model_needs_labels(mnist):
    from vae_lab import VAE, Config

    model = VAE(Config(conditional=True, hidden_dim=32, latent_dim=4))
    with pytest.raises(ValueError, match="conditional VAE: pass the digit labels"):
        evaluate(model, mnist.test_images[:10], None, iwae_samples=2)
    assert math.isfinite(evaluate(model, mnist.test_images[:10], mnist.test_labels[:10], iwae_samples=2).nll)


def test_the_likelihood_at_the_mean_and_its_average_over_q_are_the_two_sides_of_the_shortcut(vae, mnist):
    x = mnist.test_images[:50]
    at_mean, sampled = likelihood_at_mean_and_sampled(vae, x, samples=200, seed=1)
    assert at_mean.shape == sampled.shape == (50,)
    mu, logvar = vae.encoder(x)
    kl = kl_divergence(mu, logvar).detach()
    assert mean_code_elbo(vae, x) == pytest.approx((at_mean - kl).mean().item(), rel=1e-5), "z = μ is the shortcut"
    elbo = evaluate(vae, x, iwae_samples=200, seed=1).elbo
    assert (sampled - kl).mean().item() == pytest.approx(elbo, abs=0.3), "the average over q is the ELBO's first term"
    again = likelihood_at_mean_and_sampled(vae, x, samples=200, seed=1)[1]
    assert torch.equal(sampled, again), "a seed repeats the draws"
    assert not torch.equal(sampled, likelihood_at_mean_and_sampled(vae, x, samples=200, seed=2)[1])
