"""Every exercise check wants the student's own code: an answer that calls (or is) the lab's function for that step,
or the reference solution, gets "write it yourself"; answers written with torch pass, in float32 or float64."""
import math

import pytest
import torch

import vae_lab
from vae_lab import kl_divergence, reparameterize
from vae_lab.evaluate import importance_bounds
from vae_lab.latent import decode_every_digit, interpolate, style_transfer
from vae_lab.lessons import exercises, solutions
from vae_lab.lessons.beta_vae import active_units
from vae_lab.lessons.setup import LessonError, WriteItYourself, refusing
from vae_lab.model import Encoder, VAE, sample_digits
from vae_lab.train import train_epoch


def iwae_through_importance_bounds(log_w):
    """q = p(z) = N(0, I), so log p(z) − log q(z) = 0 and the lab's bound sees exactly these log-weights."""
    n = log_w.shape[1]
    return importance_bounds(torch.zeros(n, 1), torch.zeros(n, 1), lambda z: log_w, len(log_w)).iwae


# (check, answer, the name the ❌ line gives, whether the answer's values would pass without the guard)
SHORTCUTS = [
    (exercises.check_encode, lambda encoder, x: encoder(x), "Encoder.forward", True),
    (exercises.check_encode, lambda encoder, x: solutions.encode(encoder, x), "solutions.encode", True),
    (exercises.check_reparameterize, lambda mu, logvar, eps: reparameterize(mu, logvar, torch.Generator().manual_seed(2)),
     "vae_lab.reparameterize", True),
    (exercises.check_reparameterize, lambda mu, logvar, eps: solutions.reparameterize_with(mu, logvar, eps),
     "solutions.reparameterize_with", True),
    (exercises.check_gaussian_kl, lambda mu, logvar: kl_divergence(mu, logvar), "vae_lab.kl_divergence", True),
    (exercises.check_gaussian_kl, lambda mu, logvar: vae_lab.loss.kl_divergence(mu, logvar), "vae_lab.kl_divergence",
     True),
    (exercises.check_gaussian_kl, lambda mu, logvar: solutions.gaussian_kl(mu, logvar), "solutions.gaussian_kl", True),
    (exercises.check_training_step, lambda model, optimizer, x: train_epoch(model, optimizer, x, None,
                                                                             torch.Generator(), 1)[0],
     "vae_lab.train.train_epoch", False),
    (exercises.check_training_step, lambda model, optimizer, x: solutions.training_step(model, optimizer, x),
     "solutions.training_step", True),
    (exercises.check_prior_samples, lambda model, n, generator: model.sample(n, generator), "VAE.sample", True),
    (exercises.check_prior_samples, lambda model, n, generator: sample_digits(model, n, seed=5), "VAE.sample", True),
    (exercises.check_prior_samples, lambda model, n, generator: solutions.decode_prior_samples(model, n, generator),
     "solutions.decode_prior_samples", True),
    (exercises.check_linear_interpolation, lambda z0, z1, steps: interpolate(z0, z1, steps), "vae_lab.latent.interpolate",
     True),
    (exercises.check_linear_interpolation, lambda z0, z1, steps: solutions.linear_interpolation(z0, z1, steps),
     "solutions.linear_interpolation", True),
    (exercises.check_iwae_from_log_weights, iwae_through_importance_bounds, "vae_lab.evaluate.importance_bounds", True),
    (exercises.check_iwae_from_log_weights, lambda log_w: solutions.iwae_from_log_weights(log_w),
     "solutions.iwae_from_log_weights", True),
    (exercises.check_active_units, lambda mu, threshold: int(active_units(mu, threshold).sum()), "beta_vae.active_units",
     True),
    (exercises.check_active_units, lambda mu, threshold: solutions.count_active_units(mu, threshold),
     "solutions.count_active_units", True),
    (exercises.check_style_transfer, lambda model, image, label: style_transfer(model, image[None], torch.tensor([label])),
     "vae_lab.latent.style_transfer", True),
    (exercises.check_style_transfer, lambda model, image, label: decode_every_digit(
        model, model.encoder(image[None], torch.tensor([label]))[0]), "vae_lab.latent.decode_every_digit", True),
    (exercises.check_style_transfer, lambda model, image, label: solutions.write_as_every_digit(model, image, label),
     "solutions.write_as_every_digit", True),
    (exercises.check_output_size, lambda *args: solutions.output_size(*args), "solutions.output_size", True),
]
IDS = [f"{check.__name__}-{name}" for check, _, name, _ in SHORTCUTS]


@pytest.mark.parametrize("check, answer, name, would_pass", SHORTCUTS, ids=IDS)
def test_an_answer_that_calls_the_labs_function_is_told_to_write_it(check, answer, name, would_pass, capsys):
    if would_pass:  # without the guard these values pass: the refusal, not a wrong value, fails them
        assert check.__wrapped__(answer) is True
        capsys.readouterr()
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ Not yet: write it yourself: you called ") and name in out, out
    assert out.count("\n") == 1, out


