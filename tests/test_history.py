"""History: per-epoch losses that round-trip through JSON; a file is checked in full (types, lengths, values) and
never written unless it could be read back."""
import json
import os
import stat

import pytest

from vae_lab import History
from vae_lab.history import HistoryError


def folder_snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def two_epochs() -> dict:
    return History(train_loss=[3.0, 2.0], train_reconstruction=[2.0, 1.5], train_kl=[1.0, 0.5], test_loss=[3.1, 2.1],
                   test_reconstruction=[2.1, 1.6], test_kl=[1.0, 0.5], seconds=[1.0, 1.0]).to_dict()


def test_history_json_round_trip_and_a_damaged_file(tmp_path):
    history = History.from_dict(two_epochs())
    history.save(tmp_path / "history.json")
    assert History.load(tmp_path / "history.json") == history
    (tmp_path / "broken.json").write_text('{"train_loss": [3.0, 2.')
    before = folder_snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"broken.json is not a valid vae_lab history .*; write it again from the run's "
                                         r"checkpoint with load_checkpoint\('.*checkpoint.pt'\).history.save"):
        History.load(tmp_path / "broken.json")
    assert folder_snapshot(tmp_path) == before
    (tmp_path / "wrong.json").write_text('{"loss": [1]}')
    with pytest.raises(ValueError, match="wrong.json is not a valid vae_lab history"):
        History.load(tmp_path / "wrong.json")


def edit(values, **changes):
    return {**values, **changes}


def with_item(values, name, index, value):
    series = list(values[name])
    series[index] = value
    return {**values, name: series}


BAD = {
    "empty": ({}, r"missing \['interrupted', 'seconds', 'test_kl'"),
    "not-a-dict": ([1, 2], "a history is a dictionary of per-epoch lists, not a list"),
    "seconds-null": (with_item(two_epochs(), "seconds", 0, None), r"seconds\[0\] \(epoch 1\) is None, not a finite number"),
    "loss-string": (with_item(two_epochs(), "test_loss", 1, "2.1"), r"test_loss\[1\] \(epoch 2\) is '2.1', not a finite"),
    "loss-bool": (with_item(two_epochs(), "train_kl", 0, True), r"train_kl\[0\] \(epoch 1\) is True, not a finite"),
    "huge-int": (with_item(two_epochs(), "train_loss", 0, 10**400), r"train_loss\[0\] \(epoch 1\) is 1000.*, not a finite"),
    "nested": (edit(two_epochs(), seconds=[[1.0], [1.0]]), r"seconds\[0\] \(epoch 1\) is a list, not a finite number"),
    "interrupted-yes": (edit(two_epochs(), interrupted="yes"), "'interrupted' must be true or false, not 'yes'"),
    "series-not-list": (edit(two_epochs(), train_loss=3.0), "'train_loss' must be a list of numbers, one per epoch, not 3.0"),
    "lengths": (edit(two_epochs(), seconds=[1.0]), r"its lists differ in length \(train_loss: 2, .*seconds: 1\)"),
    "sum": (with_item(two_epochs(), "test_loss", 0, 9.0), r"test_loss of epoch 1 is 9, not its reconstruction 2.1 \+ KL 1"),
    "kl-negative": (with_item(with_item(two_epochs(), "train_kl", 1, -1.0), "train_loss", 1, 0.5),
                    "train_kl of epoch 2 is -1, but a KL divergence is never negative"),
    "time-backwards": (with_item(two_epochs(), "seconds", 1, -3.0), "seconds of epoch 2 is -3, but time does not run"),
    "unknown-key": (edit(two_epochs(), lr=[1e-3, 1e-3]), r"unknown keys \['lr'\]"),
}


@pytest.mark.parametrize("values, match", BAD.values(), ids=BAD.keys())
def test_a_history_is_checked_in_full(values, match):
    with pytest.raises(HistoryError, match=match):
        History.from_dict(values)


@pytest.mark.parametrize("text, match", [
    ('{"train_loss": [NaN]}', "it holds NaN, which is not a number JSON allows"),
    ("[" * 100_000, "not JSON"),
    (b"\xff\xfe{}", "not JSON"),
], ids=["nan-literal", "deep", "not-utf8"])
def test_a_file_that_json_cannot_read_as_a_history_is_one_sentence(tmp_path, text, match):
    path = tmp_path / "history.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(HistoryError, match=f"history.json is not a valid vae_lab history .*{match}"):
        History.load(path)


def test_an_oversized_file_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr("vae_lab.history.HISTORY_FILE_LIMIT", 10)
    path = tmp_path / "history.json"
    History.from_dict(two_epochs()).save(path)
    with pytest.raises(HistoryError, match="far more than any history"):
        History.load(path)


def test_a_folder_or_a_pipe_given_as_a_history(tmp_path):
    with pytest.raises(HistoryError, match="is a folder, not a history file"):
        History.load(tmp_path)
    os.mkfifo(tmp_path / "history.json")  # reading it would wait for a writer forever
    with pytest.raises(HistoryError, match="is not a file but a device, a pipe or a socket"):
        History.load(tmp_path / "history.json")


def test_save_writes_nothing_it_could_not_read_back_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "history.json"
    History.from_dict(two_epochs()).save(path)
    before = folder_snapshot(tmp_path)
    broken = History.from_dict(two_epochs())
    broken.seconds[1] = float("inf")
    with pytest.raises(HistoryError, match=r"refused to write .*history.json: seconds\[1\] \(epoch 2\) is inf"):
        broken.save(path)
    assert folder_snapshot(tmp_path) == before


def test_a_rewritten_history_keeps_its_permissions_and_plain_json(tmp_path):
    path = tmp_path / "history.json"
    History.from_dict(two_epochs()).save(path)
    os.chmod(path, 0o600)
    History.from_dict(edit(two_epochs(), interrupted=True)).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["interrupted"] is True
