"""Checkpoints: one file holds a model's settings, weights and history, and what resuming needs (optimizer and
random-number states). Written atomically; read only after the whole file has been checked, so that no file,
however crafted, can crash the process, hang it or make it allocate more than the model it describes.

Reading a file of tensors (`read_tagged_file`) goes in three steps:
1. the archive: a torch zip archive (else one sentence on what the file is instead), torch's records and nothing
   else, its central directory and pickle of bounded size, no Python object but dicts, lists, numbers, strings and
   dense tensors; nothing is inflated yet;
2. the outline: the pickle unpickled by torch's own weights-only unpickler with every tensor on the "meta" device
   (shapes and dtypes, no data), checked against what the stored settings build: every entry, every tensor's
   dtype, layout and shape, the optimizer state against the parameters, the random states, the history. Each
   tensor's record in the archive must declare exactly the bytes its tensor needs, so the data that step 3 inflates
   is exactly the model's;
3. the values: every record's CRC (torch checks none), ``torch.load(weights_only=True)`` of that same file, then
   every weight, Adam moment and random state checked for what a shape cannot show (NaN, infinities, a generator
   state torch refuses).
"""
from __future__ import annotations

import errno
import io
import pickle
import pickletools
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import torch
from torch._weights_only_unpickler import Unpickler as WeightsOnlyUnpickler  # what torch.load(weights_only=True) runs

from .config import Config, LabError
from .files import write_atomically
from .history import History, HistoryError, describe
from .model import VAE, build_model, choose_device
from .zoo import PRETRAINED_CONFIGS, pretrained_names

CHECKPOINT_FORMAT = "vae_lab.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"  # the file a run folder keeps its checkpoint in
CHECKPOINT_ENTRIES = ("format", "config", "model", "optimizer", "history", "rng")
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
RETRAIN = "train one with: python -m vae_lab train --out DIR"

# What a file of tensors is held to before any of it is inflated; torch.save writes far less.
DIRECTORY_LIMIT = 4 * 2**20  # bytes of zip central directory: about 40,000 records
PICKLE_LIMIT = 16 * 2**20  # bytes of data.pkl: names, settings and history (a 1,000-epoch run writes about 100 kB)
RECORD_LIMIT = 4096  # bytes of each of torch's bookkeeping records
DEFLATE_RATIO = 1032  # the most that deflate can expand: a record declaring more is lying about its size
TORCH_RECORDS = {"data.pkl", "byteorder", "version", ".data/version", ".data/serialization_id", ".format_version",
                 ".storage_alignment"}
TENSOR_RECORD = re.compile(r"data/(\w+)")
PLAIN_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
ALLOWED_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2",
                   *(f"torch {kind}Storage" for kind in PLAIN_STORAGES)}
TENSOR_KINDS = {"_rebuild_sparse_tensor": "a sparse tensor", "_get_layout": "a sparse tensor",
                "_rebuild_qtensor": "a quantized tensor", "_rebuild_nested_tensor": "a nested tensor",
                "Parameter": "an nn.Parameter", "_rebuild_parameter": "an nn.Parameter",
                "_rebuild_parameter_with_state": "an nn.Parameter", "_rebuild_meta_tensor_no_storage": "a meta tensor",
                "_rebuild_wrapper_subclass": "a tensor subclass", "_rebuild_from_type_v2": "a tensor subclass",
                "_rebuild_device_tensor_from_numpy": "a NumPy array", "_rebuild_tensor": "a tensor in torch's old format",
                "_rebuild_device_tensor_from_cpu_tensor": "a tensor rebuilt on a device",
                "_rebuild_tensor_v3": "a tensor in a newer format"}  # what torch's other rebuilders make
HARMLESS = {"collections Counter", "builtins set", "builtins bytearray", "builtins complex", "_codecs encode"}
CODE_OPCODES = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}  # ways a pickle names code other than GLOBAL
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
              b"%PDF": "a PDF document", b"\x1f\x8b": "gzip-compressed data", b"BZh": "bzip2-compressed data",
              b"\xfd7zXZ\x00": "xz-compressed data", b"\x7fELF": "a compiled program (ELF)",
              b"\x93NUMPY": "a NumPy .npy array", b"PK\x05\x06": "an empty zip archive",
              b"\x89HDF": "an HDF5 file (such as a Keras model)"}


