"""VAE Lab: a variational autoencoder on MNIST, taught one concept per module, in notebook order.

Importing it changes nothing process-wide; `vae_lab.runtime.configure_process` is for whoever starts the process.
The public names below load on first use, so `python -m vae_lab` is already inside its own Ctrl-C handling
when torch is imported.
"""
from importlib import import_module
from typing import Any

PUBLIC = {"Config": "config", "MNIST": "data", "load_mnist": "data", "prepare_mnist": "data", "VAE": "model",
          "reparameterize": "model", "vae_loss": "loss", "reconstruction_loss": "loss", "kl_divergence": "loss",
          "fit": "train", "seed_everything": "train", "History": "history", "save_checkpoint": "checkpoint",
          "load_checkpoint": "checkpoint", "load_pretrained": "checkpoint"}
__all__ = list(PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in PUBLIC:
        raise AttributeError(f"module 'vae_lab' has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(f".{PUBLIC[name]}", __name__), name)  # loaded once, then bound here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC])
