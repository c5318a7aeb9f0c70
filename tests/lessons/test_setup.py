"""The notebooks' setup (vae_lab.lessons.setup): a run folder that follows from the settings."""
from vae_lab import Config
from vae_lab.lessons.setup import run_folder, runs_root


def test_the_run_folder_names_the_changed_settings_so_a_rerun_with_other_ones_starts_afresh():
    assert run_folder("04_training", Config()) == runs_root() / "04_training" / "lab-settings"
    assert run_folder("04_training", Config(epochs=1, seed=3)) == runs_root() / "04_training" / "epochs=1,seed=3"
    assert run_folder("04_training", Config(seed=3, epochs=1)) == run_folder("04_training", Config(epochs=1, seed=3))
    assert run_folder("04_training", Config(epochs=2)) != run_folder("04_training", Config(epochs=1))
