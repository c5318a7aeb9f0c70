"""Train the weights shipped in vae_lab/pretrained/ (run from the repository root; about a minute on 2 CPU cores).

- vae.pt: the lab's seed configuration (Config()), 10 epochs, seed 1, with its history;
- vae_epoch1.pt, vae_epoch3.pt: the same run after 1 and 3 epochs, for comparing training stages;
- vae_latent2.pt: the same settings with a 2-D latent space, for drawing the latent manifold.
"""
import copy

from vae_lab import VAE, Config, fit, load_mnist, save_checkpoint
from vae_lab.train import PRETRAINED_DIR


def train(name: str, config: Config, snapshots: tuple[int, ...] = ()) -> None:
    model = VAE(config)

    def snapshot(history):
        if len(history) in snapshots:
            save_checkpoint(PRETRAINED_DIR / f"{name}_epoch{len(history)}.pt", model, history=copy.deepcopy(history))

    history = fit(model, data, progress=False, on_epoch=snapshot)
    save_checkpoint(PRETRAINED_DIR / f"{name}.pt", model, history=history)
    print(f"{name}: test loss {history.test_loss[-1]:.3f} after {len(history)} epochs, {sum(history.seconds):.1f}s")


data = load_mnist()
train("vae", Config(), snapshots=(1, 3))
train("vae_latent2", Config(latent_dim=2))
