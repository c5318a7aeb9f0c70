"""vae_lab.lessons.generation: notebook 04's run or the shipped weights, and samples from several training stages."""
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from vae_lab import VAE, Config, fit, load_pretrained
from vae_lab.lessons import generation
from vae_lab.lessons.generation import (gray_fraction, load_run_or_pretrained, pixel_histogram, settings_in_words,
                                        shown_path, stage_grid, stage_samples, stage_test_losses)
from vae_lab.lessons.setup import runs_root

TINY = dict(batch_size=100, hidden_dim=16, latent_dim=2, train_size=200)


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained("vae")


@pytest.fixture
def complete_run(tmp_path, small):
    """A run folder as notebook 04 leaves it: fit wrote checkpoint.pt after its last epoch."""
    model = VAE(Config(epochs=1, **TINY))
    fit(model, small, checkpoint=tmp_path / "checkpoint.pt", progress=False)
    return tmp_path, model


def same_weights(a: VAE, b: VAE) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_missing_run_dir_falls_back_to_the_pretrained_model(tmp_path, shipped):
    loaded = load_run_or_pretrained(tmp_path / "never_trained")
    assert not loaded.from_run
    assert same_weights(loaded.model, shipped.model)
    assert loaded.history.test_loss == shipped.history.test_loss
    assert loaded.source.startswith("Using the weights shipped with vae_lab ('vae'), because notebook 04 has saved no run")
    assert "in this same runtime" in loaded.source and "Traceback" not in loaded.source


def test_in_a_fresh_colab_runtime_the_message_names_the_run_folder_as_the_student_sees_it(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "runs_root", lambda: tmp_path / "runs")  # Colab: runs/ of the working folder
    loaded = load_run_or_pretrained(tmp_path / "runs" / "04_training" / "lab-settings")
    assert "no run in runs/04_training/lab-settings (" in loaded.source and str(tmp_path) not in loaded.source


def test_a_complete_run_is_used(complete_run, shipped):
    run_dir, trained = complete_run
    loaded = load_run_or_pretrained(run_dir)
    assert loaded.from_run
    assert loaded.model.config == trained.config
    assert same_weights(loaded.model, trained)
    assert len(loaded.history) == 1
    assert loaded.source.startswith(f"Using notebook 04's run in {run_dir}: 1 epoch, test loss ")


def test_a_truncated_checkpoint_falls_back_to_the_pretrained_model(complete_run, shipped):
    run_dir, _ = complete_run
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    loaded = load_run_or_pretrained(run_dir)
    assert not loaded.from_run
    assert same_weights(loaded.model, shipped.model)
    assert loaded.source.startswith("Using the weights shipped with vae_lab") and "truncated" in loaded.source


def test_a_file_that_is_not_a_checkpoint_falls_back(tmp_path, shipped):
    (tmp_path / "checkpoint.pt").write_text("not a checkpoint")
    loaded = load_run_or_pretrained(tmp_path)
    assert not loaded.from_run and same_weights(loaded.model, shipped.model)


def test_an_interrupted_run_is_incomplete_and_falls_back(tmp_path, small, shipped):
    def stop_after_first_epoch(history):
        raise KeyboardInterrupt

    history = fit(VAE(Config(epochs=3, **TINY)), small, checkpoint=tmp_path / "checkpoint.pt", progress=False,
                  on_epoch=stop_after_first_epoch)
    assert history.interrupted and len(history) == 1
    loaded = load_run_or_pretrained(tmp_path)
    assert not loaded.from_run and same_weights(loaded.model, shipped.model)
    assert "1 of 3 epochs" in loaded.source


def test_another_pretrained_model_can_be_the_fallback(tmp_path):
    loaded = load_run_or_pretrained(tmp_path, pretrained="vae_latent2")
    assert loaded.model.config.latent_dim == 2 and "vae_latent2" in loaded.source


def test_stage_samples_decode_the_same_z_at_every_stage():
    samples = stage_samples(n=5, seed=3)
    assert list(samples) == [1, 3, 10]
    for name, epochs in (("vae_epoch1", 1), ("vae_epoch3", 3), ("vae", 10)):
        expected = load_pretrained(name).model.sample(5, generator=torch.Generator().manual_seed(3))
        assert samples[epochs].shape == (5, 784)
        torch.testing.assert_close(samples[epochs], expected)
    assert not torch.allclose(samples[1], samples[10], atol=1e-3)


def test_stage_samples_refuse_stages_with_different_latent_sizes():
    with pytest.raises(ValueError, match="different latent sizes"):
        stage_samples(("vae", "vae_latent2"))


def test_later_stages_draw_crisper_digits():
    samples = stage_samples(n=64, seed=0)
    assert gray_fraction(samples[1]) > gray_fraction(samples[3]) > gray_fraction(samples[10])


def test_stage_test_losses_are_the_shipped_histories_last_test_losses():
    losses = stage_test_losses()
    assert list(losses) == [1, 3, 10]
    assert losses[10] == load_pretrained("vae").history.test_loss[-1]
    assert losses[1] > losses[3] > losses[10]


def test_shown_path_is_relative_to_the_folder_holding_runs_and_in_full_elsewhere(tmp_path):
    assert shown_path(runs_root() / "04_training" / "lab-settings") == Path("runs/04_training/lab-settings")
    assert shown_path(tmp_path / "runs") == tmp_path / "runs"


def test_settings_in_words_names_only_what_differs_from_the_lab():
    assert settings_in_words(Config()) == "the lab's settings"
    assert settings_in_words(Config(seed=3, epochs=1)) == "the lab's settings except epochs=1, seed=3"


def test_gray_fraction_counts_pixels_strictly_between_the_bounds():
    assert gray_fraction(torch.tensor([0.0, 0.05, 0.5, 0.95, 1.0, 0.3, 0.02, 0.99])) == 0.25


def test_the_figures_have_one_panel_per_stage_and_one_histogram():
    samples = stage_samples(n=4)
    assert isinstance(stage_grid(samples), Figure) and len(stage_grid(samples).axes) == 3
    real = torch.rand(10, 784, generator=torch.Generator().manual_seed(0))
    assert len(pixel_histogram(real, samples[10]).axes) == 1
