"""Every shipped checkpoint is exactly the model its entry in vae_lab/zoo.py describes, fully trained."""
import pytest

from vae_lab import load_pretrained
from vae_lab.train import PRETRAINED_DIR
from vae_lab.zoo import PRETRAINED_CONFIGS, SNAPSHOTS, pretrained_names


@pytest.mark.parametrize("name", list(PRETRAINED_CONFIGS))
def test_each_shipped_model_matches_its_zoo_settings(name):
    shipped = load_pretrained(name)
    config = PRETRAINED_CONFIGS[name]
    assert shipped.config == config
    assert len(shipped.history) == config.epochs and not shipped.history.interrupted
    assert shipped.history.test_loss[-1] < shipped.history.test_loss[0]
    assert shipped.optimizer_state is None, "shipped files hold weights and history only, not optimiser state"


def test_every_name_has_a_file_and_nothing_else_is_loadable():
    assert {p.stem for p in PRETRAINED_DIR.glob("*.pt")} == set(pretrained_names()) | {"classifier"}
    for name, epochs in SNAPSHOTS.items():
        for epoch in epochs:
            assert len(load_pretrained(f"{name}_epoch{epoch}").history) == epoch
    with pytest.raises(ValueError, match="no pretrained model called 'classifier'"):
        load_pretrained("classifier")


def test_the_best_model_trained_within_thirty_minutes():
    assert sum(load_pretrained("best").history.seconds) < 30 * 60
