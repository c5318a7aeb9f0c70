"""Training: fit learns, repeats, resumes and stops cleanly; every variant trains; the IWAE objective; the
mean-reduced loss of notebook 03 collapses the posterior."""
import dataclasses
import math

import pytest
import torch

from vae_lab import VAE, Config, History, fit, load_checkpoint, load_pretrained, save_checkpoint
from vae_lab.checkpoint import CheckpointError
from vae_lab.loss import kl_divergence, log_prior, reconstruction_loss
from vae_lab.train import evaluate_loss, iwae_loss, training_loss


def losses(history: History) -> dict:
    """Everything a history records except wall-clock time."""
    return {k: v for k, v in history.to_dict().items() if k != "seconds"}


def test_loss_falls_on_a_small_subset(small, tiny_config):
    history = fit(VAE(dataclasses.replace(tiny_config, epochs=4)), small, progress=False)
    assert len(history) == 4
    assert history.train_loss[-1] < history.train_loss[0] - 20
    assert history.test_loss[-1] < history.test_loss[0]
    assert all(t == pytest.approx(r + k) for t, r, k in zip(history.test_loss, history.test_reconstruction, history.test_kl))


def test_the_same_seed_gives_an_identical_history(small, tiny_config):
    first = fit(VAE(tiny_config), small, progress=False)
    torch.randn(100)  # whatever happened in between must not matter
    second = fit(VAE(tiny_config), small, progress=False)
    other = fit(VAE(dataclasses.replace(tiny_config, seed=2)), small, progress=False)
    assert losses(first) == losses(second)
    assert losses(first) != losses(other)


def resume_matches_a_straight_run(config, data, tmp_path, stop_after):
    """Train ``config`` straight through, and again stopped after ``stop_after`` epochs and resumed; assert the same
    history and weights, and return the resumed model and its history."""
    from vae_lab.model import build_model

    straight = build_model(config)
    expected = fit(straight, data, progress=False, checkpoint=tmp_path / "straight.pt")
    partial = tmp_path / "partial.pt"
    fit(build_model(dataclasses.replace(config, epochs=stop_after)), data, progress=False, checkpoint=partial)
    payload = torch.load(partial, weights_only=True)  # settings a file holds never drive the optimizer: the config does
    payload["optimizer"]["param_groups"][0].update(lr=0.5, betas=(0.5, 0.5), eps=0.1)
    payload["history"]["interrupted"] = True
    torch.save(payload, partial)
    resumed = build_model(config)
    history = fit(resumed, data, progress=False, checkpoint=partial, resume=True)
    assert losses(history) == losses(expected)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    return resumed, history


def test_resume_equals_an_uninterrupted_run(small, tiny_config, tmp_path):
    resume_matches_a_straight_run(dataclasses.replace(tiny_config, epochs=4), small, tmp_path, stop_after=2)


def test_resume_refuses_a_checkpoint_with_other_settings(small, tiny_config, tmp_path):
    path = tmp_path / "run.pt"
    fit(VAE(dataclasses.replace(tiny_config, epochs=1)), small, progress=False, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"\(latent_dim=4 there but 2 here\); resume with the same settings"):
        fit(VAE(dataclasses.replace(tiny_config, latent_dim=2)), small, progress=False, checkpoint=path, resume=True)
    assert path.read_bytes() == before


def test_an_interrupted_fit_keeps_the_history_so_far(small, tiny_config, tmp_path, capsys):
    def stop_after_first_epoch(history):
        raise KeyboardInterrupt

    history = fit(VAE(dataclasses.replace(tiny_config, epochs=5)), small, progress=False,
                  checkpoint=tmp_path / "run.pt", on_epoch=stop_after_first_epoch)
    assert history.interrupted and len(history) == 1
    assert "training interrupted: kept 1 complete epoch(s) of 5" in capsys.readouterr().err
    assert len(load_checkpoint(tmp_path / "run.pt").history) == 1


@pytest.mark.parametrize("split, pixel", [("train", float("nan")), ("test", float("inf")), ("train", 1.5),
                                          ("test", -0.5)])
def test_pixels_outside_0_to_1_are_refused_before_training_naming_the_image(small, tiny_config, split, pixel):
    images = getattr(small, f"{split}_images").clone()
    images[7, 300] = pixel
    broken = dataclasses.replace(small, **{f"{split}_images": images})
    name = "training" if split == "train" else "test"
    with pytest.raises(ValueError, match=rf"the {name} images hold a pixel of {pixel} \(image 7\); pixels must be "
                                         r"numbers in \[0, 1\], as load_mnist gives"):
        fit(VAE(tiny_config), broken, progress=False)


