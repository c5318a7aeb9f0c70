"""Measure the training-step options for vae_lab's model and loss side by side, before choosing one.

Every option is the current vae_lab step (`fit`'s loop body: index a shuffled batch of 128 from the
in-memory images, vae_loss, finiteness check, zero_grad, backward, fused Adam step, float64 running sums)
with exactly one thing changed. All start from the same weights and Adam state, taken after two epochs of
training: by then about 23 % of Adam's first-layer moments have decayed into denormal floats, which a
fresh model does not have yet and which make a real run's later epochs slower.
The options are timed in interleaved rounds (each round runs every option for a block of steps after a
short warm-up, in a rotated order), so a noisy neighbour slows all of them alike; the table shows the
median ms/step over rounds, and "vs now", the median over rounds of its time divided by the current
step's time in the same round (paired, so slow drifts cancel).
Then what limits the current step: its parts timed without a profiler, its 14 GEMMs timed alone (the
ceiling: how close to the sgemm peak any change outside the matmuls could get), and a torch.profiler table.

Usage: python benchmarks/options.py [--rounds 10] [--steps 50] [--threads N] [--quick]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch._inductor.config
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

import vae_lab
from vae_lab.runtime import configure_process
from vae_lab.loss import LossParts, kl_divergence, vae_loss
from vae_lab.model import LOGVAR_RANGE, Encoder, flatten_images
from train_speed import BATCH, flops_per_image, machine_line, matmul_ceiling, sgemm_peak

PRETRAIN_STEPS = 2 * 469  # two epochs of 60,000 images
LossFn = Callable[..., LossParts]


class MergedHeads(nn.Module):
    """The lab's encoder with μ and log σ² from one 400→40 Linear (initialised from the two heads)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.hidden = encoder.hidden
        self.heads = nn.Linear(encoder.mu.in_features, 2 * encoder.mu.out_features)
        with torch.no_grad():
            self.heads.weight.copy_(torch.cat([encoder.mu.weight, encoder.logvar.weight]))
            self.heads.bias.copy_(torch.cat([encoder.mu.bias, encoder.logvar.bias]))

    def forward(self, x: torch.Tensor, labels: None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.heads(F.relu(self.hidden(flatten_images(x)))).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


def sigmoid_bce_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> LossParts:
    """vae_loss with the textbook's sigmoid + binary_cross_entropy in place of BCE-with-logits."""
    reconstruction = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(dim=1).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossParts(reconstruction + kl, reconstruction, kl)


@dataclass
class Option:
    """One way to run the training step, and the process-wide settings it needs while it runs."""

    name: str
    step: Callable[[torch.Tensor], None]
    threads: int
    flush_denormal: bool = True  # as configure_process sets it
    mkldnn: bool = True
    compile_s: float | None = None
    times: list[float] = field(default_factory=list)
    paired: bool = True  # timed in the interleaved rounds, beside the current step


class Batches:
    """Endless shuffled batches of 128 indexed from the in-memory training images, as fit draws them."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.order, self.position = images, torch.randperm(len(images)), 0

    def __call__(self) -> torch.Tensor:
        if self.position + BATCH > len(self.images):
            self.order, self.position = torch.randperm(len(self.images)), 0
        self.position += BATCH
        return self.images[self.order[self.position - BATCH:self.position]]


@dataclass
class Start:
    """Weights and Adam's per-parameter state (keyed by parameter position) that every option starts from."""

    model: dict[str, torch.Tensor]
    adam: dict[int, dict[str, torch.Tensor]]


def pretrain(batches: Batches, steps: int) -> Start:
    """Train the lab's VAE with fit's optimizer for ``steps`` steps and keep its state."""
    model = vae_lab.VAE(vae_lab.Config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    for _ in range(steps):
        x = batches()
        loss = vae_loss(x, *model(x)).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return Start(model.state_dict(), optimizer.state_dict()["state"])


def merge_heads(model: vae_lab.VAE, adam: dict[int, dict[str, torch.Tensor]]) -> dict[int, dict[str, torch.Tensor]]:
    """Swap in MergedHeads and return Adam's state rearranged for the new parameters."""
    old = {name: adam[index] for index, (name, _) in enumerate(model.named_parameters())}
    model.encoder = MergedHeads(model.encoder)
    new = []
    for name, _ in model.named_parameters():
        if name.startswith("encoder.heads."):
            mu, logvar = old[name.replace("heads", "mu")], old[name.replace("heads", "logvar")]
            new.append({key: mu[key] if key == "step" else torch.cat([mu[key], logvar[key]]) for key in mu})
        else:
            new.append(old[name])
    return dict(enumerate(new))


def restore(start: Start, merged_heads: bool = False, adam: str = "fused") -> tuple[vae_lab.VAE, torch.optim.Adam]:
    """A VAE and Adam at ``start``; ``adam`` is 'fused', 'foreach' or 'for-loop' (torch's default on CPU)."""
    model = vae_lab.VAE(vae_lab.Config())
    model.load_state_dict(start.model)
    state = copy.deepcopy(start.adam)  # every option updates its own copy in place
    if merged_heads:
        state = merge_heads(model, state)
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {}}[adam]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **kind)
    # only the state: the saved param_groups would also overwrite the fused/foreach choice
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return model, optimizer