class CheckpointError(LabError, RuntimeError):
    """A checkpoint could not be read or written; the message names the file and the fix."""


class Damaged(Exception):
    """Raised inside the checks of a file: what is wrong with it, completed by `read_tagged_file` into one sentence
    that names the file and the fix."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its config and history, and what resuming needs."""

    model: VAE
    config: Config
    history: History
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


def save_checkpoint(path: str | Path, model: VAE, optimizer: torch.optim.Optimizer | None = None,
                    history: History | None = None, rng_state: dict[str, Any] | None = None) -> None:
    """Write weights, config, optimizer state, history and RNG states atomically to ``path``."""
    history = history or History()
    History.from_dict(history.to_dict())  # nothing is written that could not be read back
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        # each tensor on its own (a view would carry all of the data it views into the file)
        "model": {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": history.to_dict(),
        "rng": rng_state,
    }
    path = Path(path)
    serialized = io.BytesIO()  # in memory first: the file write is then one plain write with a plain OSError
    try:
        torch.save(payload, serialized)
        write_atomically(path, lambda handle: handle.write(serialized.getbuffer()))
    except OSError as error:
        raise CheckpointError(f"could not write {path}: {write_failure(error, path, serialized.tell())}") from None


def write_failure(error: OSError, path: Path, size: int) -> str:
    """Why writing ``size`` bytes to ``path`` failed, and the fix, in the user's terms."""
    if error.errno == errno.EISDIR:
        return "that name is a folder; give a file name"
    unchanged = "any earlier checkpoint there is unchanged"
    if error.errno in (errno.ENOSPC, errno.EDQUOT) and path.parent.is_dir():
        free = shutil.disk_usage(path.parent).free
        unchanged = (f"it needs {size / 2**20:.1f} MB and {free / 2**20:.1f} MB are free in {path.parent}; "
                     + unchanged)
    return f"{error.strerror or error}; free some disk space or choose a writable folder ({unchanged})"


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 160 characters), or its type when the message is empty."""
    lines = str(error).strip().splitlines()
    return lines[0][:160] if lines else type(error).__name__


# Step 1: the archive.

def file_kind(head: bytes) -> str:
    """What a file that is not a zip archive is, judged from its first bytes: 'a PNG image', 'a text file (it begins
    'root:x:0:0')', ..."""
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle, which can run code when it is loaded (so it was not opened)"
    text = head.decode("utf-8", errors="ignore")  # a character cut at the end of ``head`` is dropped
    if head and len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c in "\t\n\r\f" for c in text):
        if '"train_loss"' in text:
            return "a training history (JSON), such as history.json"
        if text.lstrip()[:1] in ("{", "["):
            return "a JSON file"
        begins = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"a text file (it begins {begins!r})" if begins else "a text file of blank lines"
    return f"binary data of an unknown kind (it begins with the bytes {head[:8].hex(' ')})"


def central_directory_size(handle: BinaryIO, size: int) -> int | None:
    """The bytes of a zip archive's central directory, from its end records; None if the archive has no end record,
    or if its end records disagree on where the directory lies (then zipfile and torch would read different ones)."""
    start = max(0, size - (22 + 0xFFFF))
    handle.seek(start)
    tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return None
    directory_end = start + end
    directory, offset = (int.from_bytes(tail[end + at:end + at + 4], "little") for at in (12, 16))
    locator = tail[end - 20:end] if end >= 20 else b""
    if locator[:4] == b"PK\x06\x07":  # zip64: the sizes live in a record just before its locator
        directory_end = start + end - 20 - 56
        handle.seek(max(0, directory_end))
        record = handle.read(56)
        if directory_end < 0 or record[:4] != b"PK\x06\x06" \
                or int.from_bytes(locator[8:16], "little") != directory_end:
            return None
        directory, offset = (int.from_bytes(record[at:at + 8], "little") for at in (40, 48))
    return directory if offset + directory == directory_end else None


