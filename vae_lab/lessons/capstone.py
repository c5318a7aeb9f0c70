"""Notebook 06, the capstone: checks of the student's own VAE (the model, the loss, the epoch loop, the trained result),
an adapter that lets `vae_lab.plots` draw it, and the lab's model to fall back on while a piece is missing.

Each check probes the student's code on known tensors, prints ✅ or a ❌ naming the mistake, and returns True/False.
While the student's code runs, the lab's own version of that piece refuses to run (`setup.refusing`).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..checkpoint import load_pretrained
from ..config import Config
from ..data import MNIST
from ..history import History
from ..loss import kl_divergence, reconstruction_loss, vae_loss
from ..model import VAE, Decoder, Encoder, reparameterize
from ..train import evaluate_loss, fit, train_epoch, training_loss
from .setup import WriteItYourself, attempt, feedback, refusing

LAB = Config()  # the lab's settings: 784 → 400 → 20, batches of 128, Adam at 1e-3
LAYERS = sorted([(784, LAB.hidden_dim), (LAB.hidden_dim, LAB.latent_dim), (LAB.hidden_dim, LAB.latent_dim),
                 (LAB.latent_dim, LAB.hidden_dim), (LAB.hidden_dim, 784)])


def attempt_own(probe: Callable[[], str]) -> str | None:
    """Run ``probe``, which calls the student's code: its hint ('' if right), or None when the exercise is not
    attempted yet. An error inside the student's code, such as `WriteItYourself`, becomes the hint."""
    try:
        attempted, hint = attempt(probe)
    except WriteItYourself as error:
        return str(error)
    except Exception as error:  # the student's code crashed: show its one-line message as the hint
        return f"your code raised {type(error).__name__}: “{str(error).splitlines()[0] if str(error) else ''}”"
    return hint if attempted else None


def close(a: Any, b: torch.Tensor, tolerance: float = 1e-4) -> bool:
    """True when ``a`` is a tensor of ``b``'s shape with the same values, up to a relative ``tolerance``."""
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.detach().to(b.dtype), b, rtol=tolerance, atol=tolerance))


# ---- exercise 1: the model ----


