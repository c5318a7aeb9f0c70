"""Automatic checks for the notebooks' exercises: each prints ✅ or a ❌ with a hint, and returns True/False.

Each check accepts the student's answer and compares it with the lab's own implementation. While the answer runs,
the lab's function for that step (and its reference solution in `vae_lab.lessons.solutions`) is refused: see `own_work`.
Answers may compute in float32 or float64; the checks compare values in float64.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import Config
from ..evaluate import importance_bounds
from ..latent import decode_every_digit, interpolate, style_transfer
from ..loss import kl_divergence
from ..model import VAE, Encoder, reparameterize
from ..train import iwae_loss, train_epoch
from . import solutions
from .beta_vae import active_units
from .setup import attempt, feedback, own_work


def _close(answer: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """`torch.allclose` of the student's tensor and the lab's, compared in float64 so a float64 answer is welcome."""
    return torch.allclose(answer.detach().double(), expected.detach().double(), rtol=rtol, atol=atol)


# ---- 01_data_and_encoder ----


@own_work(Encoder.forward, solution=solutions.encode,
          advice="encoder(x) runs the lab's forward pass: compute h = relu(x @ W.T + b) from encoder.hidden's weight "
                 "and bias, then the μ and log σ² heads the same way, with torch")
def check_encode(answer: Callable[[Encoder, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Compare ``answer(encoder, x)`` with the lab's ``encoder(x)`` on a seeded 784 → 400 → 20 encoder and 5 random images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        encoder = Encoder(latent_dim=20, hidden_dim=400)
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, logvar = encoder(x)
        no_relu = encoder.hidden(x)
        mu_no_relu, logvar_no_relu = encoder.mu(no_relu), encoder.logvar(no_relu)
        try:
            attempted, result = attempt(answer, encoder, x)
        except RuntimeError as error:
            return feedback(False, "", f"your function raised “{str(error).splitlines()[0]}”. nn.Linear stores its "
                            "weight as (out, in), e.g. (400, 784), so a layer computes x @ W.T + b")
    if not attempted:
        return False
    close = lambda a, b: a.shape == b.shape and _close(a, b, atol=1e-5)
    hint = ""
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
        hint = "return two tensors, μ then log σ²: end with `return mu, logvar`"
    elif result[0].shape != mu.shape:
        shape = tuple(result[0].shape)
        hint = (f"μ should have shape (N, latent_dim) = (5, 20), got {shape}"
                + ("; it is transposed: put the batch first, x @ W.T + b" if shape == (20, 5) else "")
                + ("; that is the hidden layer h: pass it through the μ head as well" if shape == (5, 400) else ""))
    elif result[1].shape != logvar.shape:
        hint = f"log σ² should have shape (N, latent_dim) = (5, 20) like μ, got {tuple(result[1].shape)}"
    elif close(result[0], logvar) and close(result[1], mu):
        hint = "μ and log σ² are swapped: return mu first, then logvar"
    elif close(result[0], mu_no_relu) or close(result[1], logvar_no_relu):
        hint = "you skipped the ReLU: h = relu(x @ W.T + b) before the two heads"
    elif close(result[0], mu) and not close(result[1], logvar):
        hint = ("μ is right; log σ² is not: apply the logvar head to the same h, and return log σ² itself "
                "(not σ or σ²; those come later)")
    elif not close(result[0], mu):
        hint = "μ differs from the lab's: h = relu(x @ W₁.T + b₁), then μ = h @ W_μ.T + b_μ"
    return feedback(not hint, "your encoder matches the lab's: μ and log σ², both of shape (5, 20).", hint)

# ---- 02_reparameterization ----
@own_work(reparameterize, solution=solutions.reparameterize_with,
          advice="compute z = μ + exp(½ · log σ²) · ε with torch, using the eps you are given")
def check_reparameterize(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Compare ``answer(mu, logvar, eps)`` with `vae_lab.reparameterize` (same ε) and check gradients reach μ and log σ²."""
    noise = torch.Generator().manual_seed(2)
    mu, logvar = (2 * torch.randn(2, 4, 20, generator=torch.Generator().manual_seed(3))).unbind()
    mu, logvar = mu.requires_grad_(), logvar.requires_grad_()
    expected = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(2)).detach()
    eps = torch.randn(mu.shape, generator=noise)
    attempted, z = attempt(answer, mu, logvar, eps.clone())
    if not attempted:
        return False
    close = lambda a, b: _close(a, b, atol=1e-5)
    hint = ""
    if not isinstance(z, torch.Tensor):
        hint = f"return z as one torch.Tensor, got {type(z).__name__}"
    elif z.shape != mu.shape:
        hint = f"z has one entry per latent dimension, like μ: expected shape {tuple(mu.shape)}, got {tuple(z.shape)}"
    elif z.grad_fn is None:
        hint = ("no gradient reaches z: build it from mu and logvar with tensor arithmetic "
                "(no .sample(), .detach(), .item() or torch.no_grad())")
    elif close(z, mu + logvar.exp() * eps):
        hint = "you scaled ε by the variance σ² = exp(log σ²); scale it by σ = exp(½ · log σ²). Forgot the ½?"
    elif close(z, mu + 0.5 * logvar * eps) or close(z, mu + logvar * eps):
        hint = "log σ² is a logarithm: undo it with exp, σ = exp(½ · log σ²), before multiplying by ε"
    elif close(z, mu):
        hint = "z equals μ: add the noise term σ · ε"
    elif close(z, mu - torch.exp(0.5 * logvar) * eps):
        hint = "sign: z = μ + σ · ε (plus, not minus)"
    elif not close(z, expected):
        hint = "z differs from the lab's: use the eps you are given (don't draw new noise), z = μ + exp(½ · log σ²) · ε"
    else:
        grad_mu, grad_logvar = torch.autograd.grad(z.sum(), (mu, logvar), allow_unused=True)
        if grad_mu is None or grad_logvar is None:
            hint = "z has the right values, but its gradient does not reach both μ and log σ²; don't detach either"
    return feedback(not hint, "z = μ + σ·ε, matching vae_lab.reparameterize, and gradients reach μ and log σ².", hint)

