"""Peak memory of a full training run with the lab's settings, against the 1.5 GiB budget.

The run (load_mnist, then fit(VAE(Config(epochs=E)), progress=False)) happens in a child process, so its
peak resident set size is the child's alone: resource.getrusage(RUSAGE_CHILDREN).ru_maxrss, which Linux
reports in KiB. Importing torch accounts for a good part of it.

Usage: python benchmarks/peak_memory.py [--epochs 10]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

BUDGET_MIB = 1536  # 1.5 GiB


def child(epochs: int) -> None:
    """The measured run: what `python -m vae_lab train` does, without writing anything."""
    import vae_lab
    from vae_lab.runtime import configure_process

    configure_process()
    history = vae_lab.fit(vae_lab.VAE(vae_lab.Config(epochs=epochs)), vae_lab.load_mnist(), progress=False)
    print(f"child: {len(history)} epochs, test loss {history.test_loss[-1]:.2f}, "
          f"{sum(history.seconds):.1f} s in fit's epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the measured run (default 10)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.epochs)
        return
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", "--epochs", str(args.epochs)], check=True)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.epochs}-epoch fit with the lab's settings: {time.perf_counter() - started:.1f} s wall in the child")
    verdict = "PASS" if peak_mib <= BUDGET_MIB else "MISS"
    print(f"peak RSS {peak_mib:.0f} MiB of the {BUDGET_MIB} MiB (1.5 GiB) budget = {peak_mib / BUDGET_MIB:.0%} "
          f"{verdict}")


if __name__ == "__main__":
    main()