@pytest.mark.parametrize("check, function, name", [
    (exercises.check_encode, Encoder.forward, "vae_lab.model.Encoder.forward"),
    (exercises.check_gaussian_kl, kl_divergence, "vae_lab.kl_divergence"),
    (exercises.check_prior_samples, VAE.sample, "vae_lab.model.VAE.sample"),
    (exercises.check_linear_interpolation, interpolate, "vae_lab.latent.interpolate"),
], ids=lambda v: getattr(v, "__name__", None))
def test_an_answer_that_is_the_labs_function_is_told_to_write_it(check, function, name, capsys):
    assert check(function) is False
    assert f"write it yourself: you called {name};" in capsys.readouterr().out


def test_names_the_notebook_imported_are_refused_and_put_back(capsys):
    notebook = {}  # a notebook's namespace: `from vae_lab import …` binds the lab's function under the student's name
    exec("import torch\nfrom vae_lab import kl_divergence as kl\n"
         "def gaussian_kl(mu, logvar):\n    return kl(mu, logvar)\n", notebook)
    assert exercises.check_gaussian_kl(notebook["gaussian_kl"]) is False
    assert "write it yourself: you called vae_lab.kl_divergence; compute −½ Σ" in capsys.readouterr().out
    assert notebook["kl"] is kl_divergence


def test_the_guard_refuses_only_inside_its_block_and_puts_everything_back():
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    forward, sample = Encoder.forward, VAE.sample

    def answer(mu, logvar):
        return kl_divergence(mu, logvar)

    with refusing([kl_divergence, Encoder.forward, VAE.sample], "use torch", answer):
        for call in (lambda: vae_lab.kl_divergence(mu, logvar), lambda: vae_lab.loss.kl_divergence(mu, logvar),
                     lambda: answer(mu, logvar), lambda: Encoder(4, 8)(torch.zeros(1, 784)),
                     lambda: VAE(vae_lab.Config(latent_dim=4, hidden_dim=8)).sample(2)):
            with pytest.raises(WriteItYourself, match="^write it yourself: you called .*; use torch$"):
                call()
    assert issubclass(WriteItYourself, LessonError)
    assert vae_lab.kl_divergence is vae_lab.loss.kl_divergence is kl_divergence and globals()["kl_divergence"] is kl_divergence
    assert Encoder.forward is forward and VAE.sample is sample
    assert torch.equal(answer(mu, logvar), torch.zeros(2))


def test_the_guard_puts_everything_back_when_the_answer_fails_another_way(capsys):
    def crashes(mu, logvar):
        raise RuntimeError("a bug in the student's code")

    with pytest.raises(RuntimeError, match="student's code"):
        exercises.check_gaussian_kl(crashes)
    assert vae_lab.kl_divergence is kl_divergence and solutions.gaussian_kl.__name__ == "gaussian_kl"


# ---- answers in float64 ----

def linear(layer, v):
    return v @ layer.weight.T + layer.bias


def encode_in_float64(encoder, x):
    h = torch.relu(linear(encoder.hidden, x))
    return linear(encoder.mu, h).double(), linear(encoder.logvar, h).double()


def interpolate_in_float64(z0, z1, steps):
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    return (1 - t) * z0 + t * z1


def style_transfer_in_float64(model, image, label):
    mu, _ = model.encoder(image[None], torch.tensor([label]))
    return model.decode(mu.repeat(10, 1), torch.arange(10)).double()


@pytest.mark.parametrize("check, answer", [
    (exercises.check_encode, encode_in_float64),
    (exercises.check_reparameterize, lambda mu, logvar, eps: mu.double() + (0.5 * logvar.double()).exp() * eps.double()),
    (exercises.check_gaussian_kl, lambda mu, logvar: -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).double().sum(dim=1)),
    (exercises.check_prior_samples,
     lambda model, n, generator: model.decode(torch.randn(n, model.config.latent_dim, generator=generator)).double()),
    (exercises.check_linear_interpolation, interpolate_in_float64),
    (exercises.check_iwae_from_log_weights, lambda log_w: torch.logsumexp(log_w.double(), dim=0) - math.log(len(log_w))),
    (exercises.check_active_units, lambda mu, threshold: (mu.double().var(dim=0) > threshold).sum()),
    (exercises.check_style_transfer, style_transfer_in_float64),
], ids=lambda v: getattr(v, "__name__", None))
def test_a_float64_answer_passes(check, answer, capsys):
    assert check(answer) is True
    assert capsys.readouterr().out.startswith("✅")


# ---- 08: the IWAE bound from log-weights ----

def iwae_by_hand(log_w):
    m = log_w.max(dim=0).values
    return m + torch.log(torch.exp(log_w - m).mean(dim=0))


def stub(log_w):
    raise NotImplementedError  # your code here


@pytest.mark.parametrize("answer, passes, words", [
    (solutions.iwae_from_log_weights, True, "L_K matches"),
    (iwae_by_hand, True, "L_K matches"),
    (stub, False, "not attempted"),
    (lambda log_w: torch.log(torch.exp(log_w).mean(dim=0)), False, "underflows to 0 in float32"),
    (lambda log_w: torch.logsumexp(log_w, dim=0), False, "subtract log K"),
    (lambda log_w: torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1]), False, "reduce over dim=0"),
    (lambda log_w: log_w.mean(dim=0), False, "m + log Σ exp(ℓ − m) − log K"),
], ids=lambda v: getattr(v, "__name__", None))
def test_check_iwae_from_log_weights_passes_the_bound_and_names_each_mistake(answer, passes, words, capsys):
    assert exercises.check_iwae_from_log_weights(answer) is passes
    assert words in capsys.readouterr().out
