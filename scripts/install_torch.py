"""Install the lab's torch and torchvision into this Python: PyTorch's CPU-only wheels on a machine with no NVIDIA GPU,
PyPI's build (CUDA on Linux) otherwise.

    python scripts/install_torch.py "torch==2.14.1 torchvision==0.29.1" https://download.pytorch.org/whl/cpu

The lab's work is CPU-sized, and the CPU-only wheels need a fraction of the CUDA build's disk (README, "Install").
Where the CPU-only index can't be reached, for example on a machine that reaches only PyPI, this falls back at once to
PyPI's build and says so in one line. An empty index skips the CPU-only route. Standard library only: it runs before
anything else is installed.
"""
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path


def has_nvidia_gpu() -> bool:
    """True if an NVIDIA driver is loaded, the case where the CUDA build is worth its size."""
    if Path("/proc/driver/nvidia/gpus").is_dir():
        return True
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def reachable(index: str, timeout: float = 5.0) -> bool:
    """True if the index answers for torch within ``timeout`` seconds (one request, no retries)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{index.rstrip('/')}/torch/", method="HEAD"), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def pip_install(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *arguments], check=True)


def cpu_only_index(index: str) -> str | None:
    """``index`` if the CPU-only wheels should come from it, else None; prints the choice in one line."""
    if not index:
        print("torch: installing PyPI's build (TORCH_INDEX is empty)")
    elif has_nvidia_gpu():
        print("torch: installing PyPI's build, with CUDA, for this machine's NVIDIA GPU")
    elif reachable(index):
        print(f"torch: installing the CPU-only build from {index}")
        return index
    else:
        print(f"torch: the CPU-only index {index} can't be reached from here, so installing PyPI's build instead "
              f"(on Linux the CUDA build, about 6 GB; set TORCH_INDEX= to skip this check)", flush=True)
    return None


def main(requirements: str, index: str) -> None:
    """Install ``requirements`` (e.g. "torch==2.14.1 torchvision==0.29.1") from the chosen source."""
    packages = requirements.split()
    chosen = cpu_only_index(index)
    if chosen:  # torch and torchvision from the CPU-only index; their dependencies from the usual one
        pip_install("--no-deps", "--index-url", chosen, *packages)
    pip_install(*packages)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
