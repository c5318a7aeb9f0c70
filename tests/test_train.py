import dataclasses

import pytest
import torch

from vae_lab import VAE, Config, History, fit, load_checkpoint, load_pretrained
from vae_lab.checkpoint import CheckpointError, choose_device


def losses(history: History) -> dict:
    """Everything a history records except wall-clock time."""
    return {k: v for k, v in history.to_dict().items() if k != "seconds"}


def test_loss_falls_on_a_small_subset(small, tiny_config):
    history = fit(VAE(dataclasses.replace(tiny_config, epochs=4)), small, progress=False)
    assert len(history) == 4
    assert history.train_loss[-1] < history.train_loss[0] - 20
    assert history.test_loss[-1] < history.test_loss[0]
    assert all(t == pytest.approx(r + k) for t, r, k in zip(history.test_loss, history.test_reconstruction, history.test_kl))


def test_the_same_seed_gives_an_identical_history(small, tiny_config):
    first = fit(VAE(tiny_config), small, progress=False)
    torch.randn(100)  # whatever happened in between must not matter
    second = fit(VAE(tiny_config), small, progress=False)
    other = fit(VAE(dataclasses.replace(tiny_config, seed=2)), small, progress=False)
    assert losses(first) == losses(second)
    assert losses(first) != losses(other)


def test_resume_equals_an_uninterrupted_run(small, tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, epochs=4)
    straight = VAE(config)
    expected = fit(straight, small, progress=False, checkpoint=tmp_path / "straight.pt")
    partial = tmp_path / "partial.pt"
    fit(VAE(dataclasses.replace(config, epochs=2)), small, progress=False, checkpoint=partial)
    resumed = VAE(config)
    history = fit(resumed, small, progress=False, checkpoint=partial, resume=True)
    assert losses(history) == losses(expected)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_a_checkpoint_with_other_settings(small, tiny_config, tmp_path):
    path = tmp_path / "run.pt"
    fit(VAE(dataclasses.replace(tiny_config, epochs=1)), small, progress=False, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"\(latent_dim=4 there but 2 here\); resume with the same settings"):
        fit(VAE(dataclasses.replace(tiny_config, latent_dim=2)), small, progress=False, checkpoint=path, resume=True)
    assert path.read_bytes() == before


def test_an_interrupted_fit_keeps_the_history_so_far(small, tiny_config, tmp_path, capsys):
    def stop_after_first_epoch(history):
        raise KeyboardInterrupt

    history = fit(VAE(dataclasses.replace(tiny_config, epochs=5)), small, progress=False,
                  checkpoint=tmp_path / "run.pt", on_epoch=stop_after_first_epoch)
    assert history.interrupted and len(history) == 1
    assert "training interrupted: kept 1 complete epoch(s) of 5" in capsys.readouterr().err
    assert len(load_checkpoint(tmp_path / "run.pt").history) == 1


def test_a_nan_loss_stops_training_naming_epoch_batch_and_fix(small, tiny_config):
    broken = dataclasses.replace(small, train_images=small.train_images.clone())
    broken.train_images[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"the loss became nan in epoch 1, batch 1; training stopped. Lower the learning rate"):
        fit(VAE(tiny_config), broken, progress=False)


def test_a_huge_learning_rate_never_diverges_silently(small):
    config = Config(epochs=3, lr=0.9, hidden_dim=64, latent_dim=4, batch_size=50)
    try:
        history = fit(VAE(config), small, progress=False)
    except FloatingPointError as error:
        assert "Lower the learning rate (now 0.9)" in str(error)
    else:
        assert all(map(torch.isfinite, map(torch.tensor, history.train_loss + history.test_loss)))


def test_dynamic_binarization_trains(small, tiny_config):
    history = fit(VAE(dataclasses.replace(tiny_config, binarize=True)), small, progress=False)
    assert len(history) == 2 and history.train_loss[1] < history.train_loss[0]


def test_device_choice():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device 'gpu0'; use 'auto', 'cpu', 'cuda' or 'mps'"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine; use 'auto' or 'cpu'"):
            choose_device("cuda")


def test_the_shipped_model_is_the_labs_seed_run(mnist):
    pretrained = load_pretrained()
    assert pretrained.config == Config()
    assert len(pretrained.history) == 10
    assert pretrained.history.test_loss[-1] <= 105.6
    assert pretrained.history.test_loss == sorted(pretrained.history.test_loss, reverse=True)
    from vae_lab.train import evaluate_loss
    assert evaluate_loss(pretrained.model, mnist.test_images)[0] == pytest.approx(pretrained.history.test_loss[-1], abs=0.3)
    with pytest.raises(ValueError, match="no pretrained model called 'vea'; available: \\[.*'vae'"):
        load_pretrained("vea")
