"""The priors: the mixture density against a brute-force sum and a single Gaussian, its stability far from every
component, the VampPrior against the encoder's own Gaussian, sampling, and the single-sample KL."""
import math

import pytest
import torch

from vae_lab import Config
from vae_lab.loss import kl_divergence, log_normal, log_prior
from vae_lab.model import build_model
from vae_lab.prior import MixturePrior, StandardPrior, VampPrior, log_mixture_density


def brute_force(z, means, logvars):
    """log (1/K) Σ_k N(z; m_k, s_k²) with a (N, K, D) tensor, in float64, as the definition reads."""
    z, means, logvars = z.double(), means.double(), logvars.double()
    densities = torch.distributions.Normal(means, torch.exp(0.5 * logvars)).log_prob(z[:, None, :]).sum(-1)
    return torch.logsumexp(densities, dim=1) - math.log(len(means))


def test_the_mixture_density_is_the_definition():
    generator = torch.Generator().manual_seed(0)
    z, means, logvars = torch.randn(6, 5, generator=generator), torch.randn(7, 5, generator=generator), \
        torch.randn(7, 5, generator=generator) - 1
    assert torch.allclose(log_mixture_density(z, means, logvars).double(), brute_force(z, means, logvars), atol=1e-4)


def test_one_component_or_k_equal_ones_is_that_gaussian():
    generator = torch.Generator().manual_seed(1)
    z, mean, logvar = torch.randn(4, 3, generator=generator), torch.randn(1, 3, generator=generator), \
        torch.randn(1, 3, generator=generator)
    expected = log_normal(z, mean, logvar)
    assert torch.allclose(log_mixture_density(z, mean, logvar), expected, atol=1e-5)
    assert torch.allclose(log_mixture_density(z, mean.repeat(9, 1), logvar.repeat(9, 1)), expected, atol=1e-5)
    assert torch.allclose(log_mixture_density(z, torch.zeros(1, 3), torch.zeros(1, 3)), log_prior(z), atol=1e-5)


def test_far_from_every_component_the_density_stays_finite():
    """Every component's density is below e^−20000 here, which exp() rounds to 0 even in float64."""
    means, logvars = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.full((2, 2), -10.0)
    z = torch.tensor([[2.0, 2.0]])
    value = log_mixture_density(z, means, logvars)
    assert torch.isfinite(value).all() and value.item() < -20000
    assert value.item() == pytest.approx(brute_force(z, means, logvars).item(), abs=1e-3)


def test_latents_of_any_leading_shape_and_gradients_to_the_components():
    means = torch.randn(4, 3, requires_grad=True)
    logvars = torch.zeros(4, 3, requires_grad=True)
    z = torch.randn(5, 2, 3)
    value = log_mixture_density(z, means, logvars)
    assert value.shape == (5, 2) and value.dtype == torch.float32
    value.sum().backward()
    assert means.grad.abs().sum() > 0 and logvars.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"expected latents \(..., D\) and components \(K, D\)"):
        log_mixture_density(torch.randn(5, 2), means, logvars)


def test_a_vampprior_with_one_pseudo_input_is_the_encoders_gaussian_there():
    model = build_model(Config(prior="vamp", prior_components=1, latent_dim=3, hidden_dim=16))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mu, logvar = model.encoder(model.prior.pseudo_inputs)
        assert torch.allclose(model.prior.log_prob(z, model.encoder), log_normal(z, mu, logvar), atol=1e-5)
    with pytest.raises(ValueError, match="pass the model's encoder"):
        model.prior.log_prob(z)


def test_the_pseudo_inputs_are_images_that_train():
    prior = VampPrior(latent_dim=2, components=5)
    assert prior.pseudo_inputs.shape == (5, 784) and 0 < prior.pseudo_inputs.min() and prior.pseudo_inputs.max() < 1
    assert [name for name, _ in prior.named_parameters()] == ["pseudo_logits"]


def test_mixture_samples_come_from_the_components_and_repeat_from_their_generator():
    prior = MixturePrior(latent_dim=2, components=3)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-10.0, 0.0], [0.0, 0.0], [10.0, 0.0]]))
        prior.logvars.fill_(math.log(0.01))
    z = prior.sample(3000, torch.Generator().manual_seed(3))
    nearest = torch.cdist(z, prior.means).argmin(dim=1)
    assert (torch.cdist(z, prior.means).min(dim=1).values < 0.6).all(), "every draw lies next to a component"
    assert (torch.bincount(nearest, minlength=3) > 900).all(), "the components are picked equally often"
    assert torch.equal(z, prior.sample(3000, torch.Generator().manual_seed(3)))


def test_the_standard_prior_keeps_the_closed_form_and_a_learned_one_estimates_at_the_draw():
    generator = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(5, 3, generator=generator)
    standard = StandardPrior(3).layer_kl(z, mu, logvar)
    assert torch.equal(standard.total, kl_divergence(mu, logvar))
    assert torch.allclose(standard.per_unit.sum(dim=1), standard.total, atol=1e-5)
    mixture = MixturePrior(3, components=1)
    with torch.no_grad():
        mixture.means.zero_()
    estimate = mixture.layer_kl(z, mu, logvar)
    assert estimate.per_unit is None and estimate.units == 3
    assert torch.allclose(estimate.total, log_normal(z, mu, logvar) - log_prior(z), atol=1e-5)
