"""Notebook 14's measures and figures, on small untrained VQ-VAEs so that they run in seconds."""
import dataclasses
import math

import pytest
import torch

from vae_lab import Config
from vae_lab.lessons.discrete import (CodeUse, code_grids_figure, code_use, code_use_figure, code_use_table,
                                      image_panels_figure, rate_and_distortion, rate_table, train_with_quantizer,
                                      uniform_code_samples)
from vae_lab.model import VAE, build_model, quantize

SMALL = Config(architecture="conv", codebook_size=8, latent_dim=3, epochs=1, train_size=300)


def test_code_use_counts_every_grid_position_and_its_perplexity_is_exp_of_the_entropy(small):
    model = build_model(SMALL).eval()
    use = code_use(model, small.test_images[:30], batch_size=7)
    assert abs(use.frequencies.sum().item() - 1) < 1e-9 and use.used + use.dead == 8
    codes = model.encode_codes(small.test_images[:30]).flatten()
    assert use.used == len(codes.unique())
    p = torch.bincount(codes, minlength=8).double() / len(codes)
    assert math.isclose(use.perplexity, math.exp(-sum(v * math.log(v) for v in p.tolist() if v > 0)), rel_tol=1e-9)
    assert 1 <= use.perplexity <= use.used
    uniform = CodeUse(torch.full((4,), 0.25), 4, 0, 4.0)
    assert "perplexity" in code_use_table({"uniform": uniform, "small": use}).splitlines()[0]


def test_the_rate_of_a_vq_vae_is_its_code_prior_and_its_code_size_49_log2_k(small):
    vq, gaussian = build_model(SMALL).eval(), VAE(Config(latent_dim=4, hidden_dim=32)).eval()
    images = small.test_images[:20]
    rows = rate_and_distortion({"vq": vq, "gaussian": gaussian}, images, seed=3)
    assert rows[0].capacity_bits == 49 * 3 and rows[1].capacity_bits is None
    assert math.isclose(rows[0].rate, (-vq.prior.log_prob(vq.encode_codes(images))).mean().item(), rel_tol=1e-5)
    assert math.isclose(rows[0].rate_bits, rows[0].rate / math.log(2))
    assert rows == rate_and_distortion({"vq": vq, "gaussian": gaussian}, images, seed=3), "seeded: the same numbers"
    table = rate_table(rows).splitlines()
    assert len(table) == 3 and table[2].rstrip().endswith("—")


def test_uniform_codes_are_seeded_and_the_figures_draw(small, tmp_path):
    model = build_model(SMALL).eval()
    samples = uniform_code_samples(model, 5, seed=1)
    assert samples.shape == (5, 784) and torch.equal(samples, uniform_code_samples(model, 5, seed=1))
    code_use_figure({"small": code_use(model, small.test_images[:20])}, path=tmp_path / "use.png")
    image_panels_figure({"uniform": samples, "prior": model.sample(5)}, nrow=5, path=tmp_path / "panels.png")
    code_grids_figure(model, small.test_images[:3], path=tmp_path / "grids.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("use.png", "panels.png", "grids.png"))


def test_a_vq_vae_trains_with_the_students_quantiser_in_place_of_the_labs(small):
    model, history = train_with_quantizer(SMALL, small, lambda z, e: quantize(z, e))
    assert len(history) == 1 and model.quantizer.quantize is not quantize
    plain, plain_history = train_with_quantizer(SMALL, small, quantize)
    assert history.test_loss == plain_history.test_loss, "a correct quantiser trains exactly as the lab's does"
    with pytest.raises(ValueError, match="train_with_quantizer trains a VQ-VAE"):
        train_with_quantizer(dataclasses.replace(SMALL, architecture="mlp", codebook_size=0), small, quantize)