def make_step(start: Start, merged_heads: bool = False, adam: str = "fused", loss: LossFn = vae_loss,
              compile_what: str | None = None) -> Callable[[torch.Tensor], None]:
    """fit's training step for a VAE and Adam restored from ``start``, with the given changes."""
    model, optimizer = restore(start, merged_heads, adam)
    if compile_what == "loss":
        loss = torch.compile(loss)
    forward: Callable[[torch.Tensor], LossParts] = lambda x: loss(x, *model(x))
    if compile_what == "forward+loss":
        forward = torch.compile(forward)
    sums = torch.zeros(3, dtype=torch.float64)

    def step(x: torch.Tensor) -> None:  # mirrors the body of fit's training loop
        parts = forward(x)
        if not torch.isfinite(parts.total):
            raise FloatingPointError("the loss became non-finite")
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        sums.add_(torch.stack(parts).detach().double().cpu() * len(x))

    return step


def run_block(option: Option, batches: Batches, steps: int, warmup: int) -> float:
    """ms per step of ``option`` over ``steps`` steps, after ``warmup`` untimed ones, under its settings."""
    torch.set_num_threads(option.threads)
    torch.set_flush_denormal(option.flush_denormal)
    torch.backends.mkldnn.enabled = option.mkldnn
    for _ in range(warmup):
        option.step(batches())
    started = time.perf_counter()
    for _ in range(steps):
        option.step(batches())
    torch.backends.mkldnn.enabled = True
    return (time.perf_counter() - started) / steps * 1e3


def compiled(name: str, threads: int, batches: Batches, start: Start, **settings: Any) -> Option:
    """An Option whose first step (compiling the forward and backward graphs) is timed separately.

    The first compiled option also pays inductor's one-time start-up in this process.
    """
    torch._inductor.config.force_disable_caches = True  # a cold compile, as on first use, not a cache hit
    option = Option(name, make_step(start, **settings), threads)
    started = time.perf_counter()
    option.step(batches())
    option.compile_s = time.perf_counter() - started
    return option


def build_options(threads: int, batches: Batches, start: Start, quick: bool) -> list[Option]:
    """The current step first, an identical second instance (its ratio shows the noise), then one change each."""
    other_threads = 1 if threads != 1 else 2
    options = [
        Option("vae_lab now: fused Adam, eager, 2 heads, BCE-with-logits", make_step(start), threads),
        Option("control: the current step again, a second instance", make_step(start), threads),
        Option("Adam foreach=True", make_step(start, adam="foreach"), threads),
        Option("Adam for-loop (torch's default on CPU)", make_step(start, adam="for-loop"), threads),
        Option("set_flush_denormal(False) mid-run (main thread only)", make_step(start), threads, flush_denormal=False),
        Option("merged μ/logvar head (one 400→40 Linear)", make_step(start, merged_heads=True), threads),
        Option(f"torch.set_num_threads({other_threads})", make_step(start), other_threads),
        Option("torch.backends.mkldnn disabled", make_step(start), threads, mkldnn=False),
        Option("sigmoid + binary_cross_entropy", make_step(start, loss=sigmoid_bce_loss), threads),
    ]
    if not quick:
        options.append(compiled("torch.compile(vae_loss)", threads, batches, start, compile_what="loss"))
        options.append(compiled("torch.compile(model forward + vae_loss)", threads, batches, start,
                                compile_what="forward+loss"))
    return options


def segment_times(batches: Batches, start: Start, threads: int, steps: int, warmup: int) -> dict[str, float]:
    """ms per step spent in each part of the current step (perf_counter between the parts, no profiler)."""
    torch.set_num_threads(threads)
    model, optimizer = restore(start)
    sums = torch.zeros(3, dtype=torch.float64)
    names = ["index a shuffled batch", "forward + vae_loss", "isfinite check + zero_grad", "backward",
             "Adam step (fused)", "float64 running sums"]
    totals = [0.0] * len(names)
    for index in range(warmup + steps):
        marks = [time.perf_counter()]
        x = batches()
        marks.append(time.perf_counter())
        parts = vae_loss(x, *model(x))
        marks.append(time.perf_counter())
        if not torch.isfinite(parts.total):
            raise FloatingPointError("the loss became non-finite")
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        parts.total.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        sums.add_(torch.stack(parts).detach().double().cpu() * len(x))
        marks.append(time.perf_counter())
        if index >= warmup:
            totals = [total + after - before for total, before, after in zip(totals, marks, marks[1:])]
    return {name: total / steps * 1e3 for name, total in zip(names, totals)}


def no_flush_from_start(args: argparse.Namespace, threads: int) -> Option:
    """The current step in a child process that undoes configure_process's set_flush_denormal(True) before torch's first
    parallel op: the flag is per thread and new threads inherit it, so only there do OpenMP's workers lack it too.
    """
    command = [sys.executable, __file__, "--no-flush-denormal-child", "--rounds", str(args.rounds),
               "--steps", str(args.steps), *(["--threads", str(args.threads)] if args.threads else []),
               *(["--quick"] if args.quick else [])]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    option = Option("no set_flush_denormal, from process start (own process)*", lambda x: None, threads,
                    flush_denormal=False, paired=False)
    option.times = json.loads(result.stdout.splitlines()[-1])
    return option


