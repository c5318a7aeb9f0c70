"""The checks of notebooks 04 and 05 pass the reference solutions and catch a stub and plausible mistakes."""
import pytest
import torch
import torch.nn.functional as F

from vae_lab import vae_loss
from vae_lab.lessons import exercises, solutions


def stub(*args):
    raise NotImplementedError  # your code here


# ---- 04: one training step ----

def step_without_zero_grad(model, optimizer, x):
    loss = vae_loss(x, *model(x)).total
    loss.backward()
    optimizer.step()
    return loss.item()


def step_without_update(model, optimizer, x):
    loss = vae_loss(x, *model(x)).total
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def step_returning_only_bce(model, optimizer, x):
    parts = vae_loss(x, *model(x))
    optimizer.zero_grad()
    parts.total.backward()
    optimizer.step()
    return parts.reconstruction.item()


def step_returning_nothing(model, optimizer, x):
    loss = vae_loss(x, *model(x)).total
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def step_summing_over_the_batch(model, optimizer, x):
    logits, mu, logvar = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = bce + kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_returning_the_tensor(model, optimizer, x):
    loss = vae_loss(x, *model(x)).total
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


# ---- 05: samples from the prior ----

def own_prior_samples(model, n, generator):
    return model.decode(torch.randn(n, model.config.latent_dim, generator=generator))


def prior_logits(model, n, generator):
    return model.decoder(torch.randn(n, model.config.latent_dim, generator=generator))


def prior_uniform(model, n, generator):
    return model.decode(torch.rand(n, model.config.latent_dim, generator=generator))


def prior_ignoring_the_generator(model, n, generator):
    return model.decode(torch.randn(n, model.config.latent_dim))


def prior_one_too_few(model, n, generator):
    return model.decode(torch.randn(n - 1, model.config.latent_dim, generator=generator))


def prior_as_image_tensor(model, n, generator):
    return own_prior_samples(model, n, generator).reshape(n, 1, 28, 28)


@pytest.mark.parametrize("check, answer, passes, words", [
    (exercises.check_training_step, solutions.training_step, True, "✅"),
    (exercises.check_training_step, step_returning_the_tensor, True, "✅"),
    (exercises.check_training_step, stub, False, "not attempted"),
    (exercises.check_training_step, step_without_zero_grad, False, "zero_grad"),
    (exercises.check_training_step, step_without_update, False, "optimizer.step()"),
    (exercises.check_training_step, step_returning_only_bce, False, "BCE + KL"),
    (exercises.check_training_step, step_returning_nothing, False, "returns nothing"),
    (exercises.check_training_step, step_summing_over_the_batch, False, "summed over the batch of 16 images"),
    (exercises.check_prior_samples, solutions.decode_prior_samples, True, "✅"),
    (exercises.check_prior_samples, own_prior_samples, True, "✅"),
    (exercises.check_prior_samples, prior_as_image_tensor, True, "✅"),
    (exercises.check_prior_samples, stub, False, "not attempted"),
    (exercises.check_prior_samples, prior_logits, False, "sigmoid"),
    (exercises.check_prior_samples, prior_uniform, False, "torch.randn"),
    (exercises.check_prior_samples, prior_ignoring_the_generator, False, "generator"),
    (exercises.check_prior_samples, prior_one_too_few, False, "n = 6"),
], ids=lambda v: getattr(v, "__name__", None))
def test_each_check_passes_the_solution_and_names_each_mistake(check, answer, passes, words, capsys):
    assert check(answer) is passes
    assert words in capsys.readouterr().out


@pytest.mark.parametrize("check, answer", [(exercises.check_training_step, solutions.training_step),
                                           (exercises.check_prior_samples, prior_ignoring_the_generator)])
def test_the_checks_leave_the_global_rng_alone(check, answer):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check(answer)
    assert torch.equal(torch.rand(3), expected)