# ---- 03_loss ----
@own_work(kl_divergence, solution=solutions.gaussian_kl,
          advice="compute −½ Σ (1 + log σ² − μ² − σ²) over the latent dimensions (dim=1) with torch")
def check_gaussian_kl(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Compare ``answer(mu, logvar)`` with `vae_lab.kl_divergence` on a random batch of 6 posteriors in 20 dimensions."""
    mu, logvar = torch.randn(2, 6, 20, generator=torch.Generator().manual_seed(3)).unbind()
    expected = kl_divergence(mu, logvar)
    attempted, kl = attempt(answer, mu.clone(), logvar.clone())
    if not attempted:
        return False
    close = lambda a, b: _close(a, b, rtol=1e-4, atol=1e-4)
    hint = ""
    if not isinstance(kl, torch.Tensor):
        hint = f"return a torch.Tensor, got {type(kl).__name__}"
    elif kl.dim() == 0:
        hint = "one KL per image: sum over the latent dimensions only (dim=1), not over the batch as well"
    elif tuple(kl.shape) == (6, 20):
        hint = "that is one KL per latent dimension; sum over dim=1 to get one number per image, shape (N,)"
    elif tuple(kl.shape) != (6,):
        hint = f"expected one KL per image, shape (N,) = (6,), got {tuple(kl.shape)}"
    elif close(kl, -expected):
        hint = "sign: the KL is never negative; it is −½ Σ (1 + log σ² − μ² − σ²), with the minus in front"
    elif close(kl, 2 * expected):
        hint = "twice too large: forgot the ½ in front of the sum?"
    elif close(kl, expected / 20):
        hint = "you averaged over the latent dimensions; the KL of independent dimensions is their sum (dim=1)"
    elif close(kl, expected + 10):
        hint = "forgot the 1 inside the sum: −½ Σ (1 + log σ² − μ² − σ²) (it adds −½ per dimension)"
    elif close(kl, -0.5 * torch.sum(1 + logvar - mu.pow(2) - (0.5 * logvar).exp(), dim=1)):
        hint = "the last term is the variance σ² = exp(log σ²), not σ = exp(½ log σ²)"
    elif not close(kl, expected):
        hint = "the values differ from the closed form −½ Σ (1 + log σ² − μ² − σ²); check each term's sign"
    return feedback(not hint, "your closed-form KL matches vae_lab.kl_divergence on all 6 posteriors.", hint)

# ---- 04_training ----


BATCH = 16  # images per step of check_training_step


def _three_steps(step: Callable[..., object], images: torch.Tensor) -> tuple[list[object], VAE]:
    """Run ``step`` on three batches from a fresh small VAE and Adam, with the noise ε seeded; keep the caller's RNG."""
    model = VAE(Config(latent_dim=4, hidden_dim=32, seed=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        results = [step(model, optimizer, batch) for batch in images.split(BATCH)]
    return results, model


@own_work(train_epoch, solution=solutions.training_step,
          advice="the step is four lines: loss = vae_loss(x, *model(x)).total, optimizer.zero_grad(), "
                 "loss.backward(), optimizer.step()")
def check_training_step(answer: Callable[[VAE, torch.optim.Optimizer, torch.Tensor], float]) -> bool:
    """Run ``answer(model, optimizer, x)`` and the lab's step for three batches; compare the losses and the weights."""
    images = torch.rand(3 * BATCH, 784, generator=torch.Generator().manual_seed(4))
    expected, lab_model = _three_steps(solutions.training_step, images)  # the step fit takes
    start = [p.detach().clone() for p in VAE(Config(latent_dim=4, hidden_dim=32, seed=0)).parameters()]
    attempted, first = attempt(lambda: _three_steps(answer, images))
    if not attempted:
        return False
    results, model = first
    weights, lab_weights = list(model.parameters()), list(lab_model.parameters())
    same = lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    try:
        losses = [float(r.detach() if isinstance(r, torch.Tensor) else r) for r in results]
    except (TypeError, ValueError, RuntimeError):
        losses = None
    hint = ""
    if results[0] is None:
        hint = "your step returns nothing: end it with return loss.item(), the loss before the update"
    elif losses is None:
        hint = (f"return the loss as one number, got {type(results[0]).__name__}; "
                "take the .total of vae_loss(x, *model(x)) and return total.item()")
    elif all(torch.equal(w.detach(), s) for w, s in zip(weights, start)):
        hint = "the weights did not move: after loss.backward(), call optimizer.step() to apply the update"
    elif same(torch.tensor(losses[0]), torch.tensor(expected[0]) * BATCH):
        hint = (f"your loss is {BATCH} times the lab's: it is summed over the batch of {BATCH} images. Average it over "
                "the images (.mean() of the per-image losses, or divide by len(x)), so the loss is in nats per image "
                "and the learning rate means the same for every batch size")
    elif not same(torch.tensor(losses[0]), torch.tensor(expected[0])):
        hint = ("the first loss differs from the lab's: return the total negative ELBO (BCE + KL), "
                "vae_loss(x, *model(x)).total, computed once per step before the update")
    elif not same(torch.tensor(losses), torch.tensor(expected)):
        hint = ("the first step matches but the next ones drift: call optimizer.zero_grad() in every step, "
                "otherwise each backward() adds its gradients to the previous step's")
    elif not all(same(w.detach(), l.detach()) for w, l in zip(weights, lab_weights)):
        hint = "the losses match but the weights end up elsewhere: one backward() and one optimizer.step() per call"
    return feedback(not hint, "your step matches the lab's: the same three losses and the same weights afterwards.", hint)

# ---- 05_generation ----
def _image_batch_hint(result: object, again: object, n: int, wrong_shape: str, not_repeatable: str,
                      logits: str) -> str:
    """What is first wrong with ``result`` as ``n`` images in [0, 1] that a second call, ``again``, repeats
    ('' if nothing); ``wrong_shape`` may use {shape}."""
    if not isinstance(result, torch.Tensor):
        return f"return the images as one torch.Tensor, got {type(result).__name__}"
    if result.numel() != n * 784:
        return wrong_shape.format(shape=tuple(result.shape))
    if not torch.equal(result.detach(), again.detach()):
        return not_repeatable
    if result.min() < 0 or result.max() > 1:
        return logits
    return ""


@own_work(VAE.sample, solution=solutions.decode_prior_samples,
          advice="draw z = torch.randn(n, model.config.latent_dim, generator=generator) yourself, then decode it "
                 "with model.decode(z)")
def check_prior_samples(answer: Callable[[VAE, int, torch.Generator], torch.Tensor]) -> bool:
    """Compare ``answer(model, n, generator)`` with ``model.sample(n, generator)`` on a small VAE, same seed."""
    model = VAE(Config(latent_dim=4, hidden_dim=32, seed=0)).eval()
    seeded = lambda: torch.Generator().manual_seed(5)
    expected = model.sample(6, generator=seeded())
    with torch.random.fork_rng(devices=[]):
        attempted, result = attempt(answer, model, 6, seeded())
        again = answer(model, 6, seeded()) if attempted else None
    if not attempted:
        return False
    hint = _image_batch_hint(
        result, again, 6,
        wrong_shape="asked for n = 6 images, got shape {shape}; draw z of shape (n, model.config.latent_dim) "
                    "and decode it into (n, 784)",
        not_repeatable="two calls with the same seed gave different images: pass the generator to "
                       "torch.randn(..., generator=generator), so your z is reproducible",
        logits="some values lie outside [0, 1], so these are logits: turn them into pixel probabilities "
               "with torch.sigmoid, or decode with model.decode(z), which does it for you")
    if not hint:
        images = result.detach().reshape(6, 784)
        if _close(images, model.decode(torch.rand(6, 4, generator=seeded())), atol=1e-6):
            hint = "z came from the uniform torch.rand; the prior is the standard normal N(0, I): use torch.randn"
        elif not _close(images, expected, atol=1e-6):
            hint = ("the images differ from the lab's: draw z = torch.randn(n, model.config.latent_dim, "
                    "generator=generator) and return model.decode(z)")
    return feedback(not hint, "your samples from the prior match the lab's model.sample: same z, same digits.", hint)

# ---- 07_latent_space ----


@own_work(interpolate, solution=solutions.linear_interpolation,
          advice="compute z(t) = (1 − t)·z0 + t·z1 with t = torch.linspace(0, 1, steps)[:, None], with torch")
def check_linear_interpolation(answer: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> bool:
    """Compare ``answer(z0, z1, steps)`` with `vae_lab.latent.interpolate` on two random 20-D codes and 7 steps."""
    z0, z1 = torch.randn(2, 20, generator=torch.Generator().manual_seed(6))
    attempted, result = attempt(answer, z0, z1, 7)
    if not attempted:
        return False
    hint = ""
    if not isinstance(result, torch.Tensor):
        hint = f"return one torch.Tensor, got {type(result).__name__}; stack the rows with torch.stack"
    elif tuple(result.shape) != (7, 20):
        hint = (f"expected one row per step, shape (steps, d) = (7, 20), got {tuple(result.shape)}; "
                "take t = torch.linspace(0, 1, steps) as a column, t[:, None], so it broadcasts against z0 and z1")
    elif not (_close(result[0], z0, atol=1e-5) and _close(result[-1], z1, atol=1e-5)):
        hint = "the first row must be z0 (t = 0) and the last z1 (t = 1); use t = torch.linspace(0, 1, steps)"
    elif not _close(result, interpolate(z0, z1, 7), atol=1e-5):
        hint = "the ends are right but the middle is not: use z(t) = (1 − t)·z0 + t·z1 with evenly spaced t"
    return feedback(not hint, "your path from z0 to z1 matches vae_lab.latent.interpolate.", hint)

# ---- 08_evaluation ----


@own_work(importance_bounds, iwae_loss, solution=solutions.iwae_from_log_weights,
          advice="take torch.logsumexp over the K samples (dim=0), then subtract log K")
def check_iwae_from_log_weights(answer: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Compare ``answer(log_w)`` with logsumexp − log K on log-weights near −100, where exp underflows in float32."""
    generator = torch.Generator().manual_seed(7)
    log_w = -100 + 3 * torch.randn(50, 4, generator=generator)
    expected = solutions.iwae_from_log_weights(log_w)
    attempted, result = attempt(answer, log_w.clone())
    if not attempted:
        return False
    if not isinstance(result, torch.Tensor) or result.shape != expected.shape:
        shape = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
        return feedback(False, "", f"expected one value per image, shape {tuple(expected.shape)}, got {shape}; "
                        "reduce over dim=0, the K samples")
    if not torch.isfinite(result).all():
        return feedback(False, "", "you got −inf: torch.exp(-100) underflows to 0 in float32. "
                        "Subtract the largest log-weight before exponentiating, or use torch.logsumexp")
    if _close(result, expected + math.log(len(log_w)), atol=1e-3):
        return feedback(False, "", "close: that is log Σ w. The bound averages the weights, so subtract log K")
    single = answer(log_w[:1].clone())
    passed = _close(result, expected, atol=1e-3) and _close(single, log_w[0], atol=1e-4)
    return feedback(passed, "L_K matches, and with K = 1 it is the log-weight itself (the ELBO's estimate).",
                    "compare your formula with m + log Σ exp(ℓ − m) − log K, m = max ℓ")


# ---- 09_beta_vae ----


@own_work(active_units, solution=solutions.count_active_units,
          advice="compute the variance of μ across images, mu.var(dim=0), and count the units above the threshold")
def check_active_units(answer: Callable[[torch.Tensor, float], int]) -> bool:
    """Compare ``answer(mu, threshold)`` with `vae_lab.beta_vae.active_units` on 8 units with known Var_n(μ), at two thresholds."""
    variances = torch.tensor([4.0, 1.0, 0.2, 0.05, 0.02, 0.005, 0.001, 0.0])
    means = torch.tensor([0.0, 0.5, -1.0, 0.0, 2.0, 0.0, 3.0, 1.5])
    noise = torch.randn(1000, 8, generator=torch.Generator().manual_seed(8))
    mu = (noise - noise.mean(dim=0)) / noise.std(dim=0) * variances.sqrt() + means  # exactly these variances
    thresholds = (0.01, 0.1)
    expected = tuple(int(active_units(mu, t).sum()) for t in thresholds)
    attempted, first = attempt(answer, mu.clone(), thresholds[0])
    if not attempted:
        return False
    results = [first, answer(mu.clone(), thresholds[1])]
    if any(isinstance(r, torch.Tensor) and r.dim() == 1 for r in results):
        return feedback(False, "", "that is one value per unit (or per image); return how many units are active, "
                        "one whole number: int(mask.sum())")
    try:
        counts = tuple(int(r) for r in results)
    except (TypeError, ValueError, RuntimeError):
        return feedback(False, "", f"return the number of active units as an int, got {type(first).__name__}")
    mistakes = {
        tuple(int((mu.var(dim=0) <= t).sum()) for t in thresholds):
            "you counted the inactive units; a unit is active when its variance is *above* the threshold",
        tuple(int((mu.std(dim=0) > t).sum()) for t in thresholds):
            "you compared the standard deviation with the threshold; Burda et al. compare the variance Var_n(μ_u)",
        tuple(int((mu.pow(2).mean(dim=0) > t).sum()) for t in thresholds):
            "you used the mean of μ² without centring; a unit whose μ is 3 for every image carries no information: "
            "take the variance across images, mu.var(dim=0)",
        (expected[0], expected[0]):
            "the threshold 0.1 gave the same count as 0.01: use the `threshold` argument instead of a fixed 0.01",
    }
    hint = ""
    if max(counts) > mu.shape[1]:
        hint = (f"you counted {max(counts)}, more than the {mu.shape[1]} units: take the variance across images "
                "(dim=0, one value per unit), not across units")
    elif counts != expected:
        hint = mistakes.get(counts, f"expected {expected[0]} active units at threshold 0.01 and {expected[1]} at 0.1, "
                            f"got {counts[0]} and {counts[1]}: count the units u with Var_n(μ_nu) > threshold")
    return feedback(not hint, f"your count matches vae_lab.beta_vae.active_units: {expected[0]} of 8 units are active "
                    "at threshold 0.01.", hint)

# ---- 10_conditional_vae ----


@own_work(style_transfer, decode_every_digit, solution=solutions.write_as_every_digit,
          advice="encode once, mu, _ = model.encoder(image[None], torch.tensor([label])), then decode that μ with "
                 "each label: model.decode(mu.repeat(10, 1), torch.arange(10))")
def check_style_transfer(answer: Callable[[VAE, torch.Tensor, int], torch.Tensor]) -> bool:
    """Compare ``answer(model, image, label)`` with `vae_lab.conditional.style_transfer` on a small seeded conditional VAE."""
    model = VAE(Config(conditional=True, latent_dim=4, hidden_dim=32, seed=0)).eval()
    image, label = torch.rand(784, generator=torch.Generator().manual_seed(9)), 3
    expected = style_transfer(model, image[None], torch.tensor([label]))
    with torch.random.fork_rng(devices=[]):
        attempted, result = attempt(answer, model, image.clone(), label)
        again = answer(model, image.clone(), label) if attempted else None
    if not attempted:
        return False
    mistakes = [(model.reconstruct(image.repeat(10, 1), torch.arange(10)),
                 "you encoded the image with each target digit's label; encode it once, with its own label y, "
                 "then decode that one z with each label 0…9"),
                (model.reconstruct(image[None], torch.tensor([label])).repeat(10, 1),
                 "all ten rows show the same digit: decode the z with the labels torch.arange(10), one label per row")]
    hint = _image_batch_hint(
        result, again, 10,
        wrong_shape="expected ten images, shape (10, 784), got {shape}; repeat z ten times, z.repeat(10, 1), "
                    "and decode it with the labels torch.arange(10)",
        not_repeatable="two calls gave different images: decode the mean μ of q(z|x, y), not a sample z = μ + σ·ε",
        logits="some values lie outside [0, 1], so these are logits: decode with model.decode(z, labels), "
               "which gives pixels")
    if not hint:
        result = result.detach().reshape(10, 784)
        hint = next((text for images, text in mistakes if _close(result, images, atol=1e-6)), "")
        if not hint and not _close(result, expected, atol=1e-6):
            hint = ("the images differ from the lab's: mu, _ = model.encoder(image[None], torch.tensor([label])), "
                    "then model.decode(mu.repeat(10, 1), torch.arange(10))")
    return feedback(not hint, "your style transfer matches vae_lab.conditional.style_transfer: one style z, ten digits.",
                    hint)

# ---- 11_conv_vae ----

CONV_CASES = ((28, 4, 2, 1), (14, 4, 2, 1), (28, 3, 1, 1), (28, 5, 1, 0), (28, 3, 2, 0), (7, 3, 2, 1))  # (n, k, s, p)
TRANSPOSED_CASES = ((7, 4, 2, 1), (14, 4, 2, 1), (7, 3, 2, 1), (4, 5, 1, 2), (5, 2, 2, 0))
CONV_MISTAKES = {
    lambda n, k, s, p: (n + 2 * p - k) // s: "one short: count the first position of the kernel too, the + 1",
    lambda n, k, s, p: (n + p - k) // s + 1: "the padding adds p pixels on *each* side of the image: n + 2p",
    lambda n, k, s, p: (n - k) // s + 1: "you left out the padding: it adds p pixels on each side, n + 2p",
    lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1: "round down, not up: a step that would take the kernel past the "
                                                     "padded edge is not made, ⌊(n + 2p − k) / s⌋ + 1",
    lambda n, k, s, p: n // s: "n // s holds for the lab's layers only (k = 2p + s); use ⌊(n + 2p − k) / s⌋ + 1",
}
TRANSPOSED_MISTAKES = {
    lambda n, k, s, p: n * s - 2 * p + k: "n inputs are n − 1 strides apart: (n − 1)·s − 2p + k",
    lambda n, k, s, p: (n + 2 * p - k) // s + 1: "that is the convolution's formula; a transposed convolution runs it "
                                                 "backwards, n = (n_out + 2p − k) / s + 1, so n_out = (n − 1)·s − 2p + k",
    lambda n, k, s, p: (n - 1) * s - p + k: "the padding crops p pixels from *each* side of the output: − 2p",
    lambda n, k, s, p: (n - 1) * s + k: "you left out the padding: it crops p pixels from each side, − 2p",
    lambda n, k, s, p: n * s: "n·s holds for the lab's layers only (k = 2p + s); use (n − 1)·s − 2p + k",
}


def _torch_output_size(n: int, kernel: int, stride: int, padding: int, transposed: bool) -> int:
    """The side length torch's conv2d (or conv_transpose2d) gives an n×n image: the ground truth of the exercise."""
    layer = F.conv_transpose2d if transposed else F.conv2d
    return layer(torch.zeros(1, 1, n, n), torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding).shape[-1]


def _size_hint(sizes: tuple[object, ...], cases: tuple[tuple[int, int, int, int], ...], transposed: bool,
               mistakes: dict[Callable[[int, int, int, int], int], str]) -> str:
    """No hint ("") when ``sizes`` match torch on ``cases``; else the hint of the mistake that gives them, or the differences."""
    if list(sizes) == [_torch_output_size(*case, transposed) for case in cases]:
        return ""
    known = next((text for formula, text in mistakes.items() if list(sizes) == [formula(*case) for case in cases]), "")
    return known or "torch says " + "; ".join(
        f"n={n}, k={k}, s={s}, p={p} gives {_torch_output_size(n, k, s, p, transposed)}, you said {size}"
        for (n, k, s, p), size in zip(cases, sizes) if size != _torch_output_size(n, k, s, p, transposed))


@own_work(solution=solutions.output_size,
          advice="compute ⌊(n + 2p − k) / s⌋ + 1, and (n − 1)·s − 2p + k for a transposed layer, with integer arithmetic")
def check_output_size(answer: Callable[[int, int, int, int, bool], int]) -> bool:
    """Compare ``answer(n, kernel, stride, padding, transposed)`` with the side lengths torch's conv2d and
    conv_transpose2d give, for the lab's four layers and seven others."""
    attempted, first = attempt(answer, *CONV_CASES[0], False)
    if not attempted:
        return False
    conv = (first, *(answer(*case, False) for case in CONV_CASES[1:]))
    transposed = tuple(answer(*case, True) for case in TRANSPOSED_CASES)
    wrong_type = [size for size in conv + transposed if not isinstance(size, int) or isinstance(size, bool)]
    if wrong_type:
        hint = (f"return a whole number (an int), got {wrong_type[0]!r} of type {type(wrong_type[0]).__name__}; "
                "divide with //, which rounds down, not with /")
    else:
        hint = _size_hint(conv, CONV_CASES, False, CONV_MISTAKES)
        transposed_hint = "" if hint else _size_hint(transposed, TRANSPOSED_CASES, True, TRANSPOSED_MISTAKES)
        hint = hint or (transposed_hint and f"the convolutions are right, the transposed ones not yet: {transposed_hint}")
    return feedback(not hint, f"your sizes match torch for all {len(CONV_CASES) + len(TRANSPOSED_CASES)} layers, "
                    "including the lab's 28 → 14 → 7 and 7 → 14 → 28.", hint)