def is_affine(f: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when f maps the midpoint of a and b to the midpoint of f(a) and f(b), as a network without ReLU does."""
    return torch.allclose(f((a + b) / 2), (f(a) + f(b)) / 2, atol=1e-5)


def model_hint(model_class: type) -> str:
    """What is first wrong with ``model_class`` as the lab's VAE written in torch ('' if nothing)."""
    with refusing([VAE, Encoder, Decoder, reparameterize], "build it from nn.Linear layers, F.relu and torch.randn_like",
                  model_class.__init__), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class()
        if not isinstance(model, nn.Module):
            return "MyVAE must be an nn.Module: class MyVAE(nn.Module), with super().__init__() first in __init__"
        layers = sorted((m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
        if layers != LAYERS:
            return (f"expected five nn.Linear layers (in, out) = {LAYERS} (784 → 400, 400 → μ, 400 → log σ², 20 → 400, "
                    f"400 → 784), got {layers}")
        x = torch.rand(2, 6, 784, generator=torch.Generator().manual_seed(6))
        mu, logvar = model.encode(x[0])
        if mu.shape != (6, 20) or logvar.shape != (6, 20):
            return f"encode(x) returns μ and log σ², each of shape (N, 20); got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        if torch.equal(mu, logvar):
            return "μ and log σ² are the same tensor: give each its own 400 → 20 layer"
        if is_affine(lambda images: model.encode(images)[0], x[0], x[1]):
            return "the encoder has no ReLU: h = F.relu(self.<hidden layer>(x)) before the μ and log σ² layers"
        hint = reparameterization_hint(model)
        if hint:
            return hint
        z = 3 * torch.randn(2, 6, 20, generator=torch.Generator().manual_seed(7))
        logits = model.decode(z[0])
        if logits.shape != (6, 784):
            return f"decode(z) returns 784 logits per image, shape (N, 784); got {tuple(logits.shape)}"
        if logits.min() >= 0 and logits.max() <= 1:
            return "decode returns probabilities: return the logits (no sigmoid); the loss works from logits"
        if is_affine(model.decode, z[0], z[1]):
            return "the decoder has no ReLU: h = F.relu(self.<hidden layer>(z)) before the 400 → 784 layer"
        return forward_hint(model, x[0])


def reparameterization_hint(model: nn.Module) -> str:
    """Probe ``model.reparameterize`` with μ = 3, σ = 2 on 20,000 draws: mean, spread, fresh noise, gradients."""
    mu = torch.full((1000, 20), 3.0, requires_grad=True)
    logvar = torch.full((1000, 20), math.log(4.0), requires_grad=True)
    z = model.reparameterize(mu, logvar)
    if not isinstance(z, torch.Tensor) or z.shape != mu.shape:
        return f"reparameterize(μ, log σ²) returns z of μ's shape (N, 20); got {getattr(z, 'shape', type(z).__name__)}"
    if z.grad_fn is None:
        return "no gradient reaches z: build it from mu and logvar with tensor arithmetic (no .detach() or no_grad)"
    spread, centre = z.detach().std().item(), z.detach().mean().item()
    spreads = {0.0: "z = μ: add the noise term σ·ε",
               4.0: "you scaled ε by σ² = exp(log σ²); scale it by σ = exp(½ log σ²)",
               math.log(4.0): "log σ² is a logarithm: undo it, σ = exp(½ log σ²), before multiplying by ε",
               0.5 * math.log(4.0): "log σ² is a logarithm: undo it, σ = exp(½ log σ²), before multiplying by ε",
               1.0: "ε is not scaled: z = μ + σ·ε with σ = exp(½ log σ²)"}
    for wrong, hint in spreads.items():
        if abs(spread - wrong) < 0.05:
            return hint
    if abs(spread - 2.0) > 0.05 or abs(centre - 3.0) > 0.05:
        return (f"with μ = 3 and σ = 2 your z has mean {centre:.2f} and spread {spread:.2f}; "
                "z = μ + σ·ε with ε = torch.randn_like(σ), the standard normal")
    if torch.equal(z, model.reparameterize(mu, logvar)):
        return "two calls gave the same z: draw fresh noise each call with torch.randn_like"
    return ""


def forward_hint(model: nn.Module, x: torch.Tensor) -> str:
    """Check that ``model(x)`` is (decode(reparameterize(μ, log σ²)), μ, log σ²) and that every weight gets a gradient."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(8)
        output = model(x)
        torch.manual_seed(8)
        mu, logvar = model.encode(x)
        expected = model.decode(model.reparameterize(mu, logvar))
    if not (isinstance(output, (tuple, list)) and len(output) == 3):
        return "forward(x) returns three tensors: return logits, mu, logvar"
    logits, out_mu, out_logvar = output
    if not (close(out_mu, mu.detach()) and close(out_logvar, logvar.detach())):
        return "forward(x) returns (logits, μ, log σ²) in that order, with μ and log σ² from self.encode(x)"
    if close(logits, model.decode(mu).detach()):
        return "forward decodes μ itself: decode z = self.reparameterize(μ, log σ²), the noisy code"
    if not close(logits, expected.detach()):
        return "forward should return self.decode(z) with z = self.reparameterize(mu, logvar), then mu and logvar"
    (logits.sum() + out_mu.sum() + out_logvar.sum()).backward()
    missing = [name for name, weight in model.named_parameters() if weight.grad is None]
    if missing:
        return f"no gradient reaches {', '.join(missing)}: use every layer in forward"
    return ""


def check_my_vae(model_class: type) -> bool:
    """Probe the student's ``MyVAE``: layers, encode, reparameterize (μ = 3, σ = 2), decode and forward."""
    hint = attempt_own(lambda: model_hint(model_class))
    if hint is None:
        return False
    return feedback(not hint, "your MyVAE has the lab's five layers, draws z = μ + σ·ε, and returns "
                              "(logits, μ, log σ²) with gradients reaching every weight.", hint)


# ---- exercise 2: the loss ----


def loss_hint(negative_elbo: Callable[..., torch.Tensor]) -> str:
    """What is first wrong with ``negative_elbo(x, logits, mu, logvar)`` on a fixed batch of 8 ('' if nothing).

    The batch mixes ordinary logits with a few of ±30, where sigmoid rounds to 0 or 1 in float32.
    """
    generator = torch.Generator().manual_seed(9)
    x = torch.rand(8, 784, generator=generator)
    logits = 4 * torch.randn(8, 784, generator=generator)
    logits[:, :10] = 30.0 * torch.sign(logits[:, :10])
    mu, logvar = torch.randn(2, 8, 20, generator=generator).unbind()
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = kl_divergence(mu, logvar)
    right = reconstruction_loss(logits, x).mean() + kl.mean()
    with refusing([vae_loss, reconstruction_loss, kl_divergence], "compute the BCE with "
                  "F.binary_cross_entropy_with_logits and the KL −½ Σ(1 + log σ² − μ² − σ²) with torch", negative_elbo):
        result = negative_elbo(x.clone(), *[t.clone().requires_grad_() for t in (logits, mu, logvar)])
    if not isinstance(result, torch.Tensor):
        return f"return the loss as a torch.Tensor (so that .backward() works), got {type(result).__name__}"
    if result.numel() != 1:
        return f"return one number, the mean over the batch; got shape {tuple(result.shape)}: end with .mean()"
    if close(result.reshape(()), right):
        return "" if result.grad_fn is not None else "the loss must stay differentiable: no .item(), .detach() or no_grad"
    sigmoid_first = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(1).mean() + kl.mean()
    mistakes = [
        (right * 8, "you summed over the batch: average the per-image losses (.mean()), so the loss is in nats per "
                    "image and does not grow with the batch size"),
        (bce.sum(1).mean() + kl.sum(), "your KL is per batch, not per image: average it over the batch like the BCE"),
        (bce.sum() + kl.mean(), "your BCE is per batch, not per image: sum over the 784 pixels, then average over "
                                "the batch"),
        (bce.mean() + kl.mean(), "mean over pixels: the BCE of an image is the sum over its 784 pixels; PyTorch's "
                                 "default reduction='mean' divides it by 784 and lets the KL win (notebook 03, the "
                                 "sum-vs-mean pitfall)"),
        (bce.mean() + kl.sum() / 8 / 784, "mean over pixels: the BCE of an image is the sum over its 784 pixels"),
        (bce.sum(1).mean() + kl.mean() / 20, "you averaged the KL over the 20 latent dimensions: sum them, as your "
                                             "gaussian_kl in notebook 03 does"),
        (bce.sum(1).mean(), "the KL term is missing: add your closed-form KL from notebook 03 (gaussian_kl)"),
        (bce.sum(1).mean() - kl.mean(), "sign: the negative ELBO is BCE + KL, and the KL is never negative"),
        (F.binary_cross_entropy_with_logits(torch.sigmoid(logits), x, reduction="none").sum(1).mean() + kl.mean(),
         "BCE on probabilities after a sigmoid: binary_cross_entropy_with_logits takes the logits themselves"),
        (sigmoid_first, "BCE on probabilities after a sigmoid: for logits beyond ±17 sigmoid rounds to exactly 0 or 1 "
                        "and the log breaks; compute it from logits (F.binary_cross_entropy_with_logits)"),
        (F.binary_cross_entropy_with_logits(x, logits, reduction="none").sum(1).mean() + kl.mean(),
         "the arguments are swapped: negative_elbo(x, logits, mu, logvar) takes the images first, then the logits"),
    ]
    if not torch.isfinite(result):
        return ("your loss is not finite: log(sigmoid(logits)) breaks where sigmoid rounds to 0 or 1 (logits beyond "
                "±17); compute the BCE from logits, e.g. F.binary_cross_entropy_with_logits")
    for value, hint in mistakes:
        if close(result.reshape(()), value):
            return hint
    return (f"your loss is {result.item():.2f} where the negative ELBO is {right.item():.2f} nats per image: "
            "BCE summed over the 784 pixels (from logits) plus −½ Σ(1 + log σ² − μ² − σ²), averaged over the batch")


def check_negative_elbo(negative_elbo: Callable[..., torch.Tensor]) -> bool:
    """Compare ``negative_elbo(x, logits, mu, logvar)`` with the negative ELBO, and name the known slips."""
    hint = attempt_own(lambda: loss_hint(negative_elbo))
    if hint is None:
        return False
    return feedback(not hint, "your loss is the negative ELBO in nats per image: BCE summed over pixels plus the "
                              "closed-form KL, averaged over the batch.", hint)


# ---- exercise 3: the epoch loop ----


class ProbeVAE(nn.Module):
    """A small VAE (784 → 8 → 2 → 8 → 784) that the loop check trains instead of the student's model."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.encoder, self.decoder = Encoder(latent_dim=2, hidden_dim=8), Decoder(latent_dim=2, hidden_dim=8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        return self.decoder(reparameterize(mu, logvar)), mu, logvar


TRAIN_PROBE, TEST_PROBE = 300, 50  # batches of 128, 128 and 44; a test set of 50
ID_SCALE = 1024  # image i carries i / 1024 in its first pixel, exact in float32, so the check sees which images ran


class LoopRecorder:
    """Records what a student's training loop does to a `ProbeVAE`: which images each loss call saw, each step's
    optimizer and learning rate, and whether the gradients it stepped on had been cleared."""

    def __init__(self, model: ProbeVAE) -> None:
        self.events: list[tuple[str, Any]] = []  # ("train" | "test", ids, loss) and ("step", optimizer type, lr, cleared)
        self.parameter = model.decoder.out.bias  # one weight is enough to see what the optimizer steps on
        self.fresh_grad: torch.Tensor | None = None  # its gradient from the latest backward() alone
        self.parameter.register_hook(self.keep_fresh_grad)

    def keep_fresh_grad(self, grad: torch.Tensor) -> None:
        self.fresh_grad = grad.clone()

    def loss(self, x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The negative ELBO per image, averaged over the batch; records the batch's images."""
        ids = torch.round(x[:, 0].detach() * ID_SCALE).long().tolist()
        value = vae_loss(x, logits, mu, logvar).total
        self.events.append(("train" if ids[0] < TRAIN_PROBE else "test", ids, value.item()))
        return value

    def step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not any(p is self.parameter for group in optimizer.param_groups for p in group["params"]):
            return
        grad, fresh = self.parameter.grad, self.fresh_grad
        cleared = grad is not None and fresh is not None and torch.allclose(grad, fresh)
        self.events.append(("step", type(optimizer).__name__, optimizer.param_groups[0]["lr"], cleared))


def probe_images() -> tuple[torch.Tensor, torch.Tensor]:
    """300 training and 50 test images whose first pixel says which image they are."""
    images = torch.rand(TRAIN_PROBE + TEST_PROBE, 784, generator=torch.Generator().manual_seed(10))
    images[:, 0] = torch.arange(TRAIN_PROBE + TEST_PROBE) / ID_SCALE
    return images[:TRAIN_PROBE], images[TRAIN_PROBE:]


def record_loop(train_my_vae: Callable[..., Any], epochs: int, seed: int) -> tuple[Any, LoopRecorder]:
    """Run the student's loop on a fresh `ProbeVAE` and the probe images; return its result and what it did."""
    model = ProbeVAE()
    recorder = LoopRecorder(model)
    train_images, test_images = probe_images()
    handle = register_optimizer_step_pre_hook(recorder.step)
    try:
        with refusing([fit, train_epoch, evaluate_loss, training_loss], "loop over shuffled batches with torch.randperm "
                      "and torch.optim.Adam yourself", train_my_vae), torch.random.fork_rng(devices=[]):
            result = train_my_vae(model, recorder.loss, train_images, test_images, epochs, seed)
    finally:
        handle.remove()
    return result, recorder


def epochs_of(events: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Split the events into epochs: each ends with its test batches."""
    epochs, current = [], []
    for event in events:
        if current and event[0] == "train" and current[-1][0] == "test":
            epochs.append(current)
            current = []
        current.append(event)
    return epochs + ([current] if current else [])


def mean_loss(batches: list[tuple[str, Any]]) -> list[float]:
    """The two fair averages of the batches' losses: per image (weighted by batch size) and per batch."""
    sizes = torch.tensor([len(ids) for _, ids, _ in batches], dtype=torch.float64)
    losses = torch.tensor([loss for _, _, loss in batches], dtype=torch.float64)
    return [(sizes @ losses / sizes.sum()).item(), losses.mean().item()]


def loop_hint(train_my_vae: Callable[..., Any]) -> str:
    """What is first wrong with ``train_my_vae(model, loss_fn, train_images, test_images, epochs, seed)`` ('' if
    nothing), judged from two epochs on 300 probe images with a small model."""
    result, recorder = record_loop(train_my_vae, 2, 5)
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and all(len(losses) == 2 for losses in result)):
        return "return two lists, one number per epoch each: return train_losses, test_losses"
    steps = [event for event in recorder.events if event[0] == "step"]
    if not steps:
        return ("the weights never moved: create torch.optim.Adam(model.parameters(), lr=1e-3) and call "
                "optimizer.step() after loss.backward() for every batch")
    kind, lr = steps[0][1], steps[0][2]
    if kind != "Adam" or lr != LAB.lr:
        return f"use Adam with learning rate 1e-3, as fit does; you used {kind} with learning rate {lr:g}"
    if not all(event[3] for event in steps):
        return "call optimizer.zero_grad() before each backward(): otherwise every step adds up all the old gradients"
    epochs = epochs_of(recorder.events)
    if len(epochs) != 2:
        return "after each epoch, compute the test loss on the test images (under torch.no_grad())"
    orders = []
    for epoch in epochs:
        train = [event for event in epoch if event[0] == "train"]
        test = [event for event in epoch if event[0] == "test"]
        sizes, order = [len(ids) for _, ids, _ in train], [i for _, ids, _ in train for i in ids]
        if sizes != [128, 128, TRAIN_PROBE - 256]:
            return f"use mini-batches of 128 images (the last one smaller); on 300 images your batches had {sizes}"
        if sorted(order) != list(range(TRAIN_PROBE)):
            return ("each epoch visits every training image exactly once: index the images with a permutation, "
                    "torch.randperm(n, generator=generator), not with random draws")
        if sum(event[0] == "step" for event in epoch) != len(train):
            return "take exactly one optimizer step per mini-batch"
        if sorted(i for _, ids, _ in test for i in ids) != list(range(TRAIN_PROBE, TRAIN_PROBE + TEST_PROBE)):
            return "compute the test loss on all the test images, once after each epoch"
        if any(event[0] == "step" for event in epoch[epoch.index(test[0]):]):
            return "never step the optimizer on test images: they only measure the model"
        orders.append(order)
        for name, losses, batches in (("train", result[0], train), ("test", result[1], test)):
            reported = float(losses[len(orders) - 1])
            if not any(math.isclose(reported, fair, rel_tol=1e-4) for fair in mean_loss(batches)):
                return (f"your {name} loss of an epoch should be the mean of its batches' losses, per image; "
                        f"you reported {reported:.2f} where the batches average {mean_loss(batches)[0]:.2f}")
    if orders[0] == list(range(TRAIN_PROBE)):
        return ("no shuffling: the batches follow the images in order; draw order = torch.randperm(n, "
                "generator=generator) at the start of every epoch")
    if orders[0] == orders[1]:
        return "you shuffle once: draw a new permutation at the start of every epoch"
    again, recorder_again = record_loop(train_my_vae, 2, 5)
    if recorder_again.events != recorder.events or list(map(list, again)) != list(map(list, result)):
        return ("two runs with the same seed differ: seed both sources of randomness from seed, "
                "torch.manual_seed(seed) for ε and generator = torch.Generator().manual_seed(seed) for the shuffle")
    return ""


def check_epoch_loop(train_my_vae: Callable[..., Any]) -> bool:
    """Train a small VAE with the student's loop for two epochs on 300 probe images and inspect every batch and step."""
    hint = attempt_own(lambda: loop_hint(train_my_vae))
    if hint is None:
        return False
    return feedback(not hint, "your loop shuffles every epoch, takes one Adam step per batch of 128, and reports the "
                              "train and test loss per image.", hint)


# ---- the trained model ----


class StudentVAE:
    """The student's trained model, seen through the lab's interface so that `vae_lab.plots` can draw it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.config = Config(latent_dim=model.encode(torch.zeros(1, 784))[0].shape[1])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Encode and decode with z = μ: images (N, 784) in [0, 1]."""
        return torch.sigmoid(self.model.decode(self.model.encode(x)[0]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` codes drawn from N(0, I): images (n, 784) in [0, 1]."""
        return torch.sigmoid(self.model.decode(torch.randn(n, self.config.latent_dim, generator=generator)))

    @torch.no_grad()
    def test_loss(self, images: torch.Tensor, seed: int = 0) -> float:
        """The lab's measure: the negative ELBO per image with one seeded z each, in batches of 2,000."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            total = sum(vae_loss(x, *self.model(x)).total.item() * len(x) for x in images.split(2000))
        return total / len(images)


def lab_vae(config: Config, data: MNIST) -> tuple[VAE, History]:
    """The lab's VAE on these settings: the shipped weights for the lab's own, else a fresh `fit`; says which."""
    if config == LAB:
        print("Your pieces have not all passed their checks yet, so the rest of this notebook uses the lab's VAE, "
              "the shipped weights trained by fit with the same settings.")
        shipped = load_pretrained("vae")
        return shipped.model, shipped.history
    print("Your pieces have not all passed their checks yet, so the rest of this notebook trains the lab's VAE with "
          "fit on the same settings.")
    model = VAE(config)
    return model, fit(model, data, progress=False)


def fit_test_loss(config: Config, data: MNIST) -> float:
    """fit's test loss after ``config.epochs`` epochs on these settings: the shipped run's curve for the lab's
    settings (fit's first epochs do not depend on how many follow), else a fresh run."""
    if config.epochs <= LAB.epochs and Config(epochs=LAB.epochs, seed=config.seed, train_size=config.train_size) == LAB:
        return load_pretrained("vae").history.test_loss[config.epochs - 1]
    return fit(VAE(config), data, progress=False).test_loss[-1]


def tolerance(config: Config, reference: float) -> float:
    """How close to fit's test loss ``reference`` a correct VAE lands: 1 nat after the lab's full run, 3 % of the
    loss in shorter runs, where a different initialisation still shows."""
    return 1.0 if config.epochs >= LAB.epochs and config.train_size is None else 0.03 * reference


def check_training(trained: Any, history: History, config: Config, data: MNIST,
                   negative_elbo: Callable[..., torch.Tensor], train_my_vae: Callable[..., Any]) -> bool:
    """Compare the student's trained VAE with `fit` on the same settings, and name what is wrong when it is off."""
    if not isinstance(trained, StudentVAE):
        print("✏️  Exercise not attempted yet: the model above is the lab's; pass the three checks, then rerun.")
        return False
    hint = attempt_own(lambda: loss_hint(negative_elbo)) or attempt_own(lambda: loop_hint(train_my_vae))
    if hint:
        return feedback(False, "", hint)
    yours, measured = history.test_loss[-1], trained.test_loss(data.test_images)
    if not math.isclose(yours, measured, rel_tol=0.02):
        return feedback(False, "", f"your loop reports a test loss of {yours:.1f} but the model's negative ELBO per "
                                   f"test image is {measured:.1f}: average the loss over all test images, per image")
    reference = fit_test_loss(config, data)
    within = tolerance(config, reference)
    return feedback(abs(measured - reference) < within,
                    f"your VAE's test loss, {measured:.1f} nats per image, is within {within:.1f} nat of fit's "
                    f"{reference:.1f} on the same settings.",
                    f"your model's test loss is {measured:.1f} nats per image, fit's {reference:.1f}: compare each "
                    "layer, the loss and the loop with the lab's (notebook 04)")