class Archive:
    """A torch zip archive opened for checking: its records listed and its pickle read, no tensor inflated."""

    def __init__(self, path: Path, kind: str, retrain: str) -> None:
        self.path, self.kind, self.retrain = path, kind, retrain
        self.damaged_fix = f"{retrain}, or restore the file from a backup"
        if path.is_dir():
            raise self.refuse(f"is a folder, not a {kind} file", f"give the {kind} file itself")
        if not path.exists():
            raise FileNotFoundError(f"no {kind} at {path}; {retrain}")
        if not path.is_file():  # never opened: reading a pipe or a device could wait forever
            raise self.refuse("is not a file but a device, a pipe or a socket", f"give the {kind} file itself")
        self.size = path.stat().st_size
        if self.size == 0:
            raise self.refuse("is empty (0 bytes), probably from a disk that filled up or a copy that failed",
                              self.damaged_fix)
        try:
            self.handle = path.open("rb")
        except OSError as error:
            raise self.refuse(f"cannot be read ({error.strerror or error})", "check its permissions") from None
        try:
            self._open()
        except BaseException:
            self.handle.close()
            raise

    def refuse(self, problem: str, fix: str | None = None) -> CheckpointError:
        """The one-sentence error for this file: its path, ``problem`` and ``fix`` (by default: retrain or restore)."""
        return CheckpointError(f"{self.path} {problem}; {fix or self.damaged_fix}")

    def _open(self) -> None:
        head = self.handle.read(512)
        if not head.startswith(b"PK\x03\x04"):
            raise self.refuse(f"is not a {self.kind} but {file_kind(head)}",
                              f"give the {self.kind} file instead, or {self.retrain}")
        directory = central_directory_size(self.handle, self.size)
        if directory is None:
            raise self.refuse("is truncated or corrupted (the zip archive has lost its end)")
        if directory > DIRECTORY_LIMIT:
            raise self.refuse(f"lists {directory:,} bytes of archive records, far more than a vae_lab {self.kind} "
                              "has, so it was not opened")
        try:
            self.zip = zipfile.ZipFile(self.handle)
            self.records = self._check_records(self.zip.infolist())
            pickled = self.records["data.pkl"]
            with self.zip.open(pickled) as handle:
                self.pickle = handle.read(PICKLE_LIMIT + 1)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError) as error:  # what zipfile raises for a damaged archive (RuntimeError: encrypted)
            raise self.refuse(f"is truncated or corrupted ({first_line(error)})") from None
        self._check_globals()

    def _check_records(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """torch's records, each of a size it can have, under one folder; refused: anything else."""
        if not infos:
            raise self.refuse(f"is not a {self.kind} but an empty zip archive", f"give the {self.kind} file instead, "
                              f"or {self.retrain}")
        folder = infos[0].filename.split("/")[0] + "/"
        records: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename.removeprefix(folder)
            if not info.filename.startswith(folder) or (name not in TORCH_RECORDS and not TENSOR_RECORD.fullmatch(name)):
                raise self.refuse(f"holds {info.filename!r}, which no torch checkpoint holds, so it was not written "
                                  f"by vae_lab")
            if name in records:
                raise self.refuse(f"holds the record {info.filename!r} twice")
            if info.flag_bits & 1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.refuse(f"holds {info.filename!r} encrypted or compressed in a way torch never writes")
            limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_RATIO) + 64
            if info.file_size > limit or info.header_offset + info.compress_size > self.size:
                raise self.refuse(f"is truncated or corrupted ({info.filename!r} declares {info.file_size:,} bytes "
                                  f"from {info.compress_size:,} bytes of data)")
            if name in TORCH_RECORDS and info.file_size > (PICKLE_LIMIT if name == "data.pkl" else RECORD_LIMIT):
                raise self.refuse(f"declares {info.file_size:,} bytes for its record {name!r}, far more than a "
                                  f"vae_lab {self.kind} needs, so it was not inflated")
            records[name] = info
        if "data.pkl" not in records:
            raise self.refuse(f"is a zip archive but not a torch {self.kind} (it has no data.pkl)",
                              f"give the {self.kind} file instead, or {self.retrain}")
        return records

    def _check_globals(self) -> None:
        """Refuse a pickle that names any Python object but dicts and dense tensors, before unpickling anything."""
        try:
            for opcode, argument, _ in pickletools.genops(self.pickle):
                if opcode.name == "GLOBAL":
                    argument = argument.replace("__builtin__ ", "builtins ")  # pickle protocol 2's name for builtins
                    if argument not in ALLOWED_GLOBALS:
                        self._refuse_global(*argument.split(" ", 1))
                elif opcode.name in CODE_OPCODES:
                    self._refuse_global(opcode.name, "")
        except CheckpointError:
            raise
        except Exception as error:  # pickletools meets a damaged pickle in many ways: all mean the same here
            raise self.refuse(f"is truncated or corrupted (its data.pkl: {first_line(error)})") from None

    def _refuse_global(self, module: str, name: str) -> None:
        """The sentence for a pickle that names ``module.name``: another kind of tensor, a harmless object that no
        checkpoint holds, or anything else (which unpickling could run)."""
        shown = f"{module}.{name}" if name else module
        tensor = "a quantized tensor" if name.startswith(("QInt", "QUInt")) else TENSOR_KINDS.get(name)
        if module.startswith("torch") and tensor:
            raise self.refuse(f"holds {tensor} ({shown}), but a vae_lab {self.kind} holds dense tensors only, so it "
                              "was not written by vae_lab")
        if module.startswith("torch") or f"{module} {name}" in HARMLESS:
            raise self.refuse(f"holds {shown}, an object a vae_lab {self.kind} never holds (only dictionaries, lists, "
                              "numbers, strings and dense tensors), so it was not written by vae_lab")
        raise CheckpointError(f"refused to load {self.path}: it holds Python objects other than tensors and plain "
                              f"values ({shown}), and unpickling those could run code. Only load {self.kind}s written "
                              "by vae_lab")

    # Step 2: the outline.

    def outline(self) -> Any:
        """The pickled payload with every tensor on the meta device: shapes, dtypes and layouts, no data.

        Every tensor record the pickle refers to must exist and declare exactly its tensor's bytes."""
        self.storages: dict[str, torch.storage.TypedStorage] = {}
        self.storage_bytes: dict[str, int] = {}

        def meta_storage(pid: Any) -> torch.storage.TypedStorage:
            if not (isinstance(pid, tuple) and len(pid) == 5):
                raise Damaged("holds a tensor reference of a kind torch never writes")
            _, storage_type, key, _, numel = pid
            dtype = torch.uint8 if storage_type is torch.UntypedStorage else getattr(storage_type, "dtype", None)
            if not isinstance(key, str) or not isinstance(dtype, torch.dtype) or type(numel) is not int or numel < 0:
                raise Damaged("holds a tensor reference of a kind torch never writes")
            nbytes = numel * dtype.itemsize
            record = self.records.get(f"data/{key}")
            if record is None:
                raise Damaged(f"refers to tensor data {key!r} that the archive does not hold")
            if record.file_size != nbytes:
                raise Damaged(f"declares {record.file_size:,} bytes of tensor data in 'data/{key}' for a tensor of "
                              f"{nbytes:,} bytes")
            if key in self.storages:
                if self.storages[key].dtype != dtype:
                    raise Damaged(f"reads the tensor data 'data/{key}' as two different dtypes")
                return self.storages[key]
            self.storage_bytes[key] = nbytes
            self.storages[key] = torch.storage.TypedStorage(
                wrap_storage=torch.UntypedStorage(nbytes, device="meta"), dtype=dtype, _internal=True)
            return self.storages[key]

        unpickler = WeightsOnlyUnpickler(io.BytesIO(self.pickle), encoding="utf-8")
        unpickler.persistent_load = meta_storage
        try:
            payload = unpickler.load()
        except Damaged as problem:
            raise self.refuse(str(problem)) from None
        except Exception as error:  # a crafted pickle fails in torch's unpickler in many ways: all mean the same here
            raise self.refuse(f"is truncated or corrupted (its data.pkl: {first_line(error)})") from None
        unused = sorted(set(name for name in self.records if TENSOR_RECORD.fullmatch(name))
                        - {f"data/{key}" for key in self.storages})
        if unused:
            raise self.refuse(f"holds tensor data that nothing in it refers to ({', '.join(unused[:3])}), so it was "
                              "not written by vae_lab")
        return payload

    # Step 3: the values.

    def load(self, checked: Iterable[torch.Tensor]) -> Any:
        """``torch.load(weights_only=True)`` of the file, once the ``checked`` tensors of the outline (each dense and
        owning exactly its data) account for every byte of tensor data the archive would inflate."""
        needed = sum(tensor.untyped_storage().nbytes() for tensor in checked)
        declared = sum(self.storage_bytes.values())
        if declared > needed:
            raise self.refuse(f"holds {declared - needed:,} bytes of tensor data beyond what its {self.kind} needs, "
                              "so it was not inflated")
        for name, record in self.records.items():  # torch does not check the CRCs; a disk's damage must not load
            try:
                with self.zip.open(record) as handle:
                    while handle.read(2**20):
                        pass
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
                raise self.refuse(f"is corrupted: its record {name!r} no longer holds the bytes it was written with "
                                  f"({first_line(error)})") from None
        self.handle.seek(0)
        try:
            return torch.load(self.handle, map_location="cpu", weights_only=True)
        except Exception as error:  # the archive was checked; what torch still finds is damage in the data itself
            raise self.refuse(f"is truncated or corrupted ({first_line(error)})") from None

    def close(self) -> None:
        self.handle.close()