def test_a_nan_loss_stops_training_naming_epoch_batch_and_fix(small, tiny_config, monkeypatch):
    real_loss = training_loss
    monkeypatch.setattr("vae_lab.train.training_loss", lambda *args: real_loss(*args)._replace(
        total=torch.tensor(float("nan"))))
    with pytest.raises(FloatingPointError, match=r"the loss became nan in epoch 1, batch 1; training stopped. Lower "
                                                 r"the learning rate \(now 0.001\)"):
        fit(VAE(tiny_config), small, progress=False)


def test_weights_that_diverge_in_an_epochs_last_steps_are_not_saved(small, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr("vae_lab.train.evaluate_loss", lambda *args: (float("nan"), 1.0, float("nan")))
    with pytest.raises(FloatingPointError, match=r"the test loss became nan after epoch 1: the weights diverged .*"
                                                 r"that epoch was not saved. Lower the learning rate"):
        fit(VAE(tiny_config), small, progress=False, checkpoint=tmp_path / "run.pt")
    assert not (tmp_path / "run.pt").exists()


def test_training_beyond_the_data_is_refused(small, tiny_config):
    with pytest.raises(ValueError, match=r"train_size=2000 but the data holds 1,000 training images; lower train_size"):
        fit(VAE(dataclasses.replace(tiny_config, train_size=2000)), small, progress=False)
    with pytest.raises(TypeError, match="fit expects the data as an MNIST .*, got tuple"):
        fit(VAE(tiny_config), (small.train_images, small.train_labels), progress=False)


def test_a_huge_learning_rate_never_diverges_silently(small):
    config = Config(epochs=3, lr=0.9, hidden_dim=64, latent_dim=4, batch_size=50)
    try:
        history = fit(VAE(config), small, progress=False)
    except FloatingPointError as error:
        assert "Lower the learning rate (now 0.9)" in str(error)
    else:
        assert all(map(torch.isfinite, map(torch.tensor, history.train_loss + history.test_loss)))


def test_dynamic_binarization_trains(small, tiny_config):
    history = fit(VAE(dataclasses.replace(tiny_config, binarize=True)), small, progress=False)
    assert len(history) == 2 and history.train_loss[1] < history.train_loss[0]


def test_the_shipped_model_is_the_labs_seed_run(mnist):
    pretrained = load_pretrained()
    assert pretrained.config == Config()
    assert len(pretrained.history) == 10
    assert pretrained.history.test_loss[-1] <= 105.6
    assert pretrained.history.test_loss == sorted(pretrained.history.test_loss, reverse=True)
    assert evaluate_loss(pretrained.model, mnist.test_images)[0] == pytest.approx(pretrained.history.test_loss[-1], abs=0.3)
    with pytest.raises(ValueError, match="no pretrained model called 'vea'; available: \\[.*'vae'"):
        load_pretrained("vea")


def test_warm_up_starts_training_with_a_small_kl_weight(small, tiny_config):
    plain = fit(VAE(dataclasses.replace(tiny_config, epochs=1)), small, progress=False)
    warm = fit(VAE(dataclasses.replace(tiny_config, epochs=1, warmup_epochs=5)), small, progress=False)
    assert warm.train_kl[0] > plain.train_kl[0], "with β near 0 the encoder spends more nats on KL at first"


@pytest.mark.parametrize("settings", [{"architecture": "conv"}, {"conditional": True}, {"hidden_layers": 2},
                                      {"likelihood": "continuous_bernoulli"}, {"lr_final": 1e-4, "warmup_epochs": 1},
                                      {"iwae_samples": 3, "binarize": True}])
def test_every_variant_learns_and_round_trips_through_a_checkpoint(small, tiny_config, tmp_path, settings):
    model = VAE(dataclasses.replace(tiny_config, epochs=3, **settings))
    history = fit(model, small, progress=False)
    assert history.test_loss[-1] < history.test_loss[0] or settings.get("likelihood")
    assert all(math.isfinite(v) for v in history.test_loss)
    save_checkpoint(tmp_path / "model.pt", model, history=history)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config == model.config
    x = small.test_images[:4]
    labels = small.test_labels[:4] if model.config.conditional else None
    assert torch.equal(loaded.model.reconstruct(x, labels), model.reconstruct(x, labels))


def iwae_by_hand(model, x, k, seed):
    """The IWAE loss of ``model`` on ``x`` from the k draws that seed makes, written out; with the mean
    reconstruction and the posterior's μ and log σ²."""
    torch.manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape)
        log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        reconstruction = torch.stack([reconstruction_loss(model.decoder(z[i]), x) for i in range(k)])
        log_w = -reconstruction + model.prior.log_prob(z, model.encoder) - log_q
    return -(torch.logsumexp(log_w, 0) - math.log(k)).mean(), reconstruction.mean(), mu, logvar


