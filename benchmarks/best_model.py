"""What each choice of a two-layer VampPrior model buys over `best`, one row per choice, measured side by side in one run.

    python benchmarks/best_model.py [--epochs 10] [--n-test 2000] [--iwae-samples 1000] [--threads N] [--quick]

The rows add the choices of notebooks 08, 12 and 13 one at a time, on `best`'s networks (two hidden layers of 500 units,
z of 50), seed, binarised data and learning-rate schedule (1e-3 decayed to 1e-4 over ``--epochs``):

1. the ELBO;
2. the 5-sample importance-weighted bound (IWAE, Burda et al. 2016) instead: ``best``'s recipe;
3. a second stochastic layer above z (z₂ of 30, inferred top-down): notebook 13's hierarchy;
4. a VampPrior of 200 pseudo-inputs over z₂ (Tomczak & Welling 2018): notebook 12's prior.

Each trains from scratch for ``--epochs`` epochs, then is scored as the README's models are (NLL = −IWAE_K on the
first ``--n-test`` dynamically binarised test digits, K = ``--iwae-samples``). A short schedule ranks the choices
early in training; it says nothing of where each would end after a long run.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from vae_lab import fit, load_mnist
from vae_lab.evaluate import evaluate
from vae_lab.model import build_model
from vae_lab.runtime import configure_process
from vae_lab.zoo import PRETRAINED_CONFIGS
from train_speed import machine_line

TWO_LAYER_VAMP = replace(PRETRAINED_CONFIGS["best"], stochastic_layers=2, top_latent_dim=30, top_hidden_dim=200,
                         prior="vamp", prior_components=200)
ROWS = {
    "ELBO, one stochastic layer": replace(TWO_LAYER_VAMP, iwae_samples=1, stochastic_layers=1, prior="standard"),
    "+ IWAE bound, k = 5 (best's recipe)": replace(TWO_LAYER_VAMP, stochastic_layers=1, prior="standard"),
    "+ second stochastic layer z2 (30 units)": replace(TWO_LAYER_VAMP, prior="standard"),
    f"+ VampPrior over z2 ({TWO_LAYER_VAMP.prior_components} pseudo-inputs)": TWO_LAYER_VAMP,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--iwae-samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: configure_process's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 epoch on 1,024 images, 100 digits, K = 10")
    args = parser.parse_args()
    train_size = None
    if args.quick:
        args.epochs, args.n_test, args.iwae_samples, train_size = 1, 100, 10, 1024
    configure_process()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist()
    test = data.test_images[:args.n_test]
    print(machine_line())
    print(f"{args.epochs} epochs each | NLL = -IWAE_K, K = {args.iwae_samples}, first {args.n_test:,} binarised test digits")
    print(f"{'choice':<44} {'train s':>8} {'NLL':>8} {'gain':>6}")
    previous = None
    for label, config in ROWS.items():
        model = build_model(replace(config, epochs=args.epochs, train_size=train_size))
        started = time.perf_counter()
        fit(model, data, progress=False)
        seconds = time.perf_counter() - started
        nll = evaluate(model, test, iwae_samples=args.iwae_samples, binarized=True).nll
        gain = "" if previous is None else f"{previous - nll:6.2f}"
        print(f"{label:<44} {seconds:8.0f} {nll:8.2f} {gain:>6}".rstrip(), flush=True)
        previous = nll


if __name__ == "__main__":
    main()
