"""Notebook 12's measures and figures, on small untrained models so that they run in seconds."""
import dataclasses

import pytest
import torch

from vae_lab import Config
from vae_lab.lessons.learned_priors import (holes_figure, prior_samples_figure, prior_table, pseudo_inputs_figure,
                                            score_priors, train_with_density)
from vae_lab.model import build_model
from vae_lab.prior import log_mixture_density

SMALL = Config(latent_dim=3, hidden_dim=16, binarize=True, prior_components=4, epochs=1)


@pytest.fixture(scope="module")
def models():
    return {"standard": build_model(SMALL).eval(),
            "VampPrior": build_model(dataclasses.replace(SMALL, prior="vamp")).eval()}


def test_the_comparison_scores_every_model_and_prints_one_row_each(models, small):
    rows = score_priors(models, small, n_test=20, iwae_samples=8, n_samples=200)
    assert [r.name for r in rows] == list(models)
    for r in rows:
        assert r.elbo < -r.nll and 0 <= r.holes <= 1 and 0 <= r.active <= 3
        assert r.average_kl == pytest.approx(r.mutual_information + r.marginal_kl)
    table = prior_table(rows).splitlines()
    assert len(table) == 3 and table[1].startswith("standard") and table[2].startswith("VampPrior")


def test_the_figures_draw_one_panel_per_model_and_the_pseudo_inputs(models, small, tmp_path):
    assert len(prior_samples_figure(models, n=8, path=tmp_path / "samples.png").axes) == 2
    assert len(holes_figure(models, small.test_images, small.test_labels, n_points=100).axes) == 2
    pseudo_inputs_figure(models["VampPrior"], n=4, path=tmp_path / "pseudo.png")
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "pseudo.png").stat().st_size > 0


def test_a_prior_trains_with_the_students_density_as_with_the_labs(small):
    config = dataclasses.replace(SMALL, prior="vamp", train_size=300)
    by_hand = lambda z, means, logvars: log_mixture_density(z.double(), means.double(), logvars.double()).float()
    model, history = train_with_density(config, small, by_hand)
    assert model.prior.log_density is by_hand and len(history) == 1
    _, lab = train_with_density(config, small, log_mixture_density)
    assert history.test_loss == pytest.approx(lab.test_loss, abs=1e-3)
    with pytest.raises(ValueError, match="set prior='vamp'"):
        train_with_density(SMALL, small, by_hand)
