"""Notebook 00: the plain autoencoder, how far its codes are from N(0, I), and the check of its exercise."""
import pytest
import torch

from vae_lab import Config, load_pretrained
from vae_lab.latent import encode_posterior, kl_per_dimension
from vae_lab.lessons.autoencoder import Autoencoder, check_gap_to_prior, fitted_gaussian_kl, train_autoencoder
from vae_lab.loss import kl_divergence
from vae_lab.model import reparameterize


def gap_to_prior(codes):
    """An answer written independently of the lab, as the notebook's exercise cell writes it."""
    m, s2 = codes.mean(dim=0), codes.var(dim=0)
    return 0.5 * (m ** 2 + s2 - 1 - s2.log()).sum()


def run(check, answer, capsys):
    passed = check(answer)
    return passed, capsys.readouterr().out


def test_the_untouched_stub_is_not_attempted(capsys):
    def stub(codes):
        raise NotImplementedError  # your code here

    passed, out = run(check_gap_to_prior, stub, capsys)
    assert passed is False and "not attempted" in out


@pytest.mark.parametrize("answer", [
    gap_to_prior,
    lambda codes: float(gap_to_prior(codes.double())),  # a float64 computation, returned as a Python float
    lambda codes: 0.5 * (codes.mean(0) ** 2 + codes.var(0, unbiased=False) - 1
                         - codes.var(0, unbiased=False).log()).sum(),  # the 1/N variance
], ids=["reference", "float64", "biased_variance"])
def test_correct_answers_pass(answer, capsys):
    passed, out = run(check_gap_to_prior, answer, capsys)
    assert passed is True and out.startswith("✅")


def half_sum(m, variance, log_term):
    """½ Σ_j (m_j² + variance_j − 1 − log_term_j): the fitted-Gaussian KL, or a slip of it."""
    return 0.5 * (m ** 2 + variance - 1 - log_term).sum()


@pytest.mark.parametrize("answer, hint", [
    (lambda c: -gap_to_prior(c), "sign"),
    (lambda c: 2 * gap_to_prior(c), "forgot the ½"),
    (lambda c: gap_to_prior(c) / c.shape[1], "averaged over the dimensions"),
    (lambda c: gap_to_prior(c - c.mean(dim=0)), "means are missing"),
    (lambda c: half_sum(c.mean(0), c.std(0), c.std(0).log()), "standard deviation"),
    (lambda c: half_sum(c.mean(0), c.var(0), c.std(0).log()), "log of the variance"),
    (lambda c: half_sum(c.mean(0), c.var(0), 0), "forgot the − log s² term"),
    (lambda c: 0.5 * (c.mean(0) ** 2 + c.var(0) - 1 - c.var(0).log()), "one number per dimension"),
    (lambda c: 0.5 * (c.mean(1) ** 2 + c.var(1) - 1 - c.var(1).log()), "across the codes, dim=0"),
    (lambda c: gap_to_prior(c) + 1, "expected"),
    (lambda c: "eleven", "return one number"),
], ids=["sign", "no_half", "mean_over_dims", "no_mean", "std", "log_std", "no_log", "per_dim", "wrong_axis",
        "off", "not_a_number"])
def test_each_known_mistake_gets_its_hint(answer, hint, capsys):
    passed, out = run(check_gap_to_prior, answer, capsys)
    assert passed is False and out.startswith("❌") and hint in out


@pytest.mark.parametrize("answer, name", [
    (lambda c: fitted_gaussian_kl(c), "fitted_gaussian_kl"),
    (fitted_gaussian_kl, "fitted_gaussian_kl"),
    (lambda c: kl_divergence(c.mean(0)[None], c.var(0).log()[None])[0], "kl_divergence"),
    (lambda c: kl_per_dimension(c.mean(0)[None], c.var(0).log()[None]).sum(), "kl_per_dimension"),
], ids=["calls_the_lab", "is_the_lab", "kl_divergence", "kl_per_dimension"])
def test_the_labs_own_functions_are_refused(answer, name, capsys):
    passed, out = run(check_gap_to_prior, answer, capsys)
    assert passed is False and "write it yourself" in out and name in out
    assert len(out.strip().splitlines()) == 1


def test_the_lab_functions_work_again_after_a_refusal(capsys):
    check_gap_to_prior(lambda c: kl_divergence(c.mean(0)[None], c.var(0).log()[None])[0])
    codes = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    assert fitted_gaussian_kl(codes) == pytest.approx(float(gap_to_prior(codes.double())))


def test_the_fitted_kl_is_zero_exactly_for_codes_with_the_priors_moments():
    noise = torch.randn(500, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    standard = (noise - noise.mean(dim=0)) / noise.std(dim=0)
    assert fitted_gaussian_kl(standard) == pytest.approx(0, abs=1e-12)
    assert fitted_gaussian_kl(standard * 2 + 1) == pytest.approx(4 * 0.5 * (1 + 4 - 1 - torch.log(torch.tensor(4.0)).item()))


def test_the_autoencoder_is_seeded_and_deterministic():
    config = Config(latent_dim=3, hidden_dim=16, seed=4)
    first, second = Autoencoder(config), Autoencoder(config)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first(x), first(x)), "no noise: the code is z = μ(x)"
    assert torch.equal(first.reconstruct(x), first.decode(first.encode(x)))
    assert torch.equal(first.sample(4, torch.Generator().manual_seed(3)), first.sample(4, torch.Generator().manual_seed(3)))


def test_the_autoencoder_trains_and_its_codes_are_further_from_the_prior_than_the_vaes(mnist, capsys):
    autoencoder = Autoencoder(Config(epochs=2, train_size=2000, seed=1))
    history = train_autoencoder(autoencoder, mnist)
    assert len(history.test_loss) == 2 and history.test_loss[1] < history.test_loss[0] < 545  # 784·log 2: a coin per pixel
    assert capsys.readouterr().out.count("epoch") == 2
    test_images = mnist.test_images[:2000]
    vae = load_pretrained("vae").model
    mu, logvar = encode_posterior(vae, test_images)
    vae_gap = fitted_gaussian_kl(reparameterize(mu, logvar, torch.Generator().manual_seed(1)))
    autoencoder_gap = fitted_gaussian_kl(autoencoder.encode(test_images))
    assert vae_gap < 1 and autoencoder_gap > 10 * vae_gap + 10
