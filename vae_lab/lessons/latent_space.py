"""Notebook 07's figures of the latent space (an interpolation strip, a labelled 2-D scatter, per-dimension bars and
the 2-D manifold) and its measurement of whether the ELBO prefers some latent axes: the best diagonal posterior in
rotated axes."""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from ..latent import encode_posterior, gaussian_quantiles, interpolate, kl_per_dimension, manifold_grid, rank_dimensions
from ..loss import kl_divergence
from ..model import VAE, decoder_log_likelihood, flatten_images
from ..plots import new_figure, save_figure, show_images


@torch.no_grad()
def interpolation_strip(model: VAE, image_a: torch.Tensor, image_b: torch.Tensor, steps: int = 10,
                        path: str | Path | None = None) -> Figure:
    """Three rows from digit A to digit B: pixel cross-fade (1 − t)·x_A + t·x_B, then decoded linear and spherical paths."""
    pair = flatten_images(torch.stack([image_a, image_b]).reshape(2, -1))
    mu, _ = encode_posterior(model, pair)
    rows = [interpolate(pair[0], pair[1], steps),
            model.decode(interpolate(mu[0], mu[1], steps)).cpu(),
            model.decode(interpolate(mu[0], mu[1], steps, spherical=True)).cpu()]
    figure = show_images(torch.cat(rows), nrow=steps,
                         title="pixel cross-fade · linear in z · spherical in z   (t = 0 → 1)")
    return save_figure(figure, path)


def latent_scatter(points: torch.Tensor, labels: torch.Tensor, title: str, axis_names: tuple[str, str] = ("z[0]", "z[1]"),
                   prior: bool = False, path: str | Path | None = None) -> Figure:
    """2-D points coloured by digit label, with a legend; ``prior`` adds the N(0, I) circles of radius 1σ and 2σ."""
    figure = new_figure(5.6, 4.6)
    axes = figure.add_subplot()
    colours = [f"C{digit}" for digit in range(10)]
    for digit in range(10):
        chosen = points[labels == digit]
        axes.scatter(chosen[:, 0], chosen[:, 1], s=4, alpha=0.6, color=colours[digit], label=str(digit))
    if prior:
        for radius in (1, 2):
            axes.add_patch(Circle((0, 0), radius, fill=False, linestyle="--", color="black", linewidth=1))
        axes.plot([], [], "k--", linewidth=1, label="prior 1σ, 2σ")
    axes.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1], aspect="equal")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def dimension_figure(mu: torch.Tensor, logvar: torch.Tensor, path: str | Path | None = None) -> Figure:
    """Bars per latent dimension, in `rank_dimensions` order: Var_n(μ) and the average KL of each dimension."""
    order = rank_dimensions(mu)
    names = [str(int(j)) for j in order]
    figure = new_figure(9, 2.8)
    for index, (values, title) in enumerate([(mu.var(dim=0), "variance of μ across test images"),
                                             (kl_per_dimension(mu, logvar), "average KL (nats)")], 1):
        axes = figure.add_subplot(1, 2, index)
        axes.bar(names, values[order].numpy(), color="C0" if index == 1 else "C1")
        axes.set(title=title, xlabel="latent dimension j (ranked by variance of μ)")
        axes.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def manifold_figure(model: VAE, n: int = 20, path: str | Path | None = None) -> Figure:
    """The n×n `manifold_grid` of a 2-D model as one picture."""
    q = gaussian_quantiles(n)
    title = f"z₁ from {q[0]:.2f} to {q[-1]:.2f} (left → right), z₂ the same (bottom → top)"
    return save_figure(show_images(manifold_grid(model, n), nrow=n, title=title, scale=0.3), path)