def read_tagged_file(path: str | Path, format_tag: str, kind: str, retrain: str,
                     check: Callable[[dict[str, Any]], list[torch.Tensor]]) -> dict[str, Any]:
    """Load a file of tensors and plain values tagged ``format_tag``, checked in the three steps above.

    ``check(outline)`` sees the payload with its tensors on the meta device, raises `Damaged` for what is wrong and
    returns the tensors it checked. Every failure is one sentence naming the file, what is wrong, and ``retrain``.
    """
    archive = Archive(Path(path), kind, retrain)
    try:
        outline = archive.outline()
        if not isinstance(outline, dict) or outline.get("format") != format_tag:
            raise archive.refuse(f"is not a vae_lab {kind} (no '{format_tag}' format tag)", retrain)
        try:
            checked = check(outline)
        except Damaged as problem:
            raise archive.refuse(str(problem)) from None
        return archive.load(checked)
    finally:
        archive.close()


def require_entries(payload: dict[str, Any], entries: Iterable[str], kind: str) -> None:
    """Raise `Damaged` unless ``payload`` has exactly the top-level ``entries``."""
    missing = [name for name in entries if name not in payload]
    extra = sorted(map(str, set(payload) - set(entries)))
    if missing:
        raise Damaged(f"is missing its {' and '.join(map(repr, missing))} entr{'ies' if len(missing) > 1 else 'y'}, so "
                      f"it is not a whole vae_lab {kind}")
    if extra:
        raise Damaged(f"has entries a vae_lab {kind} never has ({', '.join(extra[:3])})")


