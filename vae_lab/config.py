"""The lab's settings in one validated dataclass; its defaults are the lab's numbers."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
PRIORS = ("standard", "mixture", "vamp")
MAX_STOCHASTIC_LAYERS = 2
MAX_SEED = 2**32 - 1  # NumPy's seeds stop here
MEMORY_CEILING = 4 * 2**30  # bytes a run may plan to use: what a student's laptop or a free Colab can spare
MAX_IMPORTANCE_SAMPLES = 100_000  # per image when scoring: 20× Burda et al.'s 5,000, about a minute per test image
IMAGE_PIXELS = 28 * 28
FLOAT_BYTES = 4


class LabError(Exception):
    """The lab's own errors: one sentence that names the fix, shown in a notebook as that one line."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        return [f"{type(self).__name__}: {self}"]


class BadValue(LabError, ValueError):
    """A value the lab cannot take, refused where it enters: a count, a size, a pixel."""


class BadType(LabError, TypeError):
    """A value of a type the lab cannot take, refused where it enters."""


def _setting(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A field of `Config` with the sentence that explains it (the CLI's help) and, for a choice, its options."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    """Everything that decides a training run: model sizes, optimiser and data."""

    batch_size: int = _setting(128, "images per training step")
    epochs: int = _setting(10, "passes over the training images")
    latent_dim: int = _setting(20, "size of the latent code z")
    hidden_dim: int = _setting(400, "units in each hidden layer")
    lr: float = _setting(1e-3, "Adam's learning rate")
    seed: int = _setting(1, "seeds the initial weights, the shuffling and the noise")
    train_size: int | None = _setting(None, "train on the first N images (none: all 60,000)")
    binarize: bool = _setting(False, "dynamically binarised pixels instead of grayscale targets")
    beta: float = _setting(1.0, "weight of the KL term: loss = reconstruction + β·KL (1 is the true negative ELBO)")
    warmup_epochs: int = _setting(0, "KL warm-up: β rises linearly from 0 over this many epochs (0: none)")
    lr_final: float | None = _setting(None, "if set, the learning rate decays geometrically to this by the last epoch")
    architecture: str = _setting("mlp", "mlp: fully connected layers; conv: convolutional encoder and decoder",
                                 ARCHITECTURES)
    hidden_layers: int = _setting(1, "hidden layers in the MLP encoder and in the MLP decoder")
    conditional: bool = _setting(False, "a conditional VAE: encoder and decoder also see the digit label")
    likelihood: str = _setting("bernoulli", "p(x|z) per pixel", LIKELIHOODS)
    iwae_samples: int = _setting(1, "k > 1 trains on the importance-weighted bound with k samples (IWAE)")
    prior: str = _setting("standard", "p(z) of the top latent layer: standard N(0, I); mixture: K learned Gaussians; "
                          "vamp: the VampPrior, the encoder's q(z|u_k) at K learned pseudo-inputs u_k", PRIORS)
    prior_components: int = _setting(500, "K, the components of a mixture prior or a VampPrior "
                                          "(the VampPrior authors' code defaults to 500)")
    stochastic_layers: int = _setting(1, "latent layers: 1, or 2 for p(z₂) p(z₁|z₂) p(x|z₁) inferred top-down "
                                         "(q(z₂|x) q(z₁|z₂, x))")
    top_latent_dim: int = _setting(10, "size of the upper latent z₂ when stochastic_layers=2")
    top_hidden_dim: int = _setting(200, "units in the hidden layers around z₂ when stochastic_layers=2")
    free_bits: float = _setting(0.0, "free bits λ (Kingma et al. 2016): each latent unit's KL, averaged over the "
                                     "batch, counts as at least λ nats in the training loss (0: off)")
    codebook_size: int = _setting(0, "K > 0: a VQ-VAE, a 7×7 grid of codes from a codebook of K vectors of size "
                                     "latent_dim, with a PixelCNN prior over the grid (0: a Gaussian latent)")
    commitment: float = _setting(0.25, "β of a VQ-VAE's commitment term β‖z_e − sg[e]‖² (van den Oord et al. use 0.25)")
    restart_dead_codes: int = _setting(0, "a VQ-VAE's code that no image chose for this many batches restarts at a "
                                          "random encoder output (0: never)")

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "latent_dim", "hidden_dim", "hidden_layers", "iwae_samples",
                     "prior_components", "top_latent_dim", "top_hidden_dim"):
            require_int(name, getattr(self, name))
        if self.train_size is not None:
            require_int("train_size", self.train_size)
        require_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        require_int("warmup_epochs", self.warmup_epochs, minimum=0, hint="0 turns warm-up off")
        if not (is_number(self.lr) and 0 < self.lr < 1):
            raise ValueError(f"lr must be a number between 0 and 1, got {self.lr!r}; the lab uses 1e-3")
        if not (is_number(self.beta) and 0 <= self.beta < math.inf):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}; 1 trains the true ELBO")
        if self.lr_final is not None and not (is_number(self.lr_final) and 0 < self.lr_final <= self.lr):
            raise ValueError(f"lr_final must be None or a number in (0, lr={self.lr:g}], got {self.lr_final!r}")
        for name in ("binarize", "conditional"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for setting in fields(self):
            if setting.metadata["choices"] and getattr(self, setting.name) not in setting.metadata["choices"]:
                raise ValueError(f"{setting.name} must be one of {', '.join(map(repr, setting.metadata['choices']))}, "
                                 f"got {getattr(self, setting.name)!r}")
        self._check_prior_and_layers()
        self._check_codebook()
        if self.iwae_samples > 1 and (self.beta != 1 or self.warmup_epochs or self.free_bits):
            raise ValueError(f"the IWAE objective (iwae_samples={self.iwae_samples}) is a bound on log p(x) only with "
                             "beta=1 and no warm-up or free bits; set iwae_samples=1 to train a β-VAE")
        require_memory("training with these sizes", self.training_bytes(),
                       "lower hidden_dim, hidden_layers, latent_dim, batch_size or iwae_samples (the lab uses "
                       "hidden_dim=400, hidden_layers=1, latent_dim=20, batch_size=128)")

    def _check_prior_and_layers(self) -> None:
        """The learned priors' and the latent hierarchy's settings: in range, and only where the lab builds them."""
        require_int("stochastic_layers", self.stochastic_layers, maximum=MAX_STOCHASTIC_LAYERS,
                    hint="1 is the lab's VAE, 2 adds a latent layer z₂ above z₁")
        if not (is_number(self.free_bits) and 0 <= self.free_bits < math.inf):
            raise ValueError(f"free_bits must be a finite number >= 0 (nats per latent unit), got {self.free_bits!r}; "
                             "0 turns free bits off")
        if self.conditional and (self.prior != "standard" or self.stochastic_layers > 1):
            raise ValueError("a conditional VAE keeps the standard prior and one latent layer; set prior='standard' "
                             "and stochastic_layers=1, or conditional=False")
        if self.stochastic_layers > 1 and self.architecture != "mlp":
            raise ValueError(f"two stochastic layers are built from MLPs; set architecture='mlp' "
                             f"(got {self.architecture!r}) or stochastic_layers=1")

    def _check_codebook(self) -> None:
        """A VQ-VAE's settings: a codebook size, and only the settings its conv networks and loss use."""
        require_int("codebook_size", self.codebook_size, minimum=0, hint="0 is a Gaussian latent, 512 the VQ-VAE "
                    "paper's codebook")
        require_int("restart_dead_codes", self.restart_dead_codes, minimum=0, hint="0 never restarts a code")
        if not (is_number(self.commitment) and 0 <= self.commitment < math.inf):
            raise ValueError(f"commitment must be a finite number >= 0, got {self.commitment!r}; the VQ-VAE paper "
                             "uses 0.25")
        if self.codebook_size == 0:
            if self.restart_dead_codes:
                raise ValueError("restart_dead_codes restarts a VQ-VAE's codes; set codebook_size > 0 too, or "
                                 "restart_dead_codes=0")
            return
        gaussian = {"architecture": "conv", "conditional": False, "prior": "standard", "stochastic_layers": 1,
                    "iwae_samples": 1, "beta": 1.0, "warmup_epochs": 0, "free_bits": 0.0}
        differ = [f"{name}={getattr(self, name)!r}" for name, value in gaussian.items() if getattr(self, name) != value]
        if differ:
            raise ValueError(f"a VQ-VAE (codebook_size={self.codebook_size}) is built from the conv networks with its "
                             f"own code prior and loss, so it cannot take {', '.join(differ)}; set "
                             + ", ".join(f"{name}={value!r}" for name, value in gaussian.items()))

    def parameter_count(self) -> int:
        """Weights and biases these sizes build; MLP per network: (in + 1)·h + (L − 1)·(h + 1)·h + (h + 1)·out."""
        if self.codebook_size:
            return self._vq_parameter_count()
        if self.prior != "standard" or self.stochastic_layers > 1:
            return self._prior_and_hierarchy_parameter_count()
        classes = 10 if self.conditional else 0
        if self.architecture == "conv":  # two 4×4 convolutions each way, 3,136 features around the latent
            convolutions = 2 * (1 * 32 * 16 + 32 * 64 * 16) + 32 + 64 + 32 + 1
            return convolutions + 2 * (3136 + classes + 1) * self.latent_dim + (self.latent_dim + classes + 1) * 3136
        h, deeper = self.hidden_dim, (self.hidden_layers - 1) * (self.hidden_dim + 1) * self.hidden_dim
        encoder = (IMAGE_PIXELS + classes + 1) * h + deeper + 2 * (h + 1) * self.latent_dim
        decoder = (self.latent_dim + classes + 1) * h + deeper + (h + 1) * IMAGE_PIXELS
        return encoder + decoder

    def _prior_and_hierarchy_parameter_count(self) -> int:
        """A learned prior's parameters (a mixture: K means and log-variances; a VampPrior: K pseudo-inputs) on top of
        the networks: the one-layer VAE's, or those of two stochastic layers counted below."""
        prior = {"standard": 0, "mixture": 2 * self.prior_components * self.top_latent_size(),
                 "vamp": self.prior_components * IMAGE_PIXELS}[self.prior]
        if self.stochastic_layers == 1:
            return replace(self, prior="standard").parameter_count() + prior
        h, t, d1, d2 = self.hidden_dim, self.top_hidden_dim, self.latent_dim, self.top_latent_dim
        deeper = (self.hidden_layers - 1) * (h + 1) * h
        bottom_up = (IMAGE_PIXELS + 1) * h + deeper  # x → h₁, as the one-layer encoder's hidden layers
        decoder = (d1 + 1) * h + deeper + (h + 1) * IMAGE_PIXELS  # p(x|z₁), the one-layer decoder
        top_posterior = (h + 1) * t + 2 * (t + 1) * d2  # h₁ → t → μ₂, log σ₂² of q(z₂|x)
        top_down = (d2 + 1) * t + 2 * (t + 1) * d1  # z₂ → t → μ, log σ² of p(z₁|z₂)
        bottom_posterior = 2 * (h + t + 1) * d1  # [h₁, t] → μ, log σ² of q(z₁|z₂, x)
        return bottom_up + decoder + top_posterior + top_down + bottom_posterior + prior

    def _vq_parameter_count(self) -> int:
        """A VQ-VAE's: the two convolutions each way and a 1×1 convolution to and from D, the K×D codebook, and the
        PixelCNN prior (a K×32 embedding, one 5×5 and three 3×3 convolutions of 32 maps, a 1×1 one to K logits)."""
        d, k = self.latent_dim, self.codebook_size
        convolutions = 2 * (1 * 32 * 16 + 32 * 64 * 16) + 32 + 64 + 32 + 1
        code_prior = k * 32 + (32 * 32 * 25 + 32) + 3 * (32 * 32 * 9 + 32) + (32 + 1) * k
        return convolutions + (64 + 1) * d + (d + 1) * 64 + k * d + code_prior

    def top_latent_size(self) -> int:
        """The size of the latent layer the prior p(z) is over: z₂ in a hierarchy, else z."""
        return self.top_latent_dim if self.stochastic_layers == 2 else self.latent_dim

    def image_activations(self) -> int:
        """Numbers one image creates in a forward pass: its pixels, every hidden layer twice (encoder and decoder)
        and its logits, each decoder part once per importance sample."""
        hidden = 2 * 3136 + 14 * 14 * 32 if self.architecture == "conv" else self.hidden_dim * self.hidden_layers
        if self.codebook_size:  # the code grid three times (z_e, e_k, z_q), the prior's 5 layers of 32 maps and K logits
            return 2 * IMAGE_PIXELS + 2 * hidden + 49 * (3 * self.latent_dim + 5 * 32 + self.codebook_size)
        latents = 2 * self.latent_dim
        if self.stochastic_layers == 2:  # the top path, both of z₁'s Gaussians and z₂'s
            latents += 2 * self.top_hidden_dim + 4 * self.latent_dim + 2 * self.top_latent_dim
        if self.prior != "standard":  # a log density per component for every draw
            latents += self.prior_components
        return 2 * IMAGE_PIXELS + hidden + self.iwae_samples * (hidden + 2 * IMAGE_PIXELS + latents)

    def training_bytes(self) -> int:
        """≈ memory to train: 4 bytes × (4 × parameters (weights, gradients, Adam's two moments)
        + 3 × activations of one batch (forward, saved for backward, gradients))."""
        return FLOAT_BYTES * (4 * self.parameter_count() + 3 * self.batch_size * self.image_activations())

    def decoding_bytes(self, n: int) -> int:
        """≈ memory to decode and draw ``n`` images at once: weights, plus per image its activations and a figure's
        RGBA pixels (4 × 8 bytes each)."""
        return FLOAT_BYTES * self.parameter_count() + n * (FLOAT_BYTES * self.image_activations() + 32 * IMAGE_PIXELS)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (for JSON and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Rebuild a Config, naming any setting this version of the lab does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known settings are {sorted(known)}")
        return cls(**values)

    def beta_at(self, progress: float) -> float:
        """The KL weight after ``progress`` epochs (fractional): `beta`, ramped up linearly during warm-up."""
        if self.warmup_epochs == 0:
            return self.beta
        return self.beta * min(1.0, progress / self.warmup_epochs)

    def lr_at(self, epoch: int) -> float:
        """The learning rate for epoch ``epoch`` (1-based): `lr`, decaying geometrically to `lr_final`."""
        if self.lr_final is None or self.epochs == 1:
            return self.lr
        return self.lr * (self.lr_final / self.lr) ** ((epoch - 1) / (self.epochs - 1))


def is_number(value: Any) -> bool:
    """True for an int or a float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_memory(task: str, needed: int, fix: str) -> None:
    """Refuse, before anything is allocated, a task estimated to need more than `MEMORY_CEILING` bytes."""
    if needed > MEMORY_CEILING:
        raise ValueError(f"{task} would need about {needed / 2**30:,.1f} GB of memory, more than the lab's "
                         f"{MEMORY_CEILING / 2**30:.0f} GB ceiling; {fix}")


def require_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None, hint: str = "") -> int:
    """Return ``value`` if it is a whole number (not a bool) from ``minimum`` to ``maximum``; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        kind = (f"a whole number from {minimum} to {maximum}" if maximum is not None
                else "a positive integer" if minimum == 1 else "a non-negative integer" if minimum == 0
                else f"an integer of at least {minimum}")
        raise BadValue(f"{name} must be {kind}, got {value!r}" + (f"; {hint}" if hint else ""))
    return value
