"""Helpers for the hostile-file tests: torch archives made by hand (what torch.save writes, with any record, size or
pickle), and a fork server that runs many ``python -m vae_lab`` commands in real child processes for one import."""
import collections
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STORAGE_TYPES = {torch.float32: torch.FloatStorage, torch.float64: torch.DoubleStorage, torch.float16: torch.HalfStorage,
                 torch.int64: torch.LongStorage, torch.int32: torch.IntStorage, torch.uint8: torch.ByteStorage,
                 torch.bool: torch.BoolStorage}


class Storage:
    """A reference to the tensor data in record ``data/<key>``, as torch pickles it: ``numel`` elements of ``dtype``."""

    def __init__(self, key: str, numel: int, dtype: torch.dtype = torch.float32) -> None:
        self.key, self.numel, self.dtype = key, numel, dtype


class Tensor:
    """A tensor as torch pickles it: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: Storage, shape: tuple, stride: tuple | None = None, offset: int = 0) -> None:
        self.storage, self.shape, self.offset = storage, tuple(shape), offset
        self.stride = stride or tuple(int(torch.tensor(shape[i + 1:]).prod()) for i in range(len(shape)))

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", STORAGE_TYPES[obj.dtype], obj.key, "cpu", obj.numel)
        return None


def outline(payload, records: dict[str, bytes]):
    """``payload`` with every real tensor replaced by a `Tensor` whose bytes are added to ``records``."""
    if isinstance(payload, torch.Tensor):
        key = str(len(records))
        data = payload.detach().contiguous()
        records[f"data/{key}"] = data.reshape(-1).view(torch.uint8).numpy().tobytes()
        return Tensor(Storage(key, data.numel(), data.dtype), tuple(data.shape))
    if isinstance(payload, dict):
        return type(payload)((k, outline(v, records)) for k, v in payload.items())
    if isinstance(payload, (list, tuple)):
        return type(payload)(outline(v, records) for v in payload)
    return payload


def write_archive(path: Path, payload, records: dict[str, bytes] | None = None, *, deflate: tuple[str, ...] = (),
                  zeros: dict[str, int] | None = None, pickle_bytes: bytes | None = None, folder: str = "archive") -> Path:
    """Write ``payload`` (real tensors, or `Tensor` references to ``records``) as torch.save would: the records named
    in ``deflate`` deflate-compressed, each record of ``zeros`` that many zero bytes deflated (streamed, never held in
    memory), and ``pickle_bytes`` instead of the pickled payload if given."""
    records = dict(records or {})
    pickled = outline(payload, records)
    if pickle_bytes is None:
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=2).dump(pickled)
        pickle_bytes = buffer.getvalue()
    entries = {"data.pkl": pickle_bytes, "byteorder": b"little", **records, "version": b"3\n",
               ".data/serialization_id": b"0123456789"}
    with zipfile.ZipFile(path, "w", compresslevel=1) as archive:
        for name, data in entries.items():
            method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            archive.writestr(zipfile.ZipInfo(f"{folder}/{name}"), data, compress_type=method)
        for name, size in (zeros or {}).items():
            info = zipfile.ZipInfo(f"{folder}/{name}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=size > 2**31) as handle:
                block = bytes(16 * 2**20)
                for start in range(0, size, len(block)):
                    handle.write(block[:size - start])
    return path


FORK_SERVER = r"""
import fcntl, json, os, signal, sys, tempfile, time
from vae_lab.cli import main
results = []
for case in json.loads(sys.stdin.read()):
    if case["argv"][0] == "!kill":  # kill a process, then wait until the kernel has released its lock
        pid, lock = int(case["argv"][1]), case["argv"][2]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with open(lock, "a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.01)
        results.append({"argv": case["argv"], "rc": 0, "stdout": "", "stderr": "", "peak_mb": 0})
        continue
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        if case.get("stdout") == "gone":  # a pipe whose reader has gone, as after | head
            reader, writer = os.pipe()
            os.close(reader)
            os.dup2(writer, 1)
        else:
            os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        os.environ.update(case.get("env", {}))
        os.chdir(case.get("cwd", os.getcwd()))
        try:
            code = main(case["argv"])
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    out.seek(0), err.seek(0)
    results.append({"argv": case["argv"], "rc": os.waitstatus_to_exitcode(status),
                    "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace"),
                    "peak_mb": usage.ru_maxrss / 1024})
print(json.dumps(results))
"""


def run_forked(commands: list, env: dict | None = None) -> list[dict]:
    """Run each ``python -m vae_lab`` command (its arguments, or a dict of "argv" and the child's own "env", "cwd", and
    "stdout": "gone" for a pipe nobody reads) in a child process forked from one process that imported the lab
    once; ``["!kill", pid, lock]`` kills ``pid``
    and waits for its lock to be free. Each result holds the exit code (negative: killed by that signal), stdout,
    stderr and the child's peak memory in MB."""
    cases = [case if isinstance(case, dict) else {"argv": case} for case in commands]
    cases = [{**case, "argv": list(map(str, case["argv"]))} for case in cases]
    result = subprocess.run([sys.executable, "-c", FORK_SERVER], input=json.dumps(cases), capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, **ONE_THREAD, **(env or {})})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def central_directory(data: bytes) -> dict[str, int]:
    """Where each record's entry starts in a zip archive's central directory (``data`` is the whole archive)."""
    end = data.rindex(b"PK\x05\x06")
    offset = int.from_bytes(data[end + 16:end + 20], "little")
    entries = {}
    while data[offset:offset + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = (int.from_bytes(data[offset + at:offset + at + 2], "little")
                                                     for at in (28, 30, 32))
        entries[data[offset + 46:offset + 46 + name_length].decode()] = offset
        offset += 46 + name_length + extra_length + comment_length
    return entries


def one_line(stderr: str) -> str:
    """The one line a command ended with; fails if it printed a traceback or more than one line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]
