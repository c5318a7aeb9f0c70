"""Acceptance benchmark: vae_lab.fit against the textbook PyTorch VAE loop, and against the CPU's sgemm peak.

In one process, on the same MNIST files, it interleaves rounds of
  (a) the textbook loop: torchvision MNIST + ToTensor + DataLoader(batch_size=128, shuffle=True), an MLP VAE
      with a sigmoid output, binary_cross_entropy(reduction="sum") + KL, Adam(lr=1e-3), one step per batch;
  (b) vae_lab.fit(VAE(Config(epochs=E)), vae_lab.load_mnist(), progress=False);
and a best-of-N torch.mm measurement, then reports medians and the ratio b/a.

What each time includes:
  (a) the training loop only (DataLoader iteration, forward, loss, loss.item(), backward, step); the example's
      per-epoch test pass is left out.
  (b) fit's whole wall time, including its per-epoch pass over the test set; that pass is also timed on its
      own and printed, so (b) is, if anything, under-stated.

FLOPs counted (matmuls only; bias adds, activations, loss and optimizer are not counted):
  forward   2 * (784*400 + 400*20 + 400*20 + 20*400 + 400*784)  per image
  backward  weight gradients (the same as forward) + input gradients of every layer except the first
            (the images need no gradient): 2 * (400*20 + 400*20 + 20*400 + 400*784)
  fit's test pass adds one forward per test image, counted too.
The common "3 x forward" convention (about 2.3 TFLOP for 10 epochs) is printed beside the exact figure.

Last, the floor: the step's GEMMs timed alone plus one fused Adam step timed alone, the time a step would take
if every other op were free, and the speedup and share of peak that would give (the targets' ceilings).

Usage: python benchmarks/train_speed.py [--epochs 1] [--rounds 3] [--threads N] [--quick]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

import vae_lab
from vae_lab.data import default_root
from vae_lab.runtime import busy_cpus, configure_process
from vae_lab.train import evaluate_loss

BATCH = 128  # the lab's batch size, in both loops
SPEEDUP_TARGET = 6.0
PEAK_FRACTION_TARGET = 0.60
QUICK_TRAIN, QUICK_TEST = 200 * 128, 2000  # --quick: 200 steps of 128 images, and a 2000-image test pass


def layer_shapes(hidden: int = 400, latent: int = 20) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of the VAE, encoder first; the same for both loops."""
    return [(784, hidden), (hidden, latent), (hidden, latent), (latent, hidden), (hidden, 784)]


def flops_per_image() -> dict[str, int]:
    """Matmul FLOPs per image: forward, exact forward + backward, and the 3 x forward convention."""
    shapes = layer_shapes()
    forward = sum(2 * n_in * n_out for n_in, n_out in shapes)
    input_grads = sum(2 * n_in * n_out for n_in, n_out in shapes[1:])  # the first layer's input is the data
    return {"forward": forward, "exact": forward + forward + input_grads, "convention": 3 * forward}


