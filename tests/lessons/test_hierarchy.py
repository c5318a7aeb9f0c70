"""Notebook 13's measures and figures, on small untrained two-layer models so that they run in seconds."""
import dataclasses

import pytest
import torch

from vae_lab import Config
from vae_lab.lessons.hierarchy import (collapse_figure, fit_tracking_layers, hierarchical_negative_elbo, layer_table,
                                       layer_use, shared_top_figure, unit_kl_figure)
from vae_lab.loss import gaussian_kl
from vae_lab.model import build_model

SMALL = Config(stochastic_layers=2, latent_dim=4, hidden_dim=32, top_latent_dim=3, top_hidden_dim=16, binarize=True,
               epochs=2, train_size=300)


def test_layer_use_reports_each_layers_kl_per_unit_and_active_units(small):
    model = build_model(SMALL)
    use = layer_use(model, small.test_images[:50])
    assert len(use.kl) == 2 and use.units == (4, 3) and all(0 <= a <= u for a, u in zip(use.active, use.units))
    assert all(abs(kl - units.sum().item()) < 1e-3 for kl, units in zip(use.kl, use.kl_per_unit))
    vamp = layer_use(build_model(dataclasses.replace(SMALL, prior="vamp", prior_components=3)), small.test_images[:50])
    assert vamp.kl_per_unit[1] is None and "—" in layer_table({"vamp": vamp})
    table = layer_table({"two layers": use}).splitlines()
    assert len(table) == 3 and "z₁" in table[1] and "z₂" in table[2]


def test_a_tracked_run_measures_every_epoch_and_the_figures_draw(small, tmp_path):
    run = fit_tracking_layers("plain", build_model(SMALL), small, small.test_images[:50], progress=False)
    assert len(run.uses) == len(run.history) == 2
    collapse_figure([run], path=tmp_path / "collapse.png")
    unit_kl_figure({"plain": run.uses[-1]}, path=tmp_path / "units.png")
    shared_top_figure(build_model(SMALL).eval(), rows=2, columns=3, path=tmp_path / "top.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("collapse.png", "units.png", "top.png"))


def test_the_hierarchical_loss_with_the_labs_kl_is_the_models_own(small):
    model = build_model(SMALL).eval()
    x = small.test_images[:8]
    torch.manual_seed(3)
    parts = model.elbo_parts(x)
    expected = parts.reconstruction + parts.kl[0].total + parts.kl[1].total
    assert torch.allclose(hierarchical_negative_elbo(model, x, gaussian_kl, seed=3), expected, atol=1e-4)
