"""History: per-epoch losses that round-trip through JSON, and a damaged file named."""
import pytest

from vae_lab import History


def folder_snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_history_json_round_trip_and_a_damaged_file(tmp_path):
    history = History(train_loss=[3.0, 2.0], train_reconstruction=[2.0, 1.5], train_kl=[1.0, 0.5],
                      test_loss=[3.1, 2.1], test_reconstruction=[2.1, 1.6], test_kl=[1.0, 0.5], seconds=[1.0, 1.0])
    history.save(tmp_path / "history.json")
    assert History.load(tmp_path / "history.json") == history
    (tmp_path / "broken.json").write_text('{"train_loss": [3.0, 2.')
    before = folder_snapshot(tmp_path)
    with pytest.raises(ValueError, match="broken.json is not a valid vae_lab history .*; delete it and retrain"):
        History.load(tmp_path / "broken.json")
    assert folder_snapshot(tmp_path) == before
    (tmp_path / "wrong.json").write_text('{"loss": [1]}')
    with pytest.raises(ValueError, match="wrong.json is not a valid vae_lab history"):
        History.load(tmp_path / "wrong.json")
