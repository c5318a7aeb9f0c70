"""Notebook 04's training cell, `fit`, with the old thread rule (as many threads as CPUs) and configure_process's,
on the machine as it is and beside a competing load, measured side by side in one run.

    python benchmarks/thread_share.py [--train-size 6000] [--rounds 3] [--load 2] [--quick]

Each measurement is a fresh child process (the thread choice is made once, at its start): load MNIST, then time
``fit(VAE(Config(epochs=1, train_size=N)), data, progress=False)``. The old rule pins VAE_LAB_THREADS to the CPU
count; the new one leaves the choice to `configure_process`. "Beside a load" starts ``--load`` processes that spin
on the CPU (``while True: pass``) a second before the child and stops them after it. Rounds interleave every
(condition, rule) pair; the table shows each round's seconds and threads, then per condition the median of the
per-round ratio old / new (above 1.00x: the new rule is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPIN = "while True: pass"
SCRIPT = Path(__file__).resolve()


def child(train_size: int) -> None:
    """One measurement: the thread choice, then fit's seconds, as one JSON line."""
    from vae_lab import VAE, Config, fit, load_mnist
    from vae_lab.runtime import configure_process

    choice = configure_process()
    data = load_mnist().subset(train_size, 1000)
    started = time.perf_counter()
    fit(VAE(Config(epochs=1, train_size=train_size)), data, progress=False)
    print(json.dumps({"threads": choice.threads, "seconds": time.perf_counter() - started}))


def measure(rule: str, load: int, train_size: int) -> dict:
    """Run `child` under ``rule`` ("old" or "new") beside ``load`` spinning processes."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if rule == "old":
        env["VAE_LAB_THREADS"] = str(os.cpu_count() or 1)
    else:
        env.pop("VAE_LAB_THREADS", None)
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
    try:
        time.sleep(1.0 if load else 0.0)
        result = subprocess.run([sys.executable, str(SCRIPT), "--child", "--train-size", str(train_size)], env=env,
                                capture_output=True, text=True, check=True)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=6000, help="training images in fit's one epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="spinning processes of the loaded condition (0: none)")
    parser.add_argument("--quick", action="store_true", help="1 round on 1,000 images: a smoke test")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.train_size)
        return
    if args.quick:
        args.train_size, args.rounds = 1000, 1
    conditions = {"as it is": 0, **({f"beside {args.load} spinning": args.load} if args.load else {})}
    print(f"{os.cpu_count()} CPUs | load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} | "
          f"fit, 1 epoch on {args.train_size} images | old rule: {os.cpu_count()} threads | new: configure_process")
    print(f"{'round':>5} | {'condition':<18} | {'old s':>7} {'thr':>3} | {'new s':>7} {'thr':>3} | {'old/new':>7}")
    ratios: dict[str, list[float]] = {name: [] for name in conditions}
    for index in range(1, args.rounds + 1):
        for name, load in conditions.items():
            old, new = (measure(rule, load, args.train_size) for rule in ("old", "new"))
            ratios[name].append(old["seconds"] / new["seconds"])
            print(f"{index:>5} | {name:<18} | {old['seconds']:>7.2f} {old['threads']:>3} | {new['seconds']:>7.2f} "
                  f"{new['threads']:>3} | {ratios[name][-1]:>6.2f}x", flush=True)
    for name, values in ratios.items():
        print(f"median old/new, {name}: {statistics.median(values):.2f}x (min {min(values):.2f}x, max "
              f"{max(values):.2f}x)")
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
