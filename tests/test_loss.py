"""The loss terms: reconstruction (Bernoulli and continuous Bernoulli), the closed-form KL, Gaussian log densities,
and the sum-vs-mean pitfall of notebook 03 (the mean-reduced loss is a β-VAE with β = 784)."""
import math

import pytest
import torch
import torch.nn.functional as F

from vae_lab import kl_divergence, reconstruction_loss, vae_loss
from vae_lab.loss import continuous_bernoulli_log_norm, log_normal, pixel_means


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 784, generator=generator)
    logits, mu, logvar = torch.randn(8, 784, generator=generator), *torch.randn(2, 8, 20, generator=generator)
    return x, logits, mu, logvar


def test_kl_closed_form_matches_a_monte_carlo_estimate():
    generator = torch.Generator().manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.0, -2.0, 1.0]])
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    z = q.mean + q.stddev * torch.randn((400_000, 3), generator=generator)
    monte_carlo = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(1).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(monte_carlo.item(), abs=0.02)
    assert kl_divergence(mu, logvar).item() == pytest.approx(
        torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum().item(), rel=1e-6)


def test_kl_is_zero_only_at_the_prior():
    assert kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)).tolist() == [0.0, 0.0]
    assert (kl_divergence(torch.randn(4, 5), torch.randn(4, 5)) > 0).all()


def test_bce_matches_a_hand_computation():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    x = torch.tensor([[1.0, 0.25, 0.0]])
    p = [0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))]
    by_hand = -sum(t * math.log(q) + (1 - t) * math.log(1 - q) for t, q in zip([1.0, 0.25, 0.0], p))
    assert reconstruction_loss(logits, x).item() == pytest.approx(by_hand, rel=1e-6)


def test_bce_stays_finite_for_confident_wrong_logits():
    loss = reconstruction_loss(torch.tensor([[100.0, -100.0]]), torch.tensor([[0.0, 1.0]]))
    assert loss.item() == pytest.approx(200.0)


def test_vae_loss_parts_are_per_image_means_and_add_up():
    x, logits = torch.rand(6, 784), torch.randn(6, 784)
    mu, logvar = torch.randn(6, 20), torch.randn(6, 20)
    parts = vae_loss(x, logits, mu, logvar)
    assert parts.reconstruction.item() == pytest.approx(reconstruction_loss(logits, x).mean().item())
    assert parts.kl.item() == pytest.approx(kl_divergence(mu, logvar).mean().item())
    assert parts.total.item() == pytest.approx(parts.reconstruction.item() + parts.kl.item())
    assert vae_loss(x, logits, mu, logvar, beta=4).total.item() == pytest.approx(
        parts.reconstruction.item() + 4 * parts.kl.item())


@pytest.mark.parametrize("x, words", [
    (torch.full((2, 784), 255.0), r"needs targets in \[0, 1\], got values from 255 to 255; divide 0–255 pixels by 255"),
    (torch.full((2, 784), -0.5), r"needs targets in \[0, 1\]"),
    (torch.rand(2, 783), r"targets of shape \(2, 783\) do not match logits of shape \(2, 784\)"),
])
def test_bad_targets_get_a_clear_error(x, words):
    with pytest.raises(ValueError, match=words):
        reconstruction_loss(torch.zeros(2, 784), x)


def test_continuous_bernoulli_normaliser_integrates_the_density_to_one():
    logits = torch.tensor([-20.0, -3.0, -1e-5, 0.0, 0.4, 5.0], dtype=torch.float64)
    x = torch.linspace(0, 1, 100_001, dtype=torch.float64)[:, None]
    unnormalised = torch.exp(x * logits - torch.nn.functional.softplus(logits))  # λ^x (1−λ)^(1−x)
    mass = torch.trapezoid(unnormalised, x[:, 0], dim=0)
    assert torch.allclose(continuous_bernoulli_log_norm(logits), -torch.log(mass), atol=1e-6)
    means = torch.trapezoid(x * unnormalised, x[:, 0], dim=0) / mass
    assert torch.allclose(pixel_means(logits, "continuous_bernoulli"), means, atol=1e-6)


def test_continuous_bernoulli_loss_is_bce_minus_the_log_normaliser_and_has_finite_gradients():
    logits = torch.tensor([[0.0, 1e-4, -7.0, 30.0]], requires_grad=True)
    x = torch.tensor([[0.5, 0.2, 0.0, 1.0]])
    loss = reconstruction_loss(logits, x, "continuous_bernoulli")
    expected = reconstruction_loss(logits, x) - continuous_bernoulli_log_norm(logits).sum()
    assert torch.allclose(loss, expected)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="likelihood must be"):
        reconstruction_loss(logits, x, "poisson")


