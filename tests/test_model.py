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


# ---- Discrete codes: the VQ-VAE (notebook 14) ----

VQ_SMALL = Config(architecture="conv", codebook_size=6, latent_dim=3)


def test_quantize_picks_the_nearest_code_and_passes_the_gradient_straight_through():
    from vae_lab.model import quantize

    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]], requires_grad=True)
    encoded = torch.tensor([[0.9, 1.2], [-1.5, 0.0], [0.1, -0.2]], requires_grad=True)
    quantized, indices = quantize(encoded, codebook)
    assert indices.tolist() == [1, 2, 0]
    assert torch.equal(quantized, codebook[indices].detach())
    weights = torch.arange(6.0).reshape(3, 2)
    (quantized * weights).sum().backward()
    assert torch.equal(encoded.grad, weights), "the gradient of z_q reaches z_e unchanged"
    assert codebook.grad is None, "z_q carries no gradient to the codebook: the codebook term moves it"


def test_the_vq_vae_builds_counts_samples_reconstructs_and_scores_its_codes():
    from vae_lab.model import VQVAE, sample_digits

    model = build_model(VQ_SMALL).eval()
    assert isinstance(model, VQVAE) and model.parameter_count() == VQ_SMALL.parameter_count()
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    codes = model.encode_codes(x)
    assert codes.shape == (5, 7, 7) and codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 6
    assert torch.equal(model.reconstruct(x), model.decode_codes(codes))
    samples = sample_digits(model, 4, seed=2)
    assert samples.shape == (4, 784) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, sample_digits(model, 4, seed=2))
    parts = model.elbo_parts(x)
    assert torch.allclose(parts.kl[0].total, -model.prior.log_prob(codes))
    draws = model.importance_draws(x, k=3)
    assert all(t.shape == (3, 5) for t in draws[:3]) and torch.equal(draws.log_posterior, torch.zeros(3, 5))
    assert torch.allclose(draws.log_weights[0], -(parts.reconstruction + parts.kl[0].total))
    with pytest.raises(ValueError, match="this VAE is not conditional"):
        model.sample(2, labels=3)


@pytest.mark.parametrize("indices", [torch.zeros(2, 7, 7), torch.full((2, 7, 7), 6), torch.zeros(2, 49, dtype=torch.long)])
def test_decoding_codes_refuses_what_is_not_a_grid_of_code_indices(indices):
    with pytest.raises(ValueError, match=r"expected code indices of shape \(N, 7, 7\), integers in 0..5"):
        build_model(VQ_SMALL).decode_codes(indices)


def test_the_code_prior_sees_only_the_codes_before_each_position():
    from vae_lab.prior import CodePrior

    prior = CodePrior(codebook_size=5, grid=7)
    codes = torch.randint(5, (1, 7, 7), generator=torch.Generator().manual_seed(0))
    changed = codes.clone()
    changed[0, 3, 4] = (codes[0, 3, 4] + 1) % 5
    before, after = prior.logits(codes)[0].flatten(1), prior.logits(changed)[0].flatten(1)
    position = 3 * 7 + 4
    assert torch.equal(before[:, :position + 1], after[:, :position + 1]), "no position sees itself or a later code"
    assert not torch.allclose(before[:, position + 1:], after[:, position + 1:])
    assert torch.allclose(prior.log_prob(codes), torch.log_softmax(prior.logits(codes), dim=1)
                          .gather(1, codes[:, None]).sum())


def test_a_code_unused_for_long_enough_restarts_at_an_encoder_output():
    from vae_lab.model import VectorQuantizer

    quantizer = VectorQuantizer(codebook_size=3, code_dim=2, restart_after=2).train()
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]]))
    encoded = torch.tensor([[0.1, 0.0], [0.9, 0.0], [0.0, 0.1], [1.1, 0.1]]).T.reshape(1, 2, 2, 2)
    for _ in range(2):
        quantizer(encoded)
    assert quantizer.batches_unused.tolist() == [0, 0, 2] and quantizer.codebook[2].tolist() == [50.0, 50.0]
    quantizer(encoded)
    outputs = encoded.permute(0, 2, 3, 1).reshape(-1, 2)
    assert any(torch.equal(quantizer.codebook[2].detach(), row) for row in outputs), "code 2 moved onto an output"
    never = VectorQuantizer(codebook_size=3, code_dim=2).train()
    with torch.no_grad():
        never.codebook.copy_(quantizer.codebook.new_tensor([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]]))
    for _ in range(3):
        never(encoded)
    assert never.codebook[2].tolist() == [50.0, 50.0] and never.batches_unused.tolist() == [0, 0, 3]
