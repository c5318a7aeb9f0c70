"""Train the weights shipped in vae_lab/pretrained/, from the settings in vae_lab/zoo.py.

Run from the repository root: `python scripts/make_pretrained.py [NAME ...]` (no names: all of them).
Each run checkpoints to runs/pretrained/NAME.pt after every epoch and resumes from there if stopped.
On a quiet 2-core machine the lab's models take about 20 s each (conv_vae 2.5 min, best about 27 min: 185
epochs on the 5-sample IWAE bound). Notebooks 12 and 13's four models (`python scripts/make_pretrained.py
mixture_prior vamp_prior hierarchy hierarchy_no_free_bits`) trained for 36 to 41 min each (their histories'
seconds), four at once on a busy shared 2-core machine; a quiet machine is many times faster. Notebook 14's three
VQ-VAEs (`python scripts/make_pretrained.py vq_vae vq_vae_no_restart vq_vae_k2`, 3 epochs each) took 1,328, 1,307
and 1,008 s, three at once with OMP_NUM_THREADS=1 each on a shared 2-core machine under a load of about 15. Keep the machine quiet:
the seconds are shipped in each history.
The same command on the same machine gives bit-identical weights and histories (only the seconds differ).
"""
import copy
import sys
from pathlib import Path

from vae_lab import fit, load_mnist, save_checkpoint
from vae_lab.checkpoint import PRETRAINED_DIR
from vae_lab.model import build_model
from vae_lab.runtime import configure_process
from vae_lab.zoo import PRETRAINED_CONFIGS, SNAPSHOTS


def train(name: str) -> None:
    model = build_model(PRETRAINED_CONFIGS[name])

    def snapshot(history):
        if len(history) in SNAPSHOTS.get(name, ()):
            save_checkpoint(PRETRAINED_DIR / f"{name}_epoch{len(history)}.pt", model, history=copy.deepcopy(history))

    history = fit(model, data, progress=False, on_epoch=snapshot, checkpoint=Path("runs/pretrained") / f"{name}.pt",
                  resume=True)
    if history.interrupted:
        sys.exit(f"{name}: interrupted after {len(history)} epochs; run again to resume")
    save_checkpoint(PRETRAINED_DIR / f"{name}.pt", model, history=history)
    print(f"{name}: test loss {history.test_loss[-1]:.3f} after {len(history)} epochs, {sum(history.seconds):.1f}s")


configure_process()
names = sys.argv[1:] or list(PRETRAINED_CONFIGS)
unknown = sorted(set(names) - set(PRETRAINED_CONFIGS))
if unknown:
    sys.exit(f"unknown model(s) {unknown}; choose from {sorted(PRETRAINED_CONFIGS)}")
data = load_mnist()
for name in names:
    train(name)
