"""The exercise checks of notebooks 01–03 accept the reference solution and reject stubs and plausible mistakes."""
import pytest
import torch

from vae_lab.lessons import exercises, solutions


def stub(*args):
    raise NotImplementedError  # your code here


def linear(layer, v):
    return v @ layer.weight.T + layer.bias


# Correct answers written as a student writes them, without the lab's functions; the mistakes below start from them.

def own_encode(encoder, x):
    h = torch.relu(linear(encoder.hidden, x))
    return linear(encoder.mu, h), linear(encoder.logvar, h)


def own_reparameterize(mu, logvar, eps):
    return mu + (0.5 * logvar).exp() * eps


def own_kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(dim=1)


CASES = {
    "check_encode": (solutions.encode, {
        "no ReLU": (lambda e, x: (linear(e.mu, linear(e.hidden, x)), linear(e.logvar, linear(e.hidden, x))), "ReLU"),
        "swapped": (lambda e, x: own_encode(e, x)[::-1], "swapped"),
        "returns σ": (lambda e, x: (own_encode(e, x)[0], own_encode(e, x)[1].mul(0.5).exp()), "log σ²"),
        "untransposed weight": (lambda e, x: (x @ e.hidden.weight, x), "x @ W.T"),
        "hidden only": (lambda e, x: (torch.relu(linear(e.hidden, x)), x), "hidden layer"),
    }),
    "check_reparameterize": (solutions.reparameterize_with, {
        "forgot the ½": (lambda m, lv, e: m + lv.exp() * e, "Forgot the ½"),
        "detached": (lambda m, lv, e: own_reparameterize(m, lv, e).detach(), "no gradient"),
        "new noise": (lambda m, lv, e: m + (0.5 * lv).exp() * torch.randn_like(m), "use the eps"),
        "no noise": (lambda m, lv, e: m * 1.0, "add the noise"),
        "log σ² as σ": (lambda m, lv, e: m + lv * e, "logarithm"),
    }),
    "check_gaussian_kl": (solutions.gaussian_kl, {
        "forgot the ½": (lambda m, lv: 2 * own_kl(m, lv), "forgot the ½"),
        "sign": (lambda m, lv: -own_kl(m, lv), "sign"),
        "summed over the batch": (lambda m, lv: own_kl(m, lv).sum(), "not over the batch"),
        "per dimension": (lambda m, lv: -0.5 * (1 + lv - m ** 2 - lv.exp()), "sum over dim=1"),
        "σ for σ²": (lambda m, lv: -0.5 * torch.sum(1 + lv - m ** 2 - (0.5 * lv).exp(), 1), "not σ"),
        "no 1": (lambda m, lv: -0.5 * torch.sum(lv - m ** 2 - lv.exp(), 1), "forgot the 1"),
    }),
}
WRONG = [(check, name, *answer) for check, (_, answers) in CASES.items() for name, answer in answers.items()]
OWN = {"check_encode": own_encode, "check_reparameterize": own_reparameterize, "check_gaussian_kl": own_kl}


@pytest.mark.parametrize("check", CASES)
def test_the_reference_solution_passes(check, capsys):
    assert getattr(exercises, check)(CASES[check][0]) is True
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("check", OWN)
def test_an_answer_written_without_the_lab_passes(check, capsys):
    assert getattr(exercises, check)(OWN[check]) is True
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize("check", CASES)
def test_the_stub_is_not_attempted(check, capsys):
    assert getattr(exercises, check)(stub) is False
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("check, name, answer, hint", WRONG, ids=[f"{c}-{n}" for c, n, *_ in WRONG])
def test_a_plausible_mistake_fails_with_its_hint(check, name, answer, hint, capsys):
    assert getattr(exercises, check)(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out, out


def test_checks_leave_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for check, (solution, _) in CASES.items():
        getattr(exercises, check)(solution)
    assert torch.equal(torch.rand(3), expected)


def test_every_config_setting_is_a_notebook_parameter():
    from dataclasses import fields

    from vae_lab import Config
    from vae_lab.lessons.setup import lesson_config

    changed = Config(batch_size=64, epochs=3, latent_dim=8, hidden_dim=100, lr=2e-3, seed=7, train_size=500,
                     binarize=True, lr_final=1e-3, architecture="conv", hidden_layers=2, conditional=True,
                     likelihood="continuous_bernoulli", iwae_samples=3)
    assert lesson_config(**changed.to_dict()) == changed
    assert set(changed.to_dict()) == {setting.name for setting in fields(Config)}
