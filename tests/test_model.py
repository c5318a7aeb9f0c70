"""The model: encoder, reparameterize, decoder, the MLP/conv/conditional variants, the decoder's log-likelihood, devices."""
import pytest
import torch

from vae_lab import VAE, Config, reparameterize
from vae_lab.loss import kl_divergence, reconstruction_loss
from vae_lab.model import LOGVAR_RANGE, build_model, choose_device, decoder_log_likelihood


def test_shapes_through_encoder_and_decoder():
    model = VAE()
    x = torch.rand(5, 784)
    out = model(x)
    assert out.logits.shape == (5, 784) and out.mu.shape == (5, 20) and out.logvar.shape == (5, 20)
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert model(x.reshape(5, 1, 28, 28)).logits.shape == (5, 784)
    assert model.sample(3).shape == (3, 784) and model.reconstruct(x).shape == (5, 784)


def test_sizes_come_from_the_config():
    model = VAE(Config(latent_dim=2, hidden_dim=32))
    assert model.encoder.hidden.out_features == 32 and model.encoder.mu.out_features == 2
    assert sum(p.numel() for p in VAE().parameters()) == 652_824


def test_initial_weights_follow_the_seed_and_leave_the_global_rng_alone():
    before = torch.get_rng_state()
    a, b, c = VAE(Config(seed=1)), VAE(Config(seed=1)), VAE(Config(seed=2))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a.encoder.hidden.weight, b.encoder.hidden.weight)
    assert not torch.equal(a.encoder.hidden.weight, c.encoder.hidden.weight)


@pytest.mark.parametrize("x, words", [
    (torch.rand(4, 729), r"expected images of shape \(N, 784\) or \(N, 1, 28, 28\), got \(4, 729\); flatten"),
    (torch.rand(28, 28), r"got \(28, 28\); flatten 28×28 images first, and add a batch dimension"),
    (torch.randint(0, 255, (4, 784), dtype=torch.uint8), r"floating-point images in \[0, 1\], got dtype torch.uint8; convert with x.float\(\) / 255"),
    ([[0.0] * 784], "expected a torch.Tensor of images, got list"),
])
def test_bad_images_get_a_clear_error(x, words):
    with pytest.raises((ValueError, TypeError), match=words):
        VAE()(x)


def test_decoder_refuses_a_latent_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"expects latents of shape \(N, 20\), got \(3, 2\); draw them with torch.randn\(n, 20\)"):
        VAE().decode(torch.randn(3, 2))


def test_reparameterize_has_the_right_mean_and_spread():
    mu, logvar = torch.full((200_000, 1), 2.0), torch.full((200_000, 1), 2 * torch.log(torch.tensor(3.0)))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean() - 2) < 0.03 and abs(z.std() - 3) < 0.03


def test_gradients_reach_the_encoder_through_the_sample():
    model = VAE()
    out = model(torch.rand(8, 784))
    out.logits.sum().backward()  # a loss of the decoder output only: its gradient must pass through z
    for layer in (model.encoder.hidden, model.encoder.mu, model.encoder.logvar):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_sampling_without_the_trick_blocks_gradients():
    mu = torch.zeros(3, requires_grad=True)
    z = torch.distributions.Normal(mu, 1.0).sample()
    assert not z.requires_grad
    reparameterize(mu, torch.zeros(3)).sum().backward()
    assert torch.equal(mu.grad, torch.ones(3))


def test_logvar_is_kept_in_a_finite_range():
    model = VAE()
    with torch.no_grad():
        model.encoder.logvar.bias.fill_(1e4)
    _, logvar = model.encoder(torch.rand(2, 784))
    assert logvar.max() == LOGVAR_RANGE[1] and torch.isfinite(torch.exp(logvar)).all()


@pytest.mark.parametrize("settings, parameters", [
    ({}, 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 + 400 * 784 + 784),
    ({"hidden_layers": 2}, 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 + 400 * 784 + 784 + 2 * (400 * 400 + 400)),
    ({"conditional": True}, 794 * 400 + 400 + 2 * (400 * 20 + 20) + 30 * 400 + 400 + 400 * 784 + 784),
])
def test_parameter_counts_follow_the_architecture(settings, parameters):
    assert VAE(Config(**settings)).parameter_count() == parameters


@pytest.mark.parametrize("settings", [{"architecture": "conv"}, {"hidden_layers": 3}, {"conditional": True},
                                      {"architecture": "conv", "conditional": True}])
def test_every_variant_maps_images_to_logits_and_back(settings):
    model = VAE(Config(latent_dim=6, **settings))
    x = torch.rand(5, 1, 28, 28)
    labels = torch.arange(5) if model.config.conditional else None
    out = model(x, labels)
    assert out.logits.shape == (5, 784) and out.mu.shape == out.logvar.shape == (5, 6)
    assert model.sample(3, labels=7 if labels is not None else None).shape == (3, 784)
    assert model.reconstruct(x, labels).shape == (5, 784)