class TextbookVAE(nn.Module):
    """The classic example's MLP VAE: 784-400-(20, 20)-400-784, sigmoid pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def textbook_round(dataset: torch.utils.data.Dataset, epochs: int) -> tuple[float, float]:
    """Train a fresh TextbookVAE the textbook way; return (seconds of the training loop, last epoch's loss)."""
    torch.manual_seed(1)
    model = TextbookVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=128, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        total = 0.0
        for x, _ in loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            loss.backward()
            total += loss.item()
            optimizer.step()
    return time.perf_counter() - started, total / len(dataset)


def lab_round(data: vae_lab.MNIST, epochs: int) -> tuple[float, float, float]:
    """Run vae_lab.fit; return (fit's wall seconds, last train loss, seconds of one test pass timed alone)."""
    model = vae_lab.VAE(vae_lab.Config(epochs=epochs))
    started = time.perf_counter()
    history = vae_lab.fit(model, data, progress=False)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    evaluate_loss(model, data.test_images)
    return seconds, history.train_loss[-1], time.perf_counter() - started


def sgemm_peak(sizes: tuple[int, ...], repeats: int) -> float:
    """Best float32 torch.mm GFLOP/s over ``repeats`` timed products of each square size (after one warm-up)."""
    best = 0.0
    for n in sizes:
        a, b, out = torch.rand(n, n), torch.rand(n, n), torch.empty(n, n)
        torch.mm(a, b, out=out)
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def best_call_ms(call: Callable[[], object], repeats: int, calls: int = 20) -> float:
    """ms per call of ``call``: after one warm-up call, the best of ``repeats`` timings of ``calls`` calls each."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - started) / calls)
    return min(times) * 1e3


def matmul_ceiling(threads: int, repeats: int) -> float:
    """ms of the step's 14 GEMMs timed alone in autograd's layouts, each the best of ``repeats`` x 20 calls."""
    torch.set_num_threads(threads)
    gemms: list[Callable[[], torch.Tensor]] = []
    for index, (n_in, n_out) in enumerate(layer_shapes()):
        x, weight, bias = torch.rand(BATCH, n_in), torch.rand(n_out, n_in), torch.rand(n_out)
        grad = torch.rand(BATCH, n_out)
        gemms.append(lambda x=x, w=weight, b=bias: torch.addmm(b, x, w.t()))  # forward
        gemms.append(lambda x=x, g=grad: g.t().mm(x))  # weight gradient
        if index > 0:  # input gradient: not needed for the first layer
            gemms.append(lambda w=weight, g=grad: g.mm(w))
    return sum(best_call_ms(gemm, repeats) for gemm in gemms)


def adam_step_ms(threads: int, repeats: int) -> float:
    """ms of one fused Adam step over the lab VAE's parameters timed alone (gradients already there), best of
    ``repeats`` x 20 steps."""
    torch.set_num_threads(threads)
    model = vae_lab.VAE(vae_lab.Config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter) * 1e-2
    return best_call_ms(optimizer.step, repeats)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else whatever platform knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """torch version, threads and CPU, with a warning when other processes keep a CPU busy."""
    busy = busy_cpus(1.0)
    line = (f"torch {torch.__version__} | {torch.get_num_threads()} threads | CPU: {cpu_model()} | "
            f"{busy:.1f} of {os.cpu_count()} CPUs busy before the start")
    if busy >= 0.5:
        line += ("\nWARNING: the machine is busy; with as many threads as cores every parallel op waits for a "
                 "descheduled thread, so timings inflate several-fold. Rerun when quiet, or compare with --threads 1.")
    return line


@dataclass
class Round:
    """One interleaved round: both loops' seconds and last-epoch losses, fit's test-pass time, sgemm peak."""

    textbook_s: float
    textbook_loss: float
    lab_s: float
    lab_loss: float
    test_pass_s: float
    peak: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per measurement (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved a,b rounds (default 3)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: configure_process's choice)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: one round of {QUICK_TRAIN // 128} steps on the first {QUICK_TRAIN} images")
    args = parser.parse_args()
    configure_process()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds

    data = vae_lab.load_mnist()  # verifies the files that torchvision reads below
    textbook_data = datasets.MNIST(str(default_root()), train=True, transform=transforms.ToTensor())
    if args.quick:
        data = data.subset(QUICK_TRAIN, QUICK_TEST)
        textbook_data = Subset(textbook_data, range(QUICK_TRAIN))
    n_train, n_test = len(data.train_images), len(data.test_images)
    peak_sizes, peak_repeats = ((2048,), 3) if args.quick else ((2048, 4096), 4)

    print(machine_line())
    print(f"{n_train} training images, {n_test} test images | {args.epochs} epoch(s) per measurement | "
          f"{rounds} round(s), interleaved a, b, sgemm\n")

    textbook_round(Subset(textbook_data, range(20 * 128)), 1)  # warm-up: first-call costs out of round 1
    lab_round(data.subset(20 * 128, 128), 1)
    results = []
    print(f"{'round':>5} | {'(a) textbook s':>14} {'img/s':>7} {'loss':>6} | "
          f"{'(b) fit s':>9} {'img/s':>7} {'loss':>6} | {'b/a':>5} | {'sgemm GFLOP/s':>13}")
    for index in range(1, rounds + 1):
        textbook_s, textbook_loss = textbook_round(textbook_data, args.epochs)
        lab_s, lab_loss, test_pass_s = lab_round(data, args.epochs)
        result = Round(textbook_s, textbook_loss, lab_s, lab_loss, test_pass_s, sgemm_peak(peak_sizes, peak_repeats))
        results.append(result)
        a_rate, b_rate = n_train * args.epochs / textbook_s, n_train * args.epochs / lab_s
        print(f"{index:>5} | {textbook_s:>14.2f} {a_rate:>7.0f} {textbook_loss:>6.1f} | "
              f"{lab_s:>9.2f} {b_rate:>7.0f} {lab_loss:>6.1f} | {b_rate / a_rate:>5.2f} | {result.peak:>13.0f}")

    a_rate = statistics.median(n_train * args.epochs / r.textbook_s for r in results)
    b_rate = statistics.median(n_train * args.epochs / r.lab_s for r in results)
    test_pass_s = statistics.median(r.test_pass_s for r in results)
    peak = max(r.peak for r in results)
    speedup = b_rate / a_rate
    gemm_ms, adam_ms = matmul_ceiling(torch.get_num_threads(), 5), adam_step_ms(torch.get_num_threads(), 5)
    flops = flops_per_image()
    # fit's matmul work per second: each training image costs forward+backward, each test image one forward
    test_share = n_test / n_train
    work = flops["exact"] + test_share * flops["forward"]  # matmul FLOPs per training image, test pass included
    achieved = b_rate * work / 1e9
    conventional = b_rate * (flops["convention"] + test_share * flops["forward"]) / 1e9

    best = min(results, key=lambda r: r.textbook_s + r.lab_s)
    print(f"\nmedian: (a) textbook {a_rate:.0f} img/s, (b) vae_lab.fit {b_rate:.0f} img/s (training images per second)")
    print(f"least disturbed round: (a) {n_train * args.epochs / best.textbook_s:.0f} img/s, "
          f"(b) {n_train * args.epochs / best.lab_s:.0f} img/s, b/a {best.textbook_s / best.lab_s:.2f}")
    print("(a) counts the training loop only; (b) counts fit's whole wall time including its per-epoch test pass, "
          f"which alone takes {test_pass_s:.2f} s for {n_test} images")
    print(f"matmul FLOPs per training image: forward {flops['forward'] / 1e6:.3f} M, exact forward+backward "
          f"{flops['exact'] / 1e6:.3f} M, 3 x forward convention {flops['convention'] / 1e6:.3f} M "
          f"(10 epochs of 60000: {flops['exact'] * 6e5 / 1e12:.2f} TFLOP exact, "
          f"{flops['convention'] * 6e5 / 1e12:.2f} TFLOP by convention)")
    print(f"sgemm peak: best of {peak_repeats} torch.mm per size {'/'.join(map(str, peak_sizes))} per round, "
          f"{torch.get_num_threads()} threads: {peak:.0f} GFLOP/s")
    print(f"3 x forward convention: {conventional:.0f} GFLOP/s = {conventional / peak:.0%} of peak (for comparison)\n")

    floor_ms = gemm_ms + adam_ms
    floor_rate = BATCH / floor_ms * 1e3 * flops["exact"] / work  # the test pass's share at the same rate
    print(f"floor of a batch-{BATCH} step: its 14 GEMMs alone {gemm_ms:.2f} ms + one fused Adam step alone {adam_ms:.2f} ms "
          f"= {floor_ms:.2f} ms. Even if every other op took no time, fit would reach at most {floor_rate:.0f} img/s "
          f"= {floor_rate / a_rate:.1f}x the textbook loop and "
          f"{floor_rate * work / 1e9 / peak:.0%} of the sgemm peak\n")

    mark = lambda ok: "PASS" if ok else "MISS"
    print(f"speedup vs textbook: {speedup:.1f}x (target >= {SPEEDUP_TARGET:g}x) {mark(speedup >= SPEEDUP_TARGET)}")
    print(f"achieved {achieved:.0f} GFLOP/s = {achieved / peak:.0%} of measured sgemm peak {peak:.0f} GFLOP/s "
          f"(target >= {PEAK_FRACTION_TARGET:.0%}) {mark(achieved / peak >= PEAK_FRACTION_TARGET)}")


if __name__ == "__main__":
    main()
