"""The likelihood estimators: exact on a model with a closed-form log p(x), and consistent on the VAE."""
import math

import pytest
import torch

from vae_lab import Config
from vae_lab.evaluate import (LinearGaussian, evaluate, importance_bounds, likelihood_at_mean_and_sampled,
                               mean_code_elbo, model_bounds, scoring_images)
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


def latent_blind(settings: dict, exact_posterior: bool):
    """A model whose decoder ignores its latents: p(x) = Π Bernoulli(x; sigmoid(b)) exactly, and the true posterior is
    the prior. With ``exact_posterior`` its q is made that prior (q(z₂|x) = N(0, I), q(z₁|z₂, x) = p(z₁|z₂)); else
    q is the untrained encoder's, made to miss the prior by a nat or more: variances e² times wider, and in a one-layer
    VAE means spread 30 times further apart (a VampPrior's components are that q itself, at the pseudo-inputs)."""
    from vae_lab.model import build_model

    model = build_model(Config(latent_dim=3, hidden_dim=16, top_latent_dim=2, top_hidden_dim=8, binarize=True,
                               **settings)).eval()
    with torch.no_grad():
        model.decoder.out.weight.zero_()
        if exact_posterior:
            for head in (model.top_posterior.mu, model.top_posterior.logvar):
                head.weight.zero_(), head.bias.zero_()
            for head, prior_head in ((model.posterior_mu, model.top_down.mu),
                                     (model.posterior_logvar, model.top_down.logvar)):
                head.weight.zero_()
                head.weight[:, 16:] = prior_head.weight
                head.bias.copy_(prior_head.bias)
        else:
            one_layer = hasattr(model, "encoder")
            heads = ([(model.encoder.mu, model.encoder.logvar)] if one_layer else
                     [(model.top_posterior.mu, model.top_posterior.logvar), (model.posterior_mu, model.posterior_logvar)])
            for mu_head, logvar_head in heads:
                mu_head.weight.mul_(30.0 if one_layer else 1.0)
                logvar_head.bias.add_(2.0)
    return model


def exact_log_marginal(model, x):
    return -reconstruction_loss(model.decoder.out.bias.expand_as(x), x)


def test_the_two_layer_bound_is_exact_when_q_is_the_true_posterior():
    model = latent_blind({"stochastic_layers": 2}, exact_posterior=True)
    x = (torch.rand(6, 784, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    bounds = model_bounds(model, x, None, k=50, chunk=20, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(bounds.iwae.float(), exact_log_marginal(model, x), atol=1e-3)
    assert torch.allclose(bounds.elbo.float(), exact_log_marginal(model, x), atol=1e-3), "every weight is p(x)"


@pytest.mark.parametrize("settings", [{"stochastic_layers": 2}, {"prior": "vamp", "prior_components": 4},
                                      {"stochastic_layers": 2, "prior": "vamp", "prior_components": 4}])
def test_with_a_poor_q_the_bound_climbs_towards_the_exact_log_marginal(settings):
    model = latent_blind(settings, exact_posterior=False)
    x = (torch.rand(16, 784, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    exact = exact_log_marginal(model, x).double().mean().item()
    bounds = model_bounds(model, x, None, 2000, chunk=500, generator=torch.Generator().manual_seed(3))
    elbo_gap, iwae_gap = exact - bounds.elbo.mean().item(), exact - bounds.iwae.mean().item()
    assert elbo_gap > 1, "the wide q leaves the ELBO a nat or more below log p(x)"
    assert abs(iwae_gap) < 0.1 * elbo_gap, "2000 importance samples close nearly all of it"


def test_evaluate_scores_every_model_kind_the_same_way():
    from vae_lab.model import build_model

    x = (torch.rand(8, 784, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    for settings in ({}, {"prior": "vamp", "prior_components": 3}, {"stochastic_layers": 2, "free_bits": 0.1}):
        model = build_model(Config(latent_dim=3, hidden_dim=16, top_latent_dim=2, top_hidden_dim=8, **settings))
        scores = evaluate(model, x, iwae_samples=64)
        assert scores.elbo < -scores.nll and scores.test_images == 8


def test_importance_bounds_take_a_learned_prior_and_agree_with_the_models_own_draws():
    from vae_lab.model import build_model, decoder_log_likelihood

    model = build_model(Config(latent_dim=3, hidden_dim=16, prior="mixture", prior_components=4)).eval()
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mu, logvar = model.encoder(x)
        by_hand = importance_bounds(mu, logvar, decoder_log_likelihood(model, x), 40,
                                    generator=torch.Generator().manual_seed(6), log_density=model.prior.log_prob)
        own = model_bounds(model, x, None, 40, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(by_hand.iwae, own.iwae, atol=1e-4) and torch.allclose(by_hand.elbo, own.elbo, atol=1e-4)
