"""write_atomically: a file is replaced whole or not at all."""
import pytest

from vae_lab.files import write_atomically


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "sub" / "figure.png"
    write_atomically(target, lambda handle: handle.write(b"first"))
    write_atomically(target, lambda handle: handle.write(b"second"))
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["figure.png"]


def test_a_failed_write_keeps_the_previous_file_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "page.html"
    target.write_bytes(b"previous")

    def write_half_then_fail(handle):
        handle.write(b"half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, write_half_then_fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
