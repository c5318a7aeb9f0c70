"""The checks of notebooks 04 and 05 pass the reference solutions and catch a stub and plausible mistakes."""
import torch

from vae_lab import vae_loss
from vae_lab import exercises, solutions


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
    solutions.training_step(model, optimizer, x)


def step_returning_the_tensor(model, optimizer, x):
    loss = vae_loss(x, *model(x)).total
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def test_the_training_step_solution_passes(capsys):
    assert exercises.check_training_step(solutions.training_step) is True
    assert "✅" in capsys.readouterr().out


def test_a_step_returning_the_loss_tensor_also_passes():
    assert exercises.check_training_step(step_returning_the_tensor) is True


def test_the_training_step_stub_is_not_attempted(capsys):
    assert exercises.check_training_step(stub) is False
    assert "not attempted" in capsys.readouterr().out


def test_forgetting_zero_grad_is_caught_with_a_hint(capsys):
    assert exercises.check_training_step(step_without_zero_grad) is False
    assert "zero_grad" in capsys.readouterr().out


def test_forgetting_the_optimizer_step_is_caught_with_a_hint(capsys):
    assert exercises.check_training_step(step_without_update) is False
    assert "optimizer.step()" in capsys.readouterr().out


def test_returning_only_the_bce_is_caught(capsys):
    assert exercises.check_training_step(step_returning_only_bce) is False
    assert "BCE + KL" in capsys.readouterr().out


def test_returning_nothing_is_caught(capsys):
    assert exercises.check_training_step(step_returning_nothing) is False
    assert "returns nothing" in capsys.readouterr().out


def test_the_training_check_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    exercises.check_training_step(solutions.training_step)
    assert torch.equal(torch.rand(3), expected)


# ---- 05: samples from the prior ----

def prior_logits(model, n, generator):
    return model.decoder(torch.randn(n, model.config.latent_dim, generator=generator))


def prior_uniform(model, n, generator):
    return model.decode(torch.rand(n, model.config.latent_dim, generator=generator))


def prior_ignoring_the_generator(model, n, generator):
    return model.decode(torch.randn(n, model.config.latent_dim))


def prior_one_too_few(model, n, generator):
    return model.decode(torch.randn(n - 1, model.config.latent_dim, generator=generator))


def prior_as_image_tensor(model, n, generator):
    return solutions.decode_prior_samples(model, n, generator).reshape(n, 1, 28, 28)


def test_the_prior_samples_solution_passes(capsys):
    assert exercises.check_prior_samples(solutions.decode_prior_samples) is True
    assert "✅" in capsys.readouterr().out


def test_images_shaped_n_1_28_28_also_pass():
    assert exercises.check_prior_samples(prior_as_image_tensor) is True


def test_the_prior_samples_stub_is_not_attempted(capsys):
    assert exercises.check_prior_samples(stub) is False
    assert "not attempted" in capsys.readouterr().out


def test_returning_logits_is_caught_with_a_hint(capsys):
    assert exercises.check_prior_samples(prior_logits) is False
    assert "sigmoid" in capsys.readouterr().out


def test_a_uniform_z_is_caught_with_a_hint(capsys):
    assert exercises.check_prior_samples(prior_uniform) is False
    assert "torch.randn" in capsys.readouterr().out


def test_ignoring_the_generator_is_caught_with_a_hint(capsys):
    assert exercises.check_prior_samples(prior_ignoring_the_generator) is False
    assert "generator" in capsys.readouterr().out


def test_the_wrong_number_of_samples_is_caught(capsys):
    assert exercises.check_prior_samples(prior_one_too_few) is False
    assert "n = 6" in capsys.readouterr().out


def test_the_prior_check_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    exercises.check_prior_samples(prior_ignoring_the_generator)
    assert torch.equal(torch.rand(3), expected)
