"""VAE Lab: a variational autoencoder on MNIST, taught one concept per module, in notebook order.

Importing it changes nothing process-wide; `vae_lab.runtime.configure_process` is for whoever starts the process.
"""
from .checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from .config import Config
from .data import MNIST, load_mnist, prepare_mnist
from .history import History
from .loss import kl_divergence, reconstruction_loss, vae_loss
from .model import VAE, reparameterize
from .train import fit, seed_everything

__all__ = ["Config", "MNIST", "load_mnist", "prepare_mnist", "VAE", "reparameterize", "vae_loss",
           "reconstruction_loss", "kl_divergence", "fit", "History", "save_checkpoint", "load_checkpoint",
           "load_pretrained", "seed_everything"]
