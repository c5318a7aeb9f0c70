"""The MNIST classifier behind the sample-quality numbers: shipped accuracy, saving and loading, bad files."""
import pickle

import pytest
import torch

from vae_lab.classifier import (CLASSIFIER_FORMAT, CLASSIFIER_PATH, Classifier, accuracy, load_classifier,
                                save_classifier, train_classifier)
from vae_lab.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def shipped():
    return load_classifier()


def test_shipped_classifier_is_at_least_99_percent_accurate_on_the_test_set(shipped, mnist):
    assert not shipped.training
    measured = accuracy(shipped, mnist.test_images, mnist.test_labels)
    assert measured >= 0.99
    stored = torch.load(CLASSIFIER_PATH, weights_only=True)
    assert stored["format"] == CLASSIFIER_FORMAT
    assert stored["test_accuracy"] == pytest.approx(measured, abs=1e-4)
    assert CLASSIFIER_PATH.stat().st_size < 2_000_000


def test_features_and_logits_have_the_documented_shapes_for_both_image_layouts(shipped, mnist):
    flat = mnist.test_images[:8]
    square = flat.reshape(8, 1, 28, 28)
    assert shipped.features(flat).shape == (8, 128)
    assert (shipped.features(flat) >= 0).all()  # after a ReLU
    assert torch.equal(shipped(flat), shipped(square))
    assert shipped(flat).shape == (8, 10)


def test_bad_images_are_refused_with_a_fix(shipped):
    with pytest.raises(ValueError, match="flatten 28×28 images first"):
        shipped(torch.rand(4, 729))
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        shipped(torch.zeros(4, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match="one label per image"):
        accuracy(shipped, torch.rand(4, 784), torch.zeros(3, dtype=torch.int64))


def test_loading_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    load_classifier()
    assert torch.equal(torch.get_rng_state(), state)


def test_save_and_load_round_trip_gives_identical_logits(tmp_path, shipped, mnist):
    model = Classifier()
    with torch.no_grad():
        model.out.bias.add_(1.0)  # differ from a freshly initialised classifier
    path = tmp_path / "classifier.pt"
    save_classifier(path, model, test_accuracy=0.5)
    loaded = load_classifier(path)
    assert not loaded.training
    images = mnist.test_images[:16]
    assert torch.equal(loaded(images), model.eval()(images))
    assert torch.load(path, weights_only=True)["test_accuracy"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["classifier.pt"]  # no temporary file left behind


def test_training_learns_and_is_repeatable_without_touching_the_global_rng(small):
    data = small.subset(train_size=600)
    state = torch.get_rng_state()
    first = train_classifier(data, epochs=2, batch_size=30)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_classifier(data, epochs=2, batch_size=30)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not first.training
    assert accuracy(first, small.test_images, small.test_labels) > 0.6  # 600 images, 40 steps: far above chance (0.1)


def test_a_missing_file_names_the_script_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/train_classifier.py"):
        load_classifier(tmp_path / "nothing.pt")


def test_a_pickled_non_tensor_file_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": CLASSIFIER_FORMAT, "model": Classifier}, protocol=2))
    with pytest.raises(CheckpointError, match="is not a classifier but a Python pickle, which can run code"):
        load_classifier(path)
    torch.save({"format": CLASSIFIER_FORMAT, "model": Classifier}, path)
    with pytest.raises(CheckpointError, match=r"refused to load .*\(vae_lab.classifier.Classifier\)"):
        load_classifier(path)


def test_truncated_foreign_and_mismatched_files_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    save_classifier(good, Classifier(), 0.99)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_classifier(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a vae_lab classifier"):
        load_classifier(foreign)
    mismatched = tmp_path / "mismatched.pt"
    torch.save({"format": CLASSIFIER_FORMAT, "model": {"out.weight": torch.zeros(2, 2)}, "test_accuracy": 0.0}, mismatched)
    with pytest.raises(CheckpointError, match="different architecture"):
        load_classifier(mismatched)
