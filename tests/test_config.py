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
