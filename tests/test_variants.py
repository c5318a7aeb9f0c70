"""The VAE family behind notebooks 08–11: deeper, convolutional and conditional models, KL warm-up,
a decaying learning rate, and the continuous Bernoulli likelihood."""
import dataclasses
import math

import pytest
import torch

from vae_lab import VAE, Config, fit, load_checkpoint, save_checkpoint
from vae_lab.loss import continuous_bernoulli_log_norm, pixel_means, reconstruction_loss, vae_loss


@pytest.mark.parametrize("settings, message", [
    ({"architecture": "rnn"}, "architecture must be one of 'mlp', 'conv'"),
    ({"likelihood": "gaussian"}, "likelihood must be one of"),
    ({"hidden_layers": 0}, "hidden_layers must be a positive integer"),
    ({"warmup_epochs": -1}, "warmup_epochs must be a non-negative integer"),
    ({"lr_final": 1e-2}, "lr_final must be None or a number in"),
    ({"conditional": "yes"}, "conditional must be True or False"),
    ({"iwae_samples": 0}, "iwae_samples must be a positive integer"),
    ({"iwae_samples": 5, "beta": 4.0}, "is a bound on log p.x. only with beta=1"),
    ({"iwae_samples": 5, "warmup_epochs": 2}, "is a bound on log p.x. only with beta=1 and no warm-up"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        Config(**settings)


def test_warm_up_ramps_beta_linearly_then_holds():
    config = Config(beta=4.0, warmup_epochs=2)
    assert [config.beta_at(p) for p in (0, 0.5, 1, 2, 7)] == [0.0, 1.0, 2.0, 4.0, 4.0]
    assert Config(beta=4.0).beta_at(0) == 4.0


def test_the_learning_rate_decays_geometrically_to_lr_final():
    config = Config(epochs=3, lr=1e-3, lr_final=1e-5)
    assert [config.lr_at(e) for e in (1, 2, 3)] == pytest.approx([1e-3, 1e-4, 1e-5])
    assert Config(epochs=3).lr_at(3) == 1e-3


@pytest.mark.parametrize("settings, parameters", [
    ({}, 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 + 400 * 784 + 784),
    ({"hidden_layers": 2}, 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 + 400 * 784 + 784 + 2 * (400 * 400 + 400)),
    ({"conditional": True}, 794 * 400 + 400 + 2 * (400 * 20 + 20) + 30 * 400 + 400 + 400 * 784 + 784),
])
def test_parameter_counts_follow_the_architecture(settings, parameters):
    assert VAE(Config(**settings)).parameter_count() == parameters


@pytest.mark.parametrize("settings", [{"architecture": "conv"}, {"hidden_layers": 3}, {"conditional": True},
                                      {"architecture": "conv", "conditional": True}])
def test_every_variant_maps_images_to_logits_and_back(settings):
    model = VAE(Config(latent_dim=6, **settings))
    x = torch.rand(5, 1, 28, 28)
    labels = torch.arange(5) if model.config.conditional else None
    out = model(x, labels)
    assert out.logits.shape == (5, 784) and out.mu.shape == out.logvar.shape == (5, 6)
    assert model.sample(3, labels=7 if labels is not None else None).shape == (3, 784)
    assert model.reconstruct(x, labels).shape == (5, 784)


def test_the_conv_vae_has_fewer_parameters_than_the_mlp():
    assert VAE(Config(architecture="conv")).parameter_count() < VAE(Config()).parameter_count() / 2


def test_conditioning_changes_the_decoded_digit_and_is_required():
    model = VAE(Config(conditional=True, latent_dim=4))
    z = torch.zeros(2, 4)
    assert not torch.allclose(model.decode(z, torch.tensor([3, 3])), model.decode(z, torch.tensor([8, 8])))
    with pytest.raises(ValueError, match="conditional VAE: pass the digit labels"):
        model(torch.rand(2, 784))
    with pytest.raises(ValueError, match="integer labels in 0..9"):
        model(torch.rand(2, 784), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="not conditional"):
        VAE(Config(latent_dim=4))(torch.rand(2, 784), torch.tensor([1, 2]))


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


def test_warm_up_starts_training_with_a_small_kl_weight(small, tiny_config):
    plain = fit(VAE(dataclasses.replace(tiny_config, epochs=1)), small, progress=False)
    warm = fit(VAE(dataclasses.replace(tiny_config, epochs=1, warmup_epochs=5)), small, progress=False)
    assert warm.train_kl[0] > plain.train_kl[0], "with β near 0 the encoder spends more nats on KL at first"


@pytest.mark.parametrize("settings", [{"architecture": "conv"}, {"conditional": True}, {"hidden_layers": 2},
                                      {"likelihood": "continuous_bernoulli"}, {"lr_final": 1e-4, "warmup_epochs": 1},
                                      {"iwae_samples": 3, "binarize": True}])
def test_every_variant_learns_and_round_trips_through_a_checkpoint(small, tiny_config, tmp_path, settings):
    model = VAE(dataclasses.replace(tiny_config, epochs=3, **settings))
    history = fit(model, small, progress=False)
    assert history.test_loss[-1] < history.test_loss[0] or settings.get("likelihood")
    assert all(math.isfinite(v) for v in history.test_loss)
    save_checkpoint(tmp_path / "model.pt", model, history=history)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config == model.config
    x = small.test_images[:4]
    labels = small.test_labels[:4] if model.config.conditional else None
    assert torch.equal(loaded.model.reconstruct(x, labels), model.reconstruct(x, labels))


def test_a_conv_checkpoint_refuses_mlp_weights(tmp_path):
    mlp = VAE(Config(latent_dim=4))
    save_checkpoint(tmp_path / "model.pt", mlp)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["config"]["architecture"] = "conv"
    torch.save(payload, tmp_path / "model.pt")
    from vae_lab.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="different architecture"):
        load_checkpoint(tmp_path / "model.pt")


def test_vae_loss_passes_the_likelihood_through():
    x, logits = torch.rand(3, 784), torch.randn(3, 784)
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    assert vae_loss(x, logits, mu, logvar, likelihood="continuous_bernoulli").total < vae_loss(x, logits, mu, logvar).total