def random_rotation(d: int, seed: int) -> torch.Tensor:
    """A random d×d rotation R (RᵀR = I, det R = +1), uniform over rotations: the Q of the QR decomposition of a
    standard Gaussian matrix, its columns' signs fixed by diag(R_qr) > 0, then one column flipped if det Q = −1."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.float()


def check_rotation(rotation: torch.Tensor, latent_dim: int) -> None:
    """Refuse anything but an orthogonal latent_dim × latent_dim matrix, which keeps the prior N(0, I) unchanged."""
    if rotation.shape != (latent_dim, latent_dim):
        raise ValueError(f"expected a {latent_dim}×{latent_dim} rotation for a {latent_dim}-D latent space, "
                         f"got shape {tuple(rotation.shape)}; build one with random_rotation({latent_dim}, seed)")
    if not torch.allclose(rotation @ rotation.T, torch.eye(latent_dim), atol=1e-5):
        raise ValueError("the rotation is not orthogonal (R Rᵀ ≠ I), so it would change the prior; "
                         "build one with random_rotation(d, seed) or torch.linalg.qr")


def rotated_posterior(mu: torch.Tensor, logvar: torch.Tensor, rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's q = N(μ, diag σ²) seen in the axes z′ = R z and kept diagonal: mean R μ and log of the variances
    diag(R diag(σ²) Rᵀ)_i = Σ_j R_ij² σ_j² (the off-diagonal covariances are dropped)."""
    return mu @ rotation.T, torch.log(logvar.exp() @ rotation.T.pow(2))


def rotated_reconstruction(model: VAE, images: torch.Tensor, z_rotated: torch.Tensor,
                           rotation: torch.Tensor) -> torch.Tensor:
    """−log p(x | Rᵀ z′) for draws z′ of shape (k, N, d) in the rotated axes: the decoder′(z′) = decoder(Rᵀ z′), which
    turns the rotated prior back into the same N(0, I) and so leaves p(x) unchanged. Returns (k, N)."""
    return -decoder_log_likelihood(model, images)(z_rotated @ rotation)  # rows: (Rᵀ z′)ᵀ = z′ᵀ R


def rotated_negative_elbo(model: VAE, images: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                          rotation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """−ELBO per image of a diagonal q(z′|x) = N(mean, diag exp(logvar)) in the axes z′ = R z: the average over the noise
    ε (k, N, d) of −log p(x | Rᵀ(mean + σ ε)), plus KL(q ‖ N(0, I)), which no rotation changes. Returns (N,)."""
    z_rotated = mean + torch.exp(0.5 * logvar) * noise
    return rotated_reconstruction(model, images, z_rotated, rotation).mean(dim=0) + kl_divergence(mean, logvar)


def best_diagonal_posterior(model: VAE, images: torch.Tensor, rotation: torch.Tensor, steps: int = 200,
                            lr: float = 0.03, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's own diagonal q(z′|x) in the axes z′ = R z: Adam on its mean and log σ² for ``steps`` one-draw
    steps of the −ELBO with the decoder fixed, starting from the encoder's q seen in those axes (`rotated_posterior`)."""
    images = flatten_images(images)
    check_rotation(rotation, model.config.latent_dim)
    if model.config.conditional:
        raise ValueError("best_diagonal_posterior takes an unconditional VAE; a conditional one would need the labels")
    with torch.no_grad():
        start = rotated_posterior(*model.encoder(images), rotation)
    mean, logvar = (part.clone().requires_grad_() for part in start)
    optimizer = torch.optim.Adam([mean, logvar], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        noise = torch.randn((1, *mean.shape), generator=generator)
        loss = rotated_negative_elbo(model, images, mean, logvar, rotation, noise).sum()
        mean.grad, logvar.grad = torch.autograd.grad(loss, [mean, logvar])  # the decoder's weights stay untouched
        optimizer.step()
    return mean.detach(), logvar.detach()


def rotation_costs(model: VAE, images: torch.Tensor, rotations: dict[str, torch.Tensor], steps: int = 200,
                   lr: float = 0.03, seed: int = 0, scoring_draws: int = 64) -> dict[str, float]:
    """For each named rotation, the mean −ELBO (nats per image) of the best diagonal q in its axes
    (`best_diagonal_posterior`, the same steps and seed for all), scored on the same ``scoring_draws`` draws of ε."""
    images = flatten_images(images)
    noise = torch.randn(scoring_draws, len(images), model.config.latent_dim,
                        generator=torch.Generator().manual_seed(seed + 1))
    costs = {}
    for name, rotation in rotations.items():
        mean, logvar = best_diagonal_posterior(model, images, rotation, steps, lr, seed)
        with torch.no_grad():
            costs[name] = float(rotated_negative_elbo(model, images, mean, logvar, rotation, noise).mean())
    return costs
