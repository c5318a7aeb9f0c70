"""Checkpoints: round trips, and every way a file can be bad or a write can fail. A file is checked in full before
anything uses it: its kind, its records, every tensor against what its config builds, the optimizer and random
states, the history, and the size of everything it would inflate."""
import errno
import gzip
import os
import pickle
import stat

import pytest
import torch
from torch import nn

from crafted_files import Storage, Tensor, write_archive
from vae_lab import VAE, Config, History, load_checkpoint, save_checkpoint
from vae_lab.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_pretrained

RETRAIN = "train one with: python -m vae_lab train --out DIR, or restore the file from a backup"


def folder_snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_step_history():
    return History(train_loss=[2.0], train_reconstruction=[1.5], train_kl=[0.5], test_loss=[2.5],
                   test_reconstruction=[2.0], test_kl=[0.5], seconds=[0.1])


@pytest.fixture
def saved(tmp_path):
    model = VAE(Config(latent_dim=3, hidden_dim=16))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 784)).logits.sum().backward()
    optimizer.step()
    history = one_step_history()
    path = tmp_path / "checkpoint.pt"
    rng = {"torch": torch.get_rng_state(), "shuffle": torch.Generator().manual_seed(7).get_state()}
    save_checkpoint(path, model, optimizer, history, rng)
    return path, model, optimizer, history, rng


@pytest.fixture
def payload(saved):
    """What the saved checkpoint holds, to be damaged and written again."""
    return torch.load(saved[0], weights_only=True)


def refused(path, match):
    """Loading ``path`` fails with one sentence matching ``match``, and the folder is left as it was."""
    before = folder_snapshot(path.parent)
    with pytest.raises(CheckpointError, match=match) as caught:
        load_checkpoint(path)
    assert len(str(caught.value).splitlines()) == 1
    assert folder_snapshot(path.parent) == before
    return str(caught.value)


def test_round_trip_keeps_weights_config_optimizer_history_and_rng(saved):
    path, model, optimizer, history, rng = saved
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.history == history
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
    assert loaded.optimizer_state["state"][0]["exp_avg"].shape == (16, 784)
    assert all(torch.equal(loaded.rng_state[k], rng[k]) for k in rng)
    assert not loaded.model.training


def test_a_hand_made_archive_of_the_same_payload_loads(saved, payload, tmp_path):
    """The crafted files below are torch's format: unchanged, the same payload loads."""
    loaded = load_checkpoint(write_archive(tmp_path / "same.pt", payload))
    assert all(torch.equal(a, b) for a, b in zip(saved[1].state_dict().values(), loaded.model.state_dict().values()))


def test_truncated_checkpoint(saved):
    path = saved[0]
    path.write_bytes(path.read_bytes()[:5000])
    refused(path, r"checkpoint.pt is truncated or corrupted .*; " + RETRAIN)


