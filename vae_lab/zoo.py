"""The lab's trained models: the settings of every checkpoint shipped in vae_lab/pretrained/.

`scripts/make_pretrained.py NAME` retrains one; `vae_lab.load_pretrained(NAME)` loads it.
"""
from __future__ import annotations

from dataclasses import replace

from .config import Config

BETAS = (0.25, 0.5, 2.0, 4.0, 8.0)  # the β-VAEs of notebook 09; β = 1 is the lab's own VAE
LEARNED_PRIORS = ("mixture", "vamp")  # the learned priors of notebook 12
HIERARCHY = Config(binarize=True, stochastic_layers=2, latent_dim=50, top_latent_dim=20)  # notebook 13's networks
VQ_VAE = Config(architecture="conv", codebook_size=64, latent_dim=16, epochs=3)  # notebook 14's, K = 64 codes of size 16

PRETRAINED_CONFIGS: dict[str, Config] = {
    "vae": Config(),  # the lab's seed configuration: 10 epochs, seed 1
    "vae_latent2": Config(latent_dim=2),  # a 2-D latent space that can be drawn (notebook 07)
    "vae_binarized": Config(binarize=True),  # the lab's settings on dynamically binarised pixels (notebook 08)
    **{f"beta_vae_{beta:g}": Config(beta=beta) for beta in BETAS},
    "cvae": Config(conditional=True),  # notebook 10
    "conv_vae": Config(architecture="conv"),  # notebook 11
    # The lab's best likelihood model (notebook 08): deeper, wider, longer, learning rate decayed 10×, trained on
    # the importance-weighted bound with 5 samples (IWAE, Burda et al. 2016).
    "best": Config(hidden_layers=2, hidden_dim=500, latent_dim=50, binarize=True, epochs=185, lr_final=1e-4,
                   iwae_samples=5),
    # Notebook 12: vae_binarized's networks, seed and epochs under a learned prior, 100 components (the VampPrior
    # authors' code defaults to 500 pseudo-inputs; 100 keep the file at 2.9 MB).
    **{f"{prior}_prior": Config(binarize=True, prior=prior, prior_components=100) for prior in LEARNED_PRIORS},
    # Notebook 13: two stochastic layers, z₁ of 50 units under z₂ of 20, on vae_binarized's 400-unit networks; without
    # free bits part of z₂ switches off, with λ = 0.25 nats per unit it stays in use.
    "hierarchy_no_free_bits": HIERARCHY,
    "hierarchy": replace(HIERARCHY, free_bits=0.25),
    # Notebook 14: a VQ-VAE on conv_vae's convolutions, 3 epochs; without restarts most of its 64 codes die early, with
    # a restart after 100 unused batches (Dhariwal et al. 2020's random restarts) they stay in use.
    "vq_vae_no_restart": VQ_VAE,
    "vq_vae": replace(VQ_VAE, restart_dead_codes=100),
    # and with K = 2 codes: 49 bits per image at most, near the Gaussian VAEs' KL of about 37 bits
    "vq_vae_k2": replace(VQ_VAE, codebook_size=2, restart_dead_codes=100),
}
SNAPSHOTS = {"vae": (1, 3)}  # also shipped as vae_epoch1.pt and vae_epoch3.pt, for comparing training stages


def pretrained_names() -> list[str]:
    """Every name `load_pretrained` accepts: the models above and their snapshots."""
    snapshots = [f"{name}_epoch{epoch}" for name, epochs in SNAPSHOTS.items() for epoch in epochs]
    return sorted([*PRETRAINED_CONFIGS, *snapshots])