def tensor_problem(name: str, found: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> str | None:
    """How ``found`` differs from a dense tensor of ``dtype`` and ``shape`` that owns exactly its data, or None."""
    if not isinstance(found, torch.Tensor):
        return f"{name} is {describe(found)}, not a tensor"
    if found.layout != torch.strided:
        return f"{name} is a {found.layout} tensor, not a dense one"
    if found.dtype != dtype:
        return f"{name} is {found.dtype}, not {dtype}"
    if tuple(found.shape) != tuple(shape):
        return f"{name} is {tuple(found.shape)}, not {tuple(shape)}"
    if not found.is_contiguous() or found.storage_offset() != 0 \
            or found.untyped_storage().nbytes() != found.numel() * found.element_size():
        return f"{name} is a view into other data, which a saved tensor never is"
    return None


def tensors_problem(found: Any, expected: dict[str, torch.Tensor]) -> str | None:
    """How the dictionary ``found`` differs from the tensors ``expected`` (names, dtypes, layouts, shapes), or None."""
    if not isinstance(found, dict):
        return f"they are {describe(found)}, not a dictionary of tensors"
    missing, unexpected = sorted(set(expected) - set(found)), sorted(map(str, set(found) - set(expected)))
    if missing or unexpected:
        return f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    wrong = [problem for name, tensor in expected.items()
             if (problem := tensor_problem(name, found[name], tensor.dtype, tuple(tensor.shape)))]
    return "; ".join(wrong[:3]) or None


def meta_model(config: Config) -> VAE:
    """The model ``config`` builds, on torch's "meta" device: every name, shape and dtype, no memory."""
    with torch.device("meta"):
        return build_model(config)


ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")  # the last only with amsgrad
ADAM_FLAGS = ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay")


def adam_setting_problem(key: Any, value: Any) -> str | None:
    """Why Adam could not take ``value`` for its setting ``key`` (lr, betas, eps, weight_decay, a flag), or None."""
    if key in ADAM_FLAGS:
        fits = value is None or isinstance(value, bool)
    elif key == "betas":
        fits = isinstance(value, (tuple, list)) and len(value) == 2 and all(_number_in(v, 0, 1) for v in value)
    elif key in ("lr", "eps", "weight_decay"):
        fits = _number_in(value, 0, float("inf"))
    else:
        fits = key == "params" or value is None or isinstance(value, (bool, int, float, str))
    return None if fits else f"has an optimizer setting {describe(key)} of {describe(value)}, which Adam cannot take"


def adam_state_problem(state: Any, parameters: list[tuple[str, torch.Tensor]]) -> tuple[str | None, list[torch.Tensor]]:
    """How ``state`` differs from a `torch.optim.Adam` state for ``parameters`` (named, in order), or None; and the
    tensors it holds. Each parameter's step is a scalar float32 tensor, its moments tensors of its dtype and shape."""
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        return "has an optimizer state that is not Adam's (a dictionary of 'state' and 'param_groups')", []
    groups = state["param_groups"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return "has damaged optimizer parameter groups", []
    indices = [index for group in groups for index in group["params"]]
    if indices != list(range(len(parameters))):
        return (f"has an optimizer state for {len(indices)} parameters in another order, not for the model's "
                f"{len(parameters)}"), []
    problem = next((p for group in groups for key, value in group.items() if (p := adam_setting_problem(key, value))),
                   None)
    if problem:
        return problem, []
    if not isinstance(state["state"], dict) or not set(state["state"]) <= set(range(len(parameters))):
        return "has an optimizer state that names parameters the model does not have", []
    tensors = []
    for index, moments in state["state"].items():
        name, parameter = parameters[index]
        if not isinstance(moments, dict) or not {"step", "exp_avg", "exp_avg_sq"} <= set(moments) <= {"step", *ADAM_MOMENTS}:
            return f"has an optimizer state of {name} that is not Adam's (step, exp_avg, exp_avg_sq)", []
        problems = [tensor_problem(f"the step of {name}", moments["step"], torch.float32, ())]
        problems += [tensor_problem(f"{moment} of {name}", moments[moment], parameter.dtype, tuple(parameter.shape))
                     for moment in ADAM_MOMENTS if moment in moments]
        problem = next((p for p in problems if p), None)
        if problem:
            return f"has an optimizer state that does not fit the model's parameters ({problem})", []
        tensors += moments.values()
    return None, tensors


def _number_in(value: Any, low: float, high: float) -> bool:
    """True for an int or float (not a bool) with low <= value < high (so never NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value < high


def generator_state_size() -> int:
    """The bytes of a CPU generator's state (torch's Mersenne Twister): 5,056 in torch 2."""
    return torch.Generator().get_state().numel()


def rng_problem(rng: Any) -> tuple[str | None, list[torch.Tensor]]:
    """How ``rng`` differs from the random states `fit` saves (torch's and the shuffle's CPU generator states, each a
    uint8 tensor of the generator's size, and a list of CUDA states where there was a GPU), or None; and its tensors."""
    if not isinstance(rng, dict) or not {"torch", "shuffle"} <= set(rng) <= {"torch", "shuffle", "cuda"}:
        return "has random states other than the ones fit saves ('torch', 'shuffle' and, with a GPU, 'cuda')", []
    size = generator_state_size()
    problems = [tensor_problem(f"the random state {name!r}", rng[name], torch.uint8, (size,)) for name in ("torch", "shuffle")]
    cuda = rng.get("cuda", [])
    if not isinstance(cuda, list) or len(cuda) > 64:
        problems.append("the CUDA random states are not a list of one state per GPU")
    else:
        problems += [tensor_problem("a CUDA random state", state, torch.uint8, tuple(state.shape)[:1])
                     if isinstance(state, torch.Tensor) and state.dim() == 1 and state.numel() <= 1024
                     else "a CUDA random state is not a small uint8 tensor" for state in cuda]
    problem = next((p for p in problems if p), None)
    if problem:
        return f"has damaged random states ({problem})", []
    return None, [rng["torch"], rng["shuffle"], *cuda]


def checkpoint_outline(outline: dict[str, Any]) -> list[torch.Tensor]:
    """Check a checkpoint's outline in full against what its stored config builds; return the tensors it holds."""
    require_entries(outline, CHECKPOINT_ENTRIES, "checkpoint")
    if not isinstance(outline["config"], dict):
        raise Damaged(f"has settings that are {describe(outline['config'])}, not a dictionary")
    try:
        config = Config.from_dict(outline["config"])
    except (TypeError, ValueError) as error:
        raise Damaged(f"has damaged settings ({first_line(error)})") from None
    try:
        History.from_dict(outline["history"])
    except HistoryError as error:
        raise Damaged(f"has a damaged history ({error})") from None
    model = meta_model(config)
    problem = tensors_problem(outline["model"], model.state_dict())
    if problem:
        raise Damaged(f"holds weights for a different architecture than its config describes ({problem})")
    tensors = list(outline["model"].values())
    for entry, check in (("optimizer", lambda state: adam_state_problem(state, list(model.named_parameters()))),
                         ("rng", rng_problem)):
        if outline[entry] is not None:
            problem, held = check(outline[entry])
            if problem:
                raise Damaged(problem)
            tensors += held
    return tensors


def value_problem(payload: dict[str, Any], parameter_names: list[str]) -> str | None:
    """What a checkpoint's values (checked once loaded) hold that no run writes: NaN or infinite weights, Adam state
    that is not finite or has negative steps or second moments, a random state torch refuses; None if nothing.

    ``parameter_names`` are the model's parameters in the optimizer's order."""
    bad = [name for name, tensor in payload["model"].items() if not torch.isfinite(tensor).all()]
    if bad:
        return (f"has NaN or infinite weights in {', '.join(bad[:3])}, so its model cannot be used: it was saved "
                "after training diverged, or damaged since")
    for index, moments in (payload["optimizer"] or {"state": {}})["state"].items():
        for name, tensor in moments.items():
            finite = bool(torch.isfinite(tensor).all())
            if not finite or (name != "exp_avg" and (tensor < 0).any()):
                return (f"has {'negative' if finite else 'NaN or infinite'} values in its optimizer's {name} of "
                        f"{parameter_names[index]} while its weights are finite, which training never writes "
                        "(Adam's state stays finite, its steps and second moments non-negative): the file was damaged")
    for name in ("torch", "shuffle") if payload["rng"] is not None else ():
        try:
            torch.Generator().set_state(payload["rng"][name])
        except RuntimeError as error:
            return f"has a damaged random state {name!r} ({first_line(error)})"
    return None


def load_checkpoint(path: str | Path, device: str | None = "cpu") -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint`, checked in full before anything uses it, with clear errors."""
    path = Path(path)
    payload = read_tagged_file(path, CHECKPOINT_FORMAT, "checkpoint", RETRAIN, checkpoint_outline)
    config = Config.from_dict(payload["config"])
    problem = value_problem(payload, [name for name, _ in meta_model(config).named_parameters()])
    if problem:
        raise CheckpointError(f"{path} {problem}; retrain it, or restore the file from a backup")
    model = build_model(config)
    model.load_state_dict(payload["model"])
    model.to(choose_device(device)).eval()
    return Checkpoint(model, config, History.from_dict(payload["history"]), payload["optimizer"], payload["rng"])


def load_pretrained(name: str = "vae") -> Checkpoint:
    """A shipped model with its history: by default the lab's seed run (10 epochs, seed 1); see `zoo.py` for the rest."""
    if name not in pretrained_names():
        raise ValueError(f"no pretrained model called {name!r}; available: {pretrained_names()}")
    path = PRETRAINED_DIR / f"{name}.pt"
    loaded = load_checkpoint(path)
    expected = PRETRAINED_CONFIGS.get(name.rsplit("_epoch", 1)[0])
    if expected is not None and loaded.config != expected:
        raise CheckpointError(f"{path} holds a model trained with other settings than zoo.py lists for {name!r}; "
                              f"reinstall vae_lab, or retrain it with: python scripts/make_pretrained.py {name}")
    return loaded
