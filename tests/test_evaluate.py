"""The likelihood estimators: exact on a model with a closed-form log p(x), consistent on the VAE, and the CLI."""
import json
import math

import pytest
import torch

from vae_lab import load_pretrained
from vae_lab.cli import main
from vae_lab.evaluate import LinearGaussian, evaluate, importance_bounds, scoring_images
from vae_lab.loss import log_normal, log_prior
from vae_lab.model import decoder_log_likelihood
from vae_lab.train import iwae_loss
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


def test_log_normal_matches_torch_distributions():
    z, mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    expected = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_normal(z, mu, logvar), expected)


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


@pytest.fixture(scope="module")
def vae():
    return load_pretrained("vae").model


def test_the_vae_log_likelihood_is_minus_the_reconstruction_loss(vae, mnist):
    x = mnist.test_images[:6]
    z = torch.randn(3, 6, 20, generator=torch.Generator().manual_seed(0))
    log_likelihood = decoder_log_likelihood(vae, x)(z)
    with torch.no_grad():
        expected = torch.stack([-reconstruction_loss(vae.decoder(z[i]), x) for i in range(3)])
    assert log_likelihood.shape == (3, 6) and torch.allclose(log_likelihood, expected, atol=1e-3)


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


def test_the_iwae_training_loss_is_minus_the_log_mean_weight_of_its_own_draws(vae, mnist):
    x = mnist.test_images[:8].reshape(8, -1)
    torch.manual_seed(5)
    loss = iwae_loss(vae, x, k=4)
    torch.manual_seed(5)
    with torch.no_grad():
        mu, logvar = vae.encoder(x)
        eps = torch.randn(4, *mu.shape)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        reconstruction = torch.stack([reconstruction_loss(vae.decoder(z[i]), x) for i in range(4)])
        log_w = -reconstruction + log_prior(z) - log_q
    expected = -(torch.logsumexp(log_w, 0) - math.log(4)).mean()
    assert loss.total.item() == pytest.approx(expected.item(), abs=1e-3)
    assert loss.reconstruction.item() == pytest.approx(reconstruction.mean().item(), abs=1e-3)
    assert loss.kl.item() == pytest.approx(kl_divergence(mu, logvar).mean().item(), abs=1e-4)


def test_more_samples_in_the_iwae_loss_give_a_tighter_bound_and_train_the_encoder(vae, mnist):
    x = mnist.test_images[:200].reshape(200, -1)
    torch.manual_seed(0)
    elbo_like, tight = iwae_loss(vae, x, k=1).total, iwae_loss(vae, x, k=50).total
    assert elbo_like.item() - tight.item() > 1, "50 samples close several nats of the ELBO's gap"
    vae.zero_grad()
    tight.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.parameters())
    vae.zero_grad()


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


def test_the_cli_prints_one_json_line_with_elbo_and_nll(capsys):
    assert main(["evaluate", "vae_lab/pretrained/vae.pt", "--iwae-samples", "10", "--test-size", "50",
                 "--binarized", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    scores = json.loads(lines[0])
    assert scores["iwae_samples"] == 10 and scores["binarized"] is True and scores["test_images"] == 50
    assert 60 < scores["nll"] < -scores["elbo"] < 130


def test_the_cli_names_a_missing_checkpoint(capsys):
    assert main(["evaluate", "no/such/checkpoint.pt", "--iwae-samples", "2"]) == 2
    assert "no checkpoint at no/such/checkpoint.pt" in capsys.readouterr().err