class Payload:
    """An object whose unpickling would create a file: a stand-in for running any code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer, match", [
    ("torch.save", r"refused to load .*evil.pt: it holds Python objects other than tensors and plain values "
                   r"\(io.open\), and unpickling those could run code"),
    ("pickle.dump", r"evil.pt is not a checkpoint but a Python pickle, which can run code when it is loaded \(so it "
                    r"was not opened\)")])
def test_a_checkpoint_holding_pickled_objects_is_refused_without_running_them(tmp_path, writer, match):
    marker, path = tmp_path / "ran.txt", tmp_path / "evil.pt"
    payload = {"format": CHECKPOINT_FORMAT, "model": Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    refused(path, match)
    assert not marker.exists()


@pytest.mark.parametrize("content, kind", [
    (b"", r"is empty \(0 bytes\)"),
    (b"hello world\n", r"is not a checkpoint but a text file \(it begins 'hello world'\)"),
    (b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
     r"is not a checkpoint but a text file \(it begins 'root:x:0:0:root:/root:/bin/bash'\)"),
    (b'{\n "train_loss": [1.0],\n "seconds": [1.0]\n}', r"is not a checkpoint but a training history \(JSON\), such as history.json"),
    (b'[1, 2, 3]', r"is not a checkpoint but a JSON file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a checkpoint but a PNG image"),
    (gzip.compress(b"weights"), "is not a checkpoint but gzip-compressed data"),
    (bytes(range(256)), r"is not a checkpoint but binary data of an unknown kind \(it begins with the bytes 00 01 02"),
    (b"PK\x05\x06" + bytes(18), "is not a checkpoint but an empty zip archive"),
    (b"PK\x03\x04" + bytes(100), r"is truncated or corrupted \(the zip archive has lost its end\)"),
], ids=["empty", "hello", "passwd", "history", "json", "png", "gzip", "binary", "empty-zip", "zip-start"])
def test_a_file_of_another_kind_is_named_for_what_it_is(tmp_path, content, kind):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    message = refused(path, kind)
    assert "Python objects" not in message and "could run code" not in message


def test_a_folder_a_pipe_or_a_device_given_as_the_checkpoint_is_never_read(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path} is a folder, not a checkpoint file; give the checkpoint file"):
        load_checkpoint(tmp_path)
    os.mkfifo(tmp_path / "pipe.pt")  # reading it would wait for a writer forever
    for path in (tmp_path / "pipe.pt", "/dev/zero"):
        with pytest.raises(CheckpointError, match="is not a file but a device, a pipe or a socket"):
            load_checkpoint(path)


@pytest.mark.parametrize("entry", ["optimizer", "rng", "history", "config", "model"])
def test_a_missing_entry_is_named(payload, tmp_path, entry):
    del payload[entry]
    torch.save(payload, tmp_path / "checkpoint.pt")
    refused(tmp_path / "checkpoint.pt", f"is missing its '{entry}' entry, so it is not a whole vae_lab checkpoint; "
                                         + RETRAIN)


def test_an_extra_entry_is_named(payload, tmp_path):
    payload["notes"] = "x"
    torch.save(payload, tmp_path / "checkpoint.pt")
    refused(tmp_path / "checkpoint.pt", r"has entries a vae_lab checkpoint never has \(notes\)")


def test_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "other.pt"
    weights = {"fc1.weight": torch.zeros(400, 784), "fc1.bias": torch.zeros(400)}
    torch.save({"format": CHECKPOINT_FORMAT, "config": Config().to_dict(), "model": weights,
                "optimizer": None, "history": History().to_dict(), "rng": None}, path)
    refused(path, r"holds weights for a different architecture than its config describes \(missing \['decoder")


def test_a_checkpoint_whose_config_does_not_match_its_weights(saved, payload):
    payload["config"]["latent_dim"] = 20
    torch.save(payload, saved[0])
    refused(saved[0], r"different architecture .*encoder.mu.weight is \(3, 16\), not \(20, 16\)")


def test_a_file_that_is_not_a_vae_lab_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(VAE().state_dict(), path)
    refused(path, "is not a vae_lab checkpoint .*; train one with: python -m vae_lab train")


def test_a_checkpoint_with_nan_weights(tmp_path):
    model = VAE(Config(latent_dim=2, hidden_dim=8))
    with torch.no_grad():
        model.decoder.out.bias[3] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", model)
    refused(tmp_path / "nan.pt", r"NaN or infinite weights in decoder.out.bias, so its model cannot be used: it was "
                                 r"saved after training diverged, or damaged since; retrain it")


def test_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*; train one with: python -m vae_lab train --out DIR"):
        load_checkpoint(tmp_path / "nope.pt")


DAMAGES = {
    "weight-dtype": (lambda p: p["model"].update({"encoder.mu.bias": p["model"]["encoder.mu.bias"].double()}),
                     r"different architecture .*encoder.mu.bias is torch.float64, not torch.float32"),
    "weight-not-a-tensor": (lambda p: p["model"].update({"encoder.mu.bias": [0.0, 1.0, 2.0]}),
                            r"encoder.mu.bias is a list, not a tensor"),
    "sparse-weight": (lambda p: p["model"].update({"encoder.mu.bias": p["model"]["encoder.mu.bias"].to_sparse()}),
                      r"holds a sparse tensor \(torch._utils._rebuild_sparse_tensor\), but a vae_lab checkpoint holds "
                      r"dense tensors only"),
    "moment-shape": (lambda p: p["optimizer"]["state"][0].update(exp_avg=torch.zeros(3, 3)),
                     r"has an optimizer state that does not fit the model's parameters \(exp_avg of "
                     r"encoder.hidden.weight is \(3, 3\), not \(16, 784\)\)"),
    "moment-dtype": (lambda p: p["optimizer"]["state"][1].update(exp_avg_sq=torch.zeros(16, dtype=torch.float16)),
                     r"exp_avg_sq of encoder.hidden.bias is torch.float16, not torch.float32"),
    "step-shape": (lambda p: p["optimizer"]["state"][2].update(step=torch.zeros(5)),
                   r"the step of encoder.mu.weight is \(5,\), not \(\)"),
    "moment-extra": (lambda p: p["optimizer"]["state"][0].update(momentum_buffer=torch.zeros(16, 784)),
                     r"optimizer state of encoder.hidden.weight that is not Adam's"),
    "optimizer-fewer": (lambda p: p["optimizer"]["param_groups"][0].update(params=[0, 1, 2]),
                        r"optimizer state for 3 parameters in another order, not for the model's 10"),
    "optimizer-lr": (lambda p: p["optimizer"]["param_groups"][0].update(lr=float("nan")),
                     r"optimizer setting 'lr' of nan, which Adam cannot take"),
    "moment-nan": (lambda p: p["optimizer"]["state"][4]["exp_avg"].fill_(float("nan")),
                   r"NaN or infinite values in its optimizer's exp_avg of encoder.logvar.weight while its weights are "
                   r"finite, which training never writes .*: the file was damaged; retrain it"),
    "moment-negative": (lambda p: p["optimizer"]["state"][0]["exp_avg_sq"].fill_(-1.0),
                        r"negative values in its optimizer's exp_avg_sq of encoder.hidden.weight"),
    "rng-size": (lambda p: p["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
                 r"damaged random states \(the random state 'torch' is \(3,\), not \(5056,\)\)"),
    "rng-dtype": (lambda p: p["rng"].update(shuffle=p["rng"]["shuffle"].float()),
                  r"the random state 'shuffle' is torch.float32, not torch.uint8"),
    "rng-missing": (lambda p: p["rng"].pop("shuffle"), "has random states other than the ones fit saves"),
    "history-string": (lambda p: p["history"]["test_loss"].__setitem__(0, "2.5"),
                       r"has a damaged history \(test_loss\[0\] \(epoch 1\) is '2.5', not a finite number\)"),
    "config-negative": (lambda p: p["config"].update(hidden_dim=-1),
                        r"has damaged settings \(hidden_dim must be a positive integer, got -1\)"),
    "config-unknown": (lambda p: p["config"].update(colour="red"), r"has damaged settings \(unknown settings \['colour'\]"),
}


@pytest.mark.parametrize("damage, match", DAMAGES.values(), ids=DAMAGES.keys())
def test_every_part_is_checked_against_what_the_config_builds(saved, payload, damage, match):
    damage(payload)
    torch.save(payload, saved[0])
    refused(saved[0], match)


def test_an_inflating_record_is_refused_before_anything_is_inflated(payload, tmp_path, monkeypatch):
    """64 MiB of zeros in a 70 kB record: its declared size is refused before torch.load runs."""
    payload["model"]["encoder.hidden.weight"] = Tensor(Storage("big", 2**24), (16, 784))
    path = write_archive(tmp_path / "checkpoint.pt", payload, zeros={"data/big": 2**26})
    assert path.stat().st_size < 2**20
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a file that should be refused"))
    refused(path, r"encoder.hidden.weight is a view into other data, which a saved tensor never is")


@pytest.mark.parametrize("records, tensor, match", [
    ({"data/x": bytes(64)}, Tensor(Storage("x", 2**20), (16,)), r"declares 64 bytes of tensor data in 'data/x' for a "
                                                                r"tensor of 4,194,304 bytes"),
    ({}, Tensor(Storage("absent", 16), (16,)), "refers to tensor data 'absent' that the archive does not hold"),
    ({"data/x": bytes(64), "data/spare": bytes(8)}, Tensor(Storage("x", 16), (16,)),
     r"holds tensor data that nothing in it refers to \(data/spare\)"),
    ({"data/x": bytes(64), "constants.pkl": b""}, Tensor(Storage("x", 16), (16,)),
     r"holds 'archive/constants.pkl', which no torch checkpoint holds"),
    ({"data/x": bytes(128)}, Tensor(Storage("x", 32), (16,), offset=16), "is a view into other data"),
], ids=["size-mismatch", "missing-record", "unreferenced-record", "torchscript-record", "offset-view"])
def test_tensor_records_must_be_exactly_what_the_tensors_need(payload, tmp_path, records, tensor, match):
    payload["model"]["encoder.hidden.bias"] = tensor
    refused(write_archive(tmp_path / "checkpoint.pt", payload, records), match)


def test_a_record_claiming_more_than_its_compressed_data_can_hold(payload, tmp_path):
    path = write_archive(tmp_path / "checkpoint.pt", payload)
    data = bytearray(path.read_bytes())
    directory = data.rindex(b"archive/data/0") - 46  # the central directory entry of the first tensor record
    data[directory + 24:directory + 28] = (2**31).to_bytes(4, "little")  # its uncompressed size
    path.write_bytes(bytes(data))
    refused(path, r"is truncated or corrupted \('archive/data/0' declares 2,147,483,648 bytes from 50,176 bytes")


def test_a_flipped_byte_in_the_tensor_data_is_caught_by_its_crc(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    start = data.index(b"archive/data/0") + len("archive/data/0")  # the first local header's name, then the data
    data[start + 200] ^= 0x40
    path.write_bytes(bytes(data))
    refused(path, r"is corrupted: its record 'data/0' no longer holds the bytes it was written with \(Bad CRC-32")


def test_an_archive_whose_end_records_disagree_is_refused(saved, tmp_path):
    """Data in front of the archive: zipfile and torch would then read different directories."""
    path = tmp_path / "shifted.pt"
    path.write_bytes(saved[0].read_bytes()[:4] + saved[0].read_bytes())
    refused(path, r"is truncated or corrupted \(the zip archive has lost its end\)")


def test_a_central_directory_beyond_the_limit_is_refused_unread(saved, monkeypatch):
    monkeypatch.setattr("vae_lab.checkpoint.DIRECTORY_LIMIT", 100)
    refused(saved[0], r"lists [\d,]+ bytes of archive records, far more than a vae_lab checkpoint has, so it was not opened")


class WithBuffers(VAE):
    """A stand-in for a new model kind that `build_model` could build: a parameter and buffers of other dtypes."""

    def __init__(self, config):
        super().__init__(config)
        self.codebook = nn.Parameter(torch.zeros(4, config.latent_dim))
        self.register_buffer("usage", torch.zeros(4, dtype=torch.int64))
        self.register_buffer("alive", torch.ones(4, dtype=torch.bool))


def test_the_checks_follow_whatever_build_model_builds(tmp_path, monkeypatch):
    monkeypatch.setattr("vae_lab.checkpoint.build_model", WithBuffers)
    model = WithBuffers(Config(latent_dim=3, hidden_dim=16))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 784)).logits.sum().backward()
    model.codebook.grad = torch.ones_like(model.codebook)
    optimizer.step()
    save_checkpoint(tmp_path / "checkpoint.pt", model, optimizer, one_step_history())
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(loaded.model, WithBuffers) and loaded.model.usage.dtype == torch.int64
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    payload["model"]["usage"] = payload["model"]["usage"].int()
    torch.save(payload, tmp_path / "checkpoint.pt")
    refused(tmp_path / "checkpoint.pt", r"usage is torch.int32, not torch.int64")
    payload["model"]["usage"] = payload["model"]["usage"].long()
    payload["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3, 4)  # the model's own parameter comes first
    torch.save(payload, tmp_path / "checkpoint.pt")
    refused(tmp_path / "checkpoint.pt", r"exp_avg of codebook is \(3, 4\), not \(4, 3\)")


def test_a_shipped_model_must_be_the_one_zoo_py_lists(monkeypatch):
    monkeypatch.setitem(__import__("vae_lab.zoo").zoo.PRETRAINED_CONFIGS, "vae", Config(latent_dim=5))
    with pytest.raises(CheckpointError, match=r"vae.pt holds a model trained with other settings than zoo.py lists "
                                              r"for 'vae'; reinstall vae_lab, or retrain it with: python scripts/"):
        load_pretrained("vae")


def test_save_refuses_a_history_it_could_not_read_back(tmp_path):
    history = one_step_history()
    history.test_loss[0] = float("nan")
    with pytest.raises(ValueError, match=r"test_loss\[0\] \(epoch 1\) is nan, not a finite number"):
        save_checkpoint(tmp_path / "checkpoint.pt", VAE(Config(latent_dim=2, hidden_dim=8)), history=history)
    assert list(tmp_path.iterdir()) == []


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


def test_a_rewritten_checkpoint_keeps_its_permissions(saved):
    path, model = saved[0], saved[1]
    os.chmod(path, 0o600)
    save_checkpoint(path, model)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_conv_checkpoint_refuses_mlp_weights(tmp_path):
    mlp = VAE(Config(latent_dim=4))
    save_checkpoint(tmp_path / "model.pt", mlp)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["config"]["architecture"] = "conv"
    torch.save(payload, tmp_path / "model.pt")
    refused(tmp_path / "model.pt", "different architecture")


def test_a_vq_vae_round_trips_with_its_codebook_and_use_counts_and_a_damaged_count_is_refused(tmp_path):
    from vae_lab.model import VQVAE, build_model

    model = build_model(Config(architecture="conv", codebook_size=5, latent_dim=3)).train()
    model.vq_parts(torch.rand(4, 784))  # a training pass counts the batches each code went unused
    save_checkpoint(tmp_path / "vq.pt", model, history=one_step_history())
    loaded = load_checkpoint(tmp_path / "vq.pt").model
    assert isinstance(loaded, VQVAE) and torch.equal(loaded.quantizer.batches_unused, model.quantizer.batches_unused)
    assert torch.equal(loaded.quantizer.codebook, model.quantizer.codebook)
    payload = torch.load(tmp_path / "vq.pt", weights_only=True)
    payload["model"]["quantizer.batches_unused"] = payload["model"]["quantizer.batches_unused"].float()
    torch.save(payload, tmp_path / "vq.pt")
    refused(tmp_path / "vq.pt", r"quantizer.batches_unused is torch.float32, not torch.int64")