def test_vae_loss_passes_the_likelihood_through():
    x, logits = torch.rand(3, 784), torch.randn(3, 784)
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    assert vae_loss(x, logits, mu, logvar, likelihood="continuous_bernoulli").total < vae_loss(x, logits, mu, logvar).total


def test_log_normal_matches_torch_distributions():
    z, mu, logvar = torch.randn(3, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    expected = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_normal(z, mu, logvar), expected)


def test_mean_reduction_is_pytorchs_default_bce_plus_kl_and_weighs_the_kl_784_times(batch):
    x, logits, mu, logvar = batch
    pitfall = F.binary_cross_entropy_with_logits(logits, x) + kl_divergence(mu, logvar).mean()
    assert pitfall.item() == pytest.approx(vae_loss(*batch, beta=784).total.item() / 784, rel=1e-6)


def test_an_empty_batch_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match=r"empty batch \(0 images\)"):
        vae_loss(torch.zeros(0, 784), torch.zeros(0, 784), torch.zeros(0, 20), torch.zeros(0, 20))


def test_the_kl_between_two_learned_gaussians_matches_monte_carlo_and_torch():
    from vae_lab.loss import gaussian_kl, gaussian_kl_per_unit

    generator = torch.Generator().manual_seed(5)
    mu_q, logvar_q = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.0, -2.0, 1.0]])
    mu_p, logvar_p = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.5, 1.0, -0.5]])
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * logvar_p))
    z = q.mean + q.stddev * torch.randn((400_000, 3), generator=generator)
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(1).mean()
    assert gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).item() == pytest.approx(monte_carlo.item(), abs=0.03)
    assert torch.allclose(gaussian_kl_per_unit(mu_q, logvar_q, mu_p, logvar_p), torch.distributions.kl_divergence(q, p))
    zeros = torch.zeros_like(mu_q)
    assert torch.allclose(gaussian_kl(mu_q, logvar_q, zeros, zeros), kl_divergence(mu_q, logvar_q))
    assert gaussian_kl(mu_q, logvar_q, mu_q, logvar_q).item() == 0.0


def test_free_bits_floor_each_units_batch_mean_kl_and_leave_the_true_kl_alone():
    from vae_lab.loss import ElboParts, LayerKL, negative_elbo

    per_unit = torch.tensor([[0.1, 2.0, 0.0], [0.3, 4.0, 0.0]], requires_grad=True)  # batch means 0.2, 3.0, 0.0
    parts = ElboParts(torch.tensor([10.0, 12.0]), (LayerKL(per_unit.sum(1), per_unit, 3),))
    plain = negative_elbo(parts)
    floored = negative_elbo(parts, beta=1.0, free_bits=0.5)
    assert plain.total.item() == pytest.approx(11 + 3.2) and plain.kl.item() == pytest.approx(3.2)
    assert floored.total.item() == pytest.approx(11 + 0.5 + 3.0 + 0.5), "units below λ = 0.5 count as 0.5"
    assert floored.kl.item() == pytest.approx(3.2), "the reported KL is the true one"
    floored.total.backward()
    assert per_unit.grad[:, 0].abs().sum() == 0 and per_unit.grad[:, 2].abs().sum() == 0, "no push below λ"
    assert (per_unit.grad[:, 1] > 0).all()
    unsplit = ElboParts(torch.tensor([10.0]), (LayerKL(torch.tensor([0.4]), None, 2),))
    assert negative_elbo(unsplit, free_bits=0.5).total.item() == pytest.approx(11.0), "one group, floor λ·D"


def test_the_codebook_term_moves_the_codes_and_the_commitment_term_the_encoder():
    from vae_lab.loss import codebook_losses

    encoded = torch.randn(2, 3, 7, 7, requires_grad=True)
    codes = torch.randn(2, 3, 7, 7, requires_grad=True)
    codebook, commitment = codebook_losses(encoded, codes)
    assert torch.allclose(codebook, ((encoded - codes) ** 2).sum(dim=(1, 2, 3))) and torch.allclose(commitment, codebook)
    codebook.sum().backward(retain_graph=True)
    assert encoded.grad is None and torch.allclose(codes.grad, 2 * (codes - encoded))
    codes.grad = None
    commitment.sum().backward()
    assert codes.grad is None and torch.allclose(encoded.grad, 2 * (encoded - codes))


def test_the_vq_vae_loss_adds_its_terms_and_reports_the_code_prior_as_the_kl():
    from vae_lab.loss import VQParts, vq_vae_loss

    parts = VQParts(torch.tensor([80.0, 90.0]), torch.tensor([2.0, 4.0]), torch.tensor([1.0, 3.0]),
                    torch.tensor([100.0, 120.0]))
    loss = vq_vae_loss(parts, commitment=0.5)
    assert loss.total.item() == 85 + 3 + 0.5 * 2 + 110
    assert loss.reconstruction.item() == 85 and loss.kl.item() == 110
