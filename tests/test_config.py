"""Config: the lab's settings, their validation, and the β and learning-rate schedules."""
import pytest

from vae_lab import Config


def test_defaults_are_the_labs_settings():
    config = Config()
    assert (config.batch_size, config.epochs, config.latent_dim, config.hidden_dim, config.lr, config.seed) == \
        (128, 10, 20, 400, 1e-3, 1)


@pytest.mark.parametrize("name, value, words", [
    ("epochs", 0, "epochs must be a positive integer, got 0"),
    ("epochs", -3, "epochs must be a positive integer"),
    ("epochs", 2.5, "epochs must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("latent_dim", -1, "latent_dim must be a positive integer"),
    ("hidden_dim", True, "hidden_dim must be a positive integer"),
    ("lr", 0.0, "lr must be a number between 0 and 1"),
    ("lr", -1e-3, "lr must be a number between 0 and 1"),
    ("lr", "1e-3", "lr must be a number between 0 and 1"),
    ("seed", -1, "seed must be a whole number from 0 to 4294967295"),
    ("seed", 2**32, "seed must be a whole number from 0 to 4294967295"),
    ("train_size", 0, "train_size must be a positive integer"),
    ("binarize", "yes", "binarize must be True or False"),
    ("beta", -0.5, "beta must be a finite number >= 0"),
    ("beta", float("inf"), "beta must be a finite number >= 0"),
])
def test_bad_settings_are_named(name, value, words):
    with pytest.raises(ValueError, match=words):
        Config(**{name: value})


def test_round_trip_and_unknown_settings():
    config = Config(epochs=3, latent_dim=2)
    assert Config.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown settings \['latent_size'\]"):
        Config.from_dict({**config.to_dict(), "latent_size": 3})


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
def test_bad_variant_settings_are_named(settings, message):
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


@pytest.mark.parametrize("settings", [{}, {"latent_dim": 2}, {"hidden_layers": 3, "hidden_dim": 500, "latent_dim": 50},
                                      {"conditional": True}, {"architecture": "conv"},
                                      {"architecture": "conv", "conditional": True}])
def test_the_memory_estimate_counts_the_weights_the_model_really_has(settings):
    from vae_lab import VAE

    config = Config(**settings)
    assert config.parameter_count() == VAE(config).parameter_count()


@pytest.mark.parametrize("settings, message", [
    ({"prior": "flow"}, "prior must be one of 'standard', 'mixture', 'vamp'"),
    ({"prior_components": 0}, "prior_components must be a positive integer"),
    ({"stochastic_layers": 3}, "stochastic_layers must be a whole number from 1 to 2"),
    ({"top_latent_dim": 0}, "top_latent_dim must be a positive integer"),
    ({"free_bits": -0.1}, "free_bits must be a finite number >= 0"),
    ({"free_bits": 0.5, "iwae_samples": 5}, "only with beta=1 and no warm-up or free bits"),
    ({"conditional": True, "prior": "vamp"}, "a conditional VAE keeps the standard prior and one latent layer"),
    ({"architecture": "conv", "stochastic_layers": 2}, "two stochastic layers are built from MLPs"),
    ({"codebook_size": -1}, "codebook_size must be a non-negative integer"),
    ({"restart_dead_codes": 5}, "restart_dead_codes restarts a VQ-VAE's codes; set codebook_size > 0 too"),
    ({"architecture": "conv", "codebook_size": 8, "commitment": -1}, "commitment must be a finite number >= 0"),
    ({"codebook_size": 8}, r"a VQ-VAE \(codebook_size=8\) is built from the conv networks .* cannot take "
                           r"architecture='mlp'; set architecture='conv'"),
    ({"architecture": "conv", "codebook_size": 8, "beta": 2.0}, "cannot take beta=2.0; set"),
])
def test_bad_prior_and_hierarchy_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        Config(**settings)


@pytest.mark.parametrize("settings", [{"prior": "mixture"}, {"prior": "vamp", "prior_components": 7},
                                      {"stochastic_layers": 2}, {"stochastic_layers": 2, "hidden_layers": 2},
                                      {"stochastic_layers": 2, "prior": "vamp", "top_latent_dim": 5},
                                      {"architecture": "conv", "prior": "mixture"},
                                      {"architecture": "conv", "codebook_size": 64, "latent_dim": 16}])
def test_the_parameter_count_of_each_prior_and_depth_is_the_models(settings):
    from vae_lab.model import build_model

    config = Config(**settings)
    assert config.parameter_count() == build_model(config).parameter_count()
