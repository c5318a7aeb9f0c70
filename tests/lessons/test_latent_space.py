"""Notebook 07's figures (vae_lab.lessons.latent_space): scatter with a legend per digit, interpolation, dimensions, manifold."""
from matplotlib.figure import Figure

from vae_lab import VAE, Config
from vae_lab.latent import encode_posterior, pca_2d
from vae_lab.lessons.latent_space import dimension_figure, interpolation_strip, latent_scatter, manifold_figure


def test_figures_are_returned_with_a_legend_per_digit(vae, mnist, tmp_path):
    images, labels = mnist.test_images[:400], mnist.test_labels[:400]
    mu, logvar = encode_posterior(vae, images)
    scatter = latent_scatter(pca_2d(mu).coordinates, labels, "PCA of μ", prior=True, path=tmp_path / "pca.png")
    legend = [text.get_text() for text in scatter.axes[0].get_legend().get_texts()]
    assert legend == [str(digit) for digit in range(10)] + ["prior 1σ, 2σ"]
    assert (tmp_path / "pca.png").read_bytes().startswith(b"\x89PNG")
    assert isinstance(interpolation_strip(vae, images[0], images[1], steps=6), Figure)
    assert len(dimension_figure(mu, logvar).axes) == 2
    assert isinstance(manifold_figure(VAE(Config(latent_dim=2, hidden_dim=16)), n=5), Figure)