def test_the_iwae_training_loss_is_minus_the_log_mean_weight_of_its_own_draws(vae, mnist):
    x = mnist.test_images[:8].reshape(8, -1)
    torch.manual_seed(5)
    loss = iwae_loss(vae, x, k=4)
    expected, reconstruction, mu, logvar = iwae_by_hand(vae, x, 4, seed=5)
    assert loss.total.item() == pytest.approx(expected.item(), abs=1e-3)
    assert loss.reconstruction.item() == pytest.approx(reconstruction.item(), abs=1e-3)
    assert loss.kl.item() == pytest.approx(kl_divergence(mu, logvar).mean().item(), abs=1e-4)


def test_more_samples_in_the_iwae_loss_give_a_tighter_bound_and_train_the_encoder(vae, mnist):
    x = mnist.test_images[:200].reshape(200, -1)
    torch.manual_seed(0)
    elbo_like, tight = iwae_loss(vae, x, k=1).total, iwae_loss(vae, x, k=50).total
    assert elbo_like.item() - tight.item() > 1, "50 samples close several nats of the ELBO's gap"
    vae.zero_grad()
    tight.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.parameters())
    vae.zero_grad()


def test_the_mean_reduced_loss_collapses_the_posterior(small):
    config = Config(epochs=2, batch_size=100, hidden_dim=64, latent_dim=4, seed=0)
    results = {}
    for reduction, beta in (("sum", 1.0), ("mean", 784.0)):  # mean-reduced BCE trains like beta = 784
        model = VAE(dataclasses.replace(config, beta=beta))
        history = fit(model, small, progress=False)
        assert len(history) == 2
        torch.manual_seed(0)
        results[reduction] = evaluate_loss(model, small.test_images)
    assert results["mean"][2] < 0.1 < results["sum"][2]  # KL: collapsed vs used
    assert results["sum"][1] < results["mean"][1]  # the collapsed model reconstructs worse


NEW_KINDS = [{"prior": "mixture", "prior_components": 4}, {"prior": "vamp", "prior_components": 4},
             {"stochastic_layers": 2, "warmup_epochs": 1}, {"stochastic_layers": 2, "free_bits": 0.2},
             {"stochastic_layers": 2, "prior": "vamp", "prior_components": 4, "iwae_samples": 3, "binarize": True},
             {"architecture": "conv", "codebook_size": 8, "restart_dead_codes": 3}]


@pytest.mark.parametrize("settings", NEW_KINDS)
def test_each_prior_and_depth_learns_resumes_bit_for_bit_and_round_trips(small, tiny_config, tmp_path, settings):
    config = dataclasses.replace(tiny_config, epochs=3, top_latent_dim=2, top_hidden_dim=16, **settings)
    resumed, history = resume_matches_a_straight_run(config, small, tmp_path, stop_after=1)
    assert history.test_loss[-1] < history.test_loss[0]
    save_checkpoint(tmp_path / "model.pt", resumed, history=history)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert type(loaded.model) is type(resumed) and loaded.config == config
    x = small.test_images[:4]
    assert torch.equal(loaded.model.reconstruct(x), resumed.eval().reconstruct(x))


def test_free_bits_keep_more_of_the_code_than_the_same_run_without(small, tiny_config):
    from vae_lab.latent import encode_posterior

    config = dataclasses.replace(tiny_config, epochs=3, beta=8.0)
    counts = {}
    for free_bits in (0.0, 1.0):
        model = VAE(dataclasses.replace(config, free_bits=free_bits))
        fit(model, small, progress=False)
        counts[free_bits] = int((encode_posterior(model, small.test_images)[0].var(dim=0) > 0.01).sum())
    assert counts[1.0] > counts[0.0], counts


def test_the_iwae_loss_of_a_learned_prior_uses_its_density(small):
    from vae_lab.model import build_model

    model = build_model(Config(latent_dim=3, hidden_dim=16, prior="vamp", prior_components=3))
    x = small.test_images[:6].reshape(6, -1)
    torch.manual_seed(0)
    loss = iwae_loss(model, x, k=4)
    assert loss.total.item() == pytest.approx(iwae_by_hand(model, x, 4, seed=0)[0].item(), abs=1e-3)