def test_the_conv_vae_has_fewer_parameters_than_the_mlp():
    assert VAE(Config(architecture="conv")).parameter_count() < VAE(Config()).parameter_count() / 2


def test_conditioning_changes_the_decoded_digit_and_is_required():
    model = VAE(Config(conditional=True, latent_dim=4))
    z = torch.zeros(2, 4)
    assert not torch.allclose(model.decode(z, torch.tensor([3, 3])), model.decode(z, torch.tensor([8, 8])))
    with pytest.raises(ValueError, match="conditional VAE: pass the digit labels"):
        model(torch.rand(2, 784))
    with pytest.raises(ValueError, match="integer labels in 0..9"):
        model(torch.rand(2, 784), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="not conditional"):
        VAE(Config(latent_dim=4))(torch.rand(2, 784), torch.tensor([1, 2]))


def test_the_vae_log_likelihood_is_minus_the_reconstruction_loss(vae, mnist):
    x = mnist.test_images[:6]
    z = torch.randn(3, 6, 20, generator=torch.Generator().manual_seed(0))
    log_likelihood = decoder_log_likelihood(vae, x)(z)
    with torch.no_grad():
        expected = torch.stack([-reconstruction_loss(vae.decoder(z[i]), x) for i in range(3)])
    assert log_likelihood.shape == (3, 6) and torch.allclose(log_likelihood, expected, atol=1e-3)


def test_device_choice():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device 'gpu0'; use 'auto', 'cpu', 'cuda' or 'mps'"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available on this machine; use 'auto' or 'cpu'"):
            choose_device("cuda")


# ---- Learned priors on any VAE, and two stochastic layers (notebooks 12 and 13) ----

PRIOR_KINDS = [{"prior": "mixture", "prior_components": 5}, {"prior": "vamp", "prior_components": 5},
               {"stochastic_layers": 2}, {"stochastic_layers": 2, "prior": "vamp", "prior_components": 5},
               {"stochastic_layers": 2, "prior": "mixture", "prior_components": 5},
               {"architecture": "conv", "prior": "vamp", "prior_components": 5}]


@pytest.mark.parametrize("settings", PRIOR_KINDS)
def test_every_prior_and_depth_builds_counts_samples_and_reconstructs(settings):
    from vae_lab.model import sample_digits

    config = Config(latent_dim=4, hidden_dim=32, top_latent_dim=3, top_hidden_dim=16, **settings)
    model = build_model(config).eval()
    assert model.parameter_count() == config.parameter_count()
    x = torch.rand(6, 784, generator=torch.Generator().manual_seed(0))
    assert model.reconstruct(x).shape == (6, 784)
    samples = sample_digits(model, 5, seed=3)
    assert samples.shape == (5, 784) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, sample_digits(model, 5, seed=3))
    parts = model.elbo_parts(x)
    assert parts.reconstruction.shape == (6,) and len(parts.kl) == config.stochastic_layers
    assert all(layer.total.shape == (6,) for layer in parts.kl)
    draws = model.importance_draws(x, k=4)
    assert all(t.shape == (4, 6) for t in draws[:3]) and draws.kl.shape == (6,)


def test_a_learned_prior_leaves_the_networks_initial_weights_as_the_seed_makes_them():
    standard = VAE(Config(latent_dim=4, hidden_dim=32)).state_dict()
    vamp = VAE(Config(latent_dim=4, hidden_dim=32, prior="vamp", prior_components=3)).state_dict()
    assert set(vamp) - set(standard) == {"prior.pseudo_logits"}
    assert all(torch.equal(standard[name], vamp[name]) for name in standard)


def test_the_two_layer_vae_has_z2_above_z1_and_its_z1_kl_is_the_closed_form_given_z2():
    from vae_lab.loss import gaussian_kl

    model = build_model(Config(stochastic_layers=2, latent_dim=4, hidden_dim=32, top_latent_dim=3, top_hidden_dim=16))
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    parts = model.elbo_parts(x)
    torch.manual_seed(2)
    d = model.draw(x)
    assert d.z2.shape == (5, 3) and d.z1.shape == (5, 4)
    assert torch.allclose(parts.kl[0].total, gaussian_kl(d.mu1, d.logvar1, d.prior_mu1, d.prior_logvar1))
    assert torch.allclose(parts.kl[1].total, kl_divergence(d.mu2, d.logvar2))
    (mu1, _), (mu2, _) = model.encode_layers(x)
    assert mu1.shape == (5, 4) and mu2.shape == (5, 3)
    with pytest.raises(ValueError, match="this VAE is not conditional"):
        model.sample(2, labels=3)