def profile_step(option: Option, batches: Batches, steps: int) -> None:
    """Print the top 12 ops by self CPU time, and their sum split into matmuls, optimizer and other ops."""
    torch.set_num_threads(option.threads)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            option.step(batches())
    wall_us = (time.perf_counter() - started) * 1e6
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    matmuls, optimizer, other = "matmuls (aten::mm, aten::addmm)", "optimizer (Adam step, zero_grad)", "other ops"
    groups = {matmuls: 0.0, optimizer: 0.0, other: 0.0}
    for event in events:
        if event.key in ("aten::mm", "aten::addmm"):
            groups[matmuls] += event.self_cpu_time_total
        elif "adam" in event.key.lower():  # the fused kernel and the Optimizer.* record_functions
            groups[optimizer] += event.self_cpu_time_total
        else:
            groups[other] += event.self_cpu_time_total
    groups["Python between ops + profiler overhead"] = wall_us - sum(groups.values())
    print(f"self CPU per step under the profiler ({wall_us / steps / 1e3:.2f} ms/step with its overhead):")
    for name, us in groups.items():
        print(f"  {name:<40} {us / steps / 1e3:6.2f} ms  {us / wall_us:4.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per option per round (default 50)")
    parser.add_argument("--threads", type=int, help="threads of the current configuration (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 10 steps, no torch.compile")
    parser.add_argument("--no-flush-denormal-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_process()
    if args.no_flush_denormal_child:
        torch.set_flush_denormal(False)  # before any parallel op: OpenMP's worker threads, started later, inherit it
    threads = args.threads or torch.get_num_threads()
    rounds, steps, warmup = (1, 10, 3) if args.quick else (args.rounds, args.steps, 10)
    pretrain_steps = 20 if args.quick else PRETRAIN_STEPS
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")

    torch.set_num_threads(threads)
    if not args.no_flush_denormal_child:
        print(machine_line())
        print(f"{rounds} round(s) x {steps} steps per option after {warmup} warm-up steps, batch {BATCH}, "
              f"order rotated; all start after {pretrain_steps} training steps\n")
    torch.manual_seed(0)
    batches = Batches(vae_lab.load_mnist().train_images)
    start = pretrain(batches, pretrain_steps)
    if args.no_flush_denormal_child:
        option = Option("current step", make_step(start), threads, flush_denormal=False)
        print(json.dumps([run_block(option, batches, steps, warmup) for _ in range(rounds)]))
        return
    options = build_options(threads, batches, start, args.quick)
    for round_index in range(rounds):
        shift = round_index % len(options)
        for option in options[shift:] + options[:shift]:
            option.times.append(run_block(option, batches, steps, warmup))
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    options.append(no_flush_from_start(args, threads))

    baseline = statistics.median(options[0].times)
    print(f"{'option':<58} {'ms/step':>8} {'vs now':>7}  {'min-max':>11}  compile")
    for option in options:
        ratio = (statistics.median(mine / now for mine, now in zip(option.times, options[0].times)) if option.paired
                 else statistics.median(option.times) / baseline)
        spread = f"{min(option.times):.2f}-{max(option.times):.2f}"
        compile_s = f"{option.compile_s:.1f} s" if option.compile_s is not None else ""
        print(f"{option.name:<58} {statistics.median(option.times):>8.2f} {ratio:>6.2f}x  {spread:>11}  {compile_s}")
    print("* timed in a child process after the interleaved rounds, so not paired with the current step: the flag "
          "is per thread and only threads started after it inherit it")
    if args.quick:
        print("(torch.compile options skipped in --quick)")

    parts = segment_times(batches, start, threads, rounds * steps, warmup)
    step_ms = sum(parts.values())
    print(f"\nwhere the current step's {step_ms:.2f} ms go (timed between its parts, no profiler):")
    for name, ms in parts.items():
        print(f"  {name:<40} {ms:6.2f} ms  {ms / step_ms:4.0%}")
    gemm_ms, peak = matmul_ceiling(threads, 3 if args.quick else 5), sgemm_peak((2048,), 3)
    gemm_rate = flops_per_image()["exact"] * BATCH / gemm_ms / 1e6
    print(f"its 14 GEMMs timed alone: {gemm_ms:.2f} ms = {gemm_rate:.0f} GFLOP/s; sgemm peak {peak:.0f} GFLOP/s")
    current = gemm_rate * gemm_ms / baseline / peak
    print(f"ceiling: with everything but the matmuls free, a step reaches {gemm_rate / peak:.0%} of the sgemm peak; "
          f"the current step ({baseline:.2f} ms, the table's median) reaches {current:.0%}")

    print("\nprofile of the current step (torch.profiler, top 12 by self CPU):")
    profile_step(options[0], batches, steps)


if __name__ == "__main__":
    main()
