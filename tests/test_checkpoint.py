"""Checkpoints: round trips, and every way a file can be bad or a write can fail."""
import errno
import pickle

import pytest
import torch

from vae_lab import VAE, Config, History, load_checkpoint, save_checkpoint
from vae_lab.checkpoint import CHECKPOINT_FORMAT, CheckpointError


def folder_snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def saved(tmp_path):
    model = VAE(Config(latent_dim=3, hidden_dim=16))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 784)).logits.sum().backward()
    optimizer.step()
    history = History(train_loss=[2.0], train_reconstruction=[1.5], train_kl=[0.5], test_loss=[2.5],
                      test_reconstruction=[2.0], test_kl=[0.5], seconds=[0.1])
    path = tmp_path / "checkpoint.pt"
    rng = {"torch": torch.get_rng_state(), "shuffle": torch.Generator().manual_seed(7).get_state()}
    save_checkpoint(path, model, optimizer, history, rng)
    return path, model, optimizer, history, rng


def test_round_trip_keeps_weights_config_optimizer_history_and_rng(saved):
    path, model, optimizer, history, rng = saved
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.history == history
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
    assert loaded.optimizer_state["state"][0]["exp_avg"].shape == (16, 784)
    assert all(torch.equal(loaded.rng_state[k], rng[k]) for k in rng)
    assert not loaded.model.training


def test_truncated_checkpoint(saved, tmp_path):
    path = saved[0]
    path.write_bytes(path.read_bytes()[:5000])
    before = folder_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt is truncated or corrupted .*; train one with: .*, or restore the file from a backup"):
        load_checkpoint(path)
    assert folder_snapshot(tmp_path) == before


class Payload:
    """An object whose unpickling would create a file: a stand-in for running any code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_checkpoint_holding_pickled_objects_is_refused_without_running_them(tmp_path, writer):
    marker, path = tmp_path / "ran.txt", tmp_path / "evil.pt"
    payload = {"format": CHECKPOINT_FORMAT, "model": Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    before = folder_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="refused to load .*evil.pt: it holds Python objects other than tensors"):
        load_checkpoint(path)
    assert not marker.exists() and folder_snapshot(tmp_path) == before


def test_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "other.pt"
    weights = {"fc1.weight": torch.zeros(400, 784), "fc1.bias": torch.zeros(400)}
    torch.save({"format": CHECKPOINT_FORMAT, "config": Config().to_dict(), "model": weights,
                "optimizer": None, "history": History().to_dict(), "rng": None}, path)
    before = folder_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="holds weights for a different architecture than its config describes"):
        load_checkpoint(path)
    assert folder_snapshot(tmp_path) == before


def test_a_checkpoint_whose_config_does_not_match_its_weights(saved):
    path = saved[0]
    payload = torch.load(path, weights_only=True)
    payload["config"]["latent_dim"] = 20
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="different architecture .*size mismatch|different architecture"):
        load_checkpoint(path)


def test_a_file_that_is_not_a_vae_lab_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(VAE().state_dict(), path)
    before = folder_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="is not a vae_lab checkpoint .*; train one with: python -m vae_lab train"):
        load_checkpoint(path)
    assert folder_snapshot(tmp_path) == before


def test_a_checkpoint_with_nan_weights(tmp_path):
    model = VAE(Config(latent_dim=2, hidden_dim=8))
    with torch.no_grad():
        model.decoder.out.bias[3] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", model)
    before = folder_snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights in decoder.out.bias: training diverged .* lower learning rate"):
        load_checkpoint(tmp_path / "nan.pt")
    assert folder_snapshot(tmp_path) == before


def test_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*; train one with: python -m vae_lab train --out DIR"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   PermissionError(errno.EACCES, "Permission denied")])
def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_partial_file(saved, tmp_path, monkeypatch, error):
    path = saved[0]
    before = folder_snapshot(tmp_path)

    def failing_save(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError, match=f"could not write .*checkpoint.pt: {error.strerror}; free some disk space or choose a writable folder"):
        save_checkpoint(path, VAE(Config(latent_dim=3, hidden_dim=16)))
    assert folder_snapshot(tmp_path) == before
    assert load_checkpoint(path).history == saved[3]


def test_a_conv_checkpoint_refuses_mlp_weights(tmp_path):
    mlp = VAE(Config(latent_dim=4))
    save_checkpoint(tmp_path / "model.pt", mlp)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["config"]["architecture"] = "conv"
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="different architecture"):
        load_checkpoint(tmp_path / "model.pt")
