"""Shared fixtures: MNIST loaded once, and a small slice of it for quick training tests.

The test process sets the lab's process-wide switches itself, as the CLI and the notebooks do.
"""
import pytest
import torch

from vae_lab import VAE, Config, load_mnist, load_pretrained
from vae_lab.runtime import configure_process

configure_process()


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def small(mnist):
    """1,000 training and 500 test images: a few batches, enough to see learning."""
    return mnist.subset(train_size=1000, test_size=500)


@pytest.fixture(scope="module")
def vae():
    """The shipped 20-D VAE (notebook 04's lab settings)."""
    return load_pretrained("vae").model


@pytest.fixture(scope="module")
def random_cvae():
    """A small untrained conditional VAE with a fixed seed."""
    return VAE(Config(conditional=True, latent_dim=4, hidden_dim=32, seed=3)).eval()


@pytest.fixture(scope="module")
def labelled_images():
    """Seven random (784,) images and random digit labels."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(7, 784, generator=generator), torch.randint(0, 10, (7,), generator=generator)


@pytest.fixture
def tiny_config():
    return Config(epochs=2, batch_size=100, hidden_dim=64, latent_dim=4)


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture
def run_cells(tmp_path):
    """Run code cells as one notebook in a real kernel, as the series runs notebooks; return the executed cells."""
    import nbformat

    from vae_lab.tools.series import execute_notebook

    def run(sources: list[str]) -> list:
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = tmp_path / "cells.ipynb"
        nbformat.write(notebook, path)
        execute_notebook(path, path)
        return nbformat.read(path, 4).cells

    return run
