"""VAE Lab: a variational autoencoder on MNIST, taught one concept per module, in notebook order."""
import os

# Bit-for-bit repeatable runs (effective when vae_lab is imported before torch). MKL may pick kernels whose last
# bits differ between processes; AUTO keeps one code path. MKL and OpenMP may also choose fewer threads at run
# time, which changes how sums are split; Intel's reproducibility conditions ask for both DYNAMIC settings FALSE.
os.environ.setdefault("MKL_CBWR", "AUTO")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_DYNAMIC", "FALSE")

import torch  # noqa: E402

# Adam's running averages for always-black pixels decay into denormal floats, which CPUs process far more slowly;
# flushing them to zero made a 10-epoch fit 17 % faster with bit-identical results (benchmarks/options.py).
# It must happen before torch starts its worker threads, which copy this thread's floating-point mode.
torch.set_flush_denormal(True)

from .config import Config  # noqa: E402
from .data import MNIST, load_mnist, prepare_mnist
from .loss import kl_divergence, reconstruction_loss, vae_loss
from .model import VAE, reparameterize
from .train import History, fit, load_checkpoint, load_pretrained, save_checkpoint, seed_everything

__all__ = ["Config", "MNIST", "load_mnist", "prepare_mnist", "VAE", "reparameterize", "vae_loss",
           "reconstruction_loss", "kl_divergence", "fit", "History", "save_checkpoint", "load_checkpoint",
           "load_pretrained", "seed_everything"]
