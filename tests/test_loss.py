import math

import pytest
import torch

from vae_lab import kl_divergence, reconstruction_loss, vae_loss


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
