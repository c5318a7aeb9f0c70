"""The notebooks' setup (vae_lab.lessons.setup): a run folder that follows from the settings, the pinned Colab link."""
import importlib.metadata

from vae_lab import Config
from vae_lab.lessons.setup import changed_settings, colab_url, release, repository_url, run_folder, runs_root


def test_the_run_folder_names_the_changed_settings_so_a_rerun_with_other_ones_starts_afresh():
    assert run_folder("04_training", Config()) == runs_root() / "04_training" / "lab-settings"
    assert run_folder("04_training", Config(epochs=1, seed=3)) == runs_root() / "04_training" / "epochs=1,seed=3"
    assert run_folder("04_training", Config(seed=3, epochs=1)) == run_folder("04_training", Config(epochs=1, seed=3))
    assert run_folder("04_training", Config(epochs=2)) != run_folder("04_training", Config(epochs=1))


def test_changed_settings_lists_only_what_differs_from_the_lab_in_field_order():
    assert changed_settings(Config()) == []
    assert changed_settings(Config(seed=3, epochs=1, beta=2.0)) == ["epochs=1", "seed=3", "beta=2.0"]


def test_the_colab_link_opens_the_notebook_at_the_release_not_at_main():
    assert release() == f"v{importlib.metadata.version('vae-lab')}"
    assert colab_url("notebooks/05_generation.ipynb") == (
        repository_url().replace("https://github.com/", "https://colab.research.google.com/github/")
        + f"/blob/{release()}/notebooks/05_generation.ipynb")
