"""β-VAE: active units, the shipped β sweep, rate and distortion, the warm-up run."""
import pytest
import torch
from matplotlib.figure import Figure

from vae_lab import VAE, Config
from vae_lab.lessons.beta_vae import (TrackedRun, active_units, beta_name, fit_tracking_units, load_beta_sweep,
                              rate_distortion, rate_distortion_figure, sweep_figure, sweep_table, usage_figure,
                              warmup_figure)
from vae_lab.latent import encode_posterior
from vae_lab.checkpoint import load_pretrained
from vae_lab.train import evaluate_loss
from vae_lab.zoo import BETAS


@pytest.fixture(scope="module")
def sweep():
    return load_beta_sweep()


@pytest.fixture(scope="module")
def points(sweep, mnist):
    return rate_distortion(sweep, mnist.test_images[:1000])


def test_a_unit_is_active_when_its_mean_varies_across_images_by_more_than_the_threshold():
    spread = torch.tensor([1.0, 0.2, 0.05, 0.0])  # standard deviations: variances 1, 0.04, 0.0025, 0
    noise = torch.randn(4000, 4, generator=torch.Generator().manual_seed(0))
    mu = noise * spread + torch.tensor([0.0, 0.0, 5.0, -3.0])  # a constant offset carries no information
    assert active_units(mu).tolist() == [True, True, False, False]
    assert active_units(mu, threshold=0.1).tolist() == [True, False, False, False]
    assert active_units(mu, threshold=0.0001).tolist() == [True, True, True, False]


@pytest.mark.parametrize("shape", [(20,), (1, 20), (2, 3, 4)])
def test_active_units_names_the_shape_it_needs(shape):
    with pytest.raises(ValueError, match=r"shape \(N, latent_dim\).*encode_posterior"):
        active_units(torch.zeros(shape))


def test_the_sweep_names_the_shipped_models_and_refuses_other_betas():
    assert beta_name(1) == "vae" and beta_name(0.25) == "beta_vae_0.25" and beta_name(8.0) == "beta_vae_8"
    with pytest.raises(ValueError, match="no shipped model has β = 3"):
        beta_name(3)


def test_the_shipped_sweep_differs_only_in_beta(sweep):
    assert list(sweep) == sorted((1.0, *BETAS))
    for beta, model in sweep.items():
        assert model.config == Config(beta=beta)
    assert not torch.equal(sweep[1.0].decoder.out.weight, sweep[8.0].decoder.out.weight)


def test_rate_and_distortion_are_the_elbo_parts_of_each_model(sweep, points, mnist):
    images = mnist.test_images[:1000].reshape(-1, 784)
    assert [p.beta for p in points] == sorted(sweep)
    for point in points:
        model = sweep[point.beta]
        mu, _ = encode_posterior(model, images)
        _, _, kl = evaluate_loss(model, images)
        assert point.rate == pytest.approx(kl, rel=1e-5)  # the KL is exact, whatever z was drawn
        assert point.rate == pytest.approx(point.kl_per_dimension.sum().item(), rel=1e-4)
        assert point.negative_elbo == pytest.approx(point.rate + point.distortion)
        assert torch.equal(point.activity, mu.var(dim=0))
        assert point.active == int(active_units(mu).sum()) == int((point.activity > 0.01).sum())
    again = rate_distortion({1.0: sweep[1.0]}, mnist.test_images[:1000])[0]
    assert again.distortion == points[2].distortion, "the seeded z makes the distortion repeat exactly"


def test_a_larger_beta_buys_a_cheaper_code_with_worse_reconstructions(points):
    rates, distortions = [p.rate for p in points], [p.distortion for p in points]
    assert rates == sorted(rates, reverse=True) and distortions == sorted(distortions)
    assert points[0].active == 20 and points[-1].active < 12, "β = 8 switches off about half the units"
    assert min(points, key=lambda p: p.negative_elbo).beta == 1.0, "β = 1 trains the ELBO and wins on it"


def test_the_table_has_a_row_per_beta_rounded_to_one_decimal(points):
    lines = sweep_table(points).splitlines()
    assert len(lines) == len(points) + 1 and "−ELBO" in lines[0]
    row = lines[3].split()
    assert row[0] == "1" and row[1] == f"{points[2].distortion:.1f}" and row[3] == f"{points[2].negative_elbo:.1f}"
    assert row[4:] == [str(points[2].active), "of", "20"]


def test_fit_tracking_units_counts_the_active_units_after_every_epoch(mnist):
    data = mnist.subset(train_size=300, test_size=200)
    model = VAE(Config(epochs=2, batch_size=100, hidden_dim=32, latent_dim=4, beta=4.0, warmup_epochs=2))
    run = fit_tracking_units(model, data, progress=False)
    assert run.config == model.config and len(run.history) == len(run.active) == 2
    assert run.active[-1] == int(active_units(encode_posterior(model, data.test_images)[0]).sum())
    assert all(0 <= count <= 4 for count in run.active)


def test_the_figures_draw_every_model_and_the_lines_of_equal_elbo(sweep, points, mnist, tmp_path):
    figure = rate_distortion_figure(points, step=10, path=tmp_path / "rd.png")
    axes = figure.axes[0]
    best = min(p.negative_elbo for p in points)
    diagonals = [line for line in axes.lines if len(line.get_xdata()) == 2]
    assert all(x + y == pytest.approx(diagonals[0].get_xdata()[0] + diagonals[0].get_ydata()[0])
               for x, y in zip(diagonals[0].get_xdata(), diagonals[0].get_ydata()))
    assert diagonals[0].get_xdata()[0] + diagonals[0].get_ydata()[0] == pytest.approx(best)
    worst = max(p.negative_elbo for p in points)
    assert len(diagonals) == 1 + len([level for level in range(0, 1000, 10) if best < level < worst + 10])
    assert (tmp_path / "rd.png").stat().st_size > 0
    assert len(usage_figure(points).axes[1].lines) == len(points)
    assert len(sweep_figure(sweep, mnist.test_images, n=4).axes) == 2 * (len(sweep) + 1)
    small = {1.0: sweep[1.0]}
    assert isinstance(sweep_figure(small, mnist.test_images, n=3), Figure)


def test_the_warmup_figure_draws_the_schedule_of_each_run():
    history = load_pretrained("vae").history
    runs = {"no warm-up": TrackedRun(Config(beta=4.0), history, [20] * 10),
            "warm-up": TrackedRun(Config(beta=4.0, warmup_epochs=5), history, [20] * 10)}
    schedule = warmup_figure(runs).axes[0].lines
    assert schedule[0].get_ydata().tolist() == [4.0] * len(schedule[0].get_xdata())
    ramp = schedule[1].get_ydata()
    assert ramp[0] == 0 and ramp[-1] == 4.0 and max(ramp) == 4.0
