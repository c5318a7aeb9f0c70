"""Every exercise's check (vae_lab.lessons.checks), notebooks 00–11: the reference solution and answers written other
ways pass; each mistake a student is likely to make gets a hint that names it, in one line, without the solution;
the untouched stub is "not attempted"; the lab's own function and the reference solution are refused, and the lab
works as before afterwards; an exception in the student's code is one line that says where and why."""
import ast
import inspect
import json
import linecache
import math
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vae_lab
from vae_lab import Config, History, kl_divergence, reparameterize, vae_loss
from vae_lab.evaluate import importance_bounds
from vae_lab.latent import decode_every_digit, interpolate, kl_per_dimension, style_transfer
from vae_lab.lessons import capstone, checks, solutions
from vae_lab.lessons.autoencoder import fitted_gaussian_kl
from vae_lab.lessons.beta_vae import active_units
from vae_lab.model import Encoder, VAE, sample_digits
from vae_lab.tools.student_edition import STUDENT_DIR
from vae_lab.train import train_epoch


def as_student_code(solution):
    """The reference solution compiled afresh from its source, as the complete edition's answer cell compiles it: the
    same code, written outside the lab, so that the check sees the student's own code. (Passing `solutions.X` itself
    is refused, as it is for a student who imports it.)"""
    source = textwrap.dedent(inspect.getsource(solution))
    filename = f"<reference solution {solution.__name__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {name: value for name, value in vars(solutions).items()
                 if not name.startswith("__") and getattr(value, "__module__", None) != solutions.__name__}
    namespace["__name__"] = "__main__"
    exec(compile(source, filename, "exec"), namespace)
    return namespace[solution.__name__]


def run(check, answer, capsys):
    """The check's result and its printed line, which must be exactly one line."""
    passed = check(answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Traceback" not in out, out
    return passed, out


def stub(*args):
    raise NotImplementedError  # your code here


class StubVAE(nn.Module):
    def __init__(self):
        super().__init__()
        raise NotImplementedError  # your code here


def linear(layer, v):
    return v @ layer.weight.T + layer.bias


# ---- each exercise: its check, the reference, answers written other ways, and the likely mistakes ----


# 00 · gap_to_prior
def gap(codes):
    m, s2 = codes.mean(dim=0), codes.var(dim=0)
    return 0.5 * (m ** 2 + s2 - 1 - s2.log()).sum()


def half_sum(m, variance, log_term):
    return 0.5 * (m + variance - 1 - log_term).sum()


GAP_OTHERS = [
    lambda c: float(gap(c.double())),
    lambda c: 0.5 * (c.mean(0) ** 2 + c.var(0, unbiased=False) - 1 - c.var(0, unbiased=False).log()).sum(),
    lambda c: sum(0.5 * (c[:, j].mean() ** 2 + c[:, j].var() - 1 - torch.log(c[:, j].var())) for j in range(c.shape[1])),
]
GAP_MISTAKES = {  # the five most likely first, then more
    "sign": (lambda c: -gap(c), "sign"),
    "no ½": (lambda c: 2 * gap(c), "forgot the ½"),
    "std for variance": (lambda c: half_sum(c.mean(0) ** 2, c.std(0), c.std(0).log()), "standard deviation"),
    "mean over dimensions": (lambda c: gap(c) / c.shape[1], "averaged over the dimensions"),
    "per dimension": (lambda c: 0.5 * (c.mean(0) ** 2 + c.var(0) - 1 - c.var(0).log()), "one number per dimension"),
    "means missing": (lambda c: gap(c - c.mean(dim=0)), "means are missing"),
    "m not squared": (lambda c: half_sum(c.mean(0), c.var(0), c.var(0).log()), "the mean enters squared"),
    "log of std": (lambda c: half_sum(c.mean(0) ** 2, c.var(0), c.std(0).log()), "log of the variance"),
    "no log term": (lambda c: half_sum(c.mean(0) ** 2, c.var(0), 0), "forgot the − log s² term"),
    "no − 1": (lambda c: 0.5 * (c.mean(0) ** 2 + c.var(0) - c.var(0).log()).sum(), "forgot the − 1"),
    "wrong axis": (lambda c: 0.5 * (c.mean(1) ** 2 + c.var(1) - 1 - c.var(1).log()), "across the codes, dim=0"),
    "not a number": (lambda c: "eleven", "return one number"),
    "off": (lambda c: gap(c) + 1, "expected 11.248 nats"),
}


# 01 · encode
def own_encode(encoder, x):
    h = torch.relu(linear(encoder.hidden, x))
    return linear(encoder.mu, h), linear(encoder.logvar, h)


def encode_with_addmm(encoder, x):
    h = torch.addmm(encoder.hidden.bias, x, encoder.hidden.weight.t()).clamp(min=0)
    return (torch.addmm(encoder.mu.bias, h, encoder.mu.weight.t()),
            torch.addmm(encoder.logvar.bias, h, encoder.logvar.weight.t()))


ENCODE_OTHERS = [encode_with_addmm, lambda e, x: tuple(t.double() for t in own_encode(e, x)),
                 lambda e, x: list(own_encode(e, x))]
ENCODE_MISTAKES = {
    "no ReLU": (lambda e, x: (linear(e.mu, linear(e.hidden, x)), linear(e.logvar, linear(e.hidden, x))), "ReLU"),
    "swapped": (lambda e, x: own_encode(e, x)[::-1], "swapped"),
    "returns σ": (lambda e, x: (own_encode(e, x)[0], own_encode(e, x)[1].mul(0.5).exp()), "that second output is σ"),
    "untransposed weight": (lambda e, x: (x @ e.hidden.weight, x), "stores its weight as (out, in)"),
    "hidden only": (lambda e, x: (torch.relu(linear(e.hidden, x)), x), "hidden layer"),
    "calls the encoder": (lambda e, x: e(x), "write it yourself: you called vae_lab.model.Encoder.forward"),
    "calls a layer": (lambda e, x: (e.mu(torch.relu(e.hidden(x))), e.logvar(torch.relu(e.hidden(x)))),
                      "write it yourself: you called a layer itself, such as encoder.hidden(x)"),
    "F.linear": (lambda e, x: (F.linear(torch.relu(F.linear(x, e.hidden.weight, e.hidden.bias)), e.mu.weight,
                                        e.mu.bias), x), "write it yourself: you called F.linear"),
    "returns σ²": (lambda e, x: (own_encode(e, x)[0], own_encode(e, x)[1].exp()), "that second output is σ²"),
    "ReLU on the heads": (lambda e, x: tuple(t.relu() for t in own_encode(e, x)), "the ReLU belongs to the hidden"),
    "μ head twice": (lambda e, x: (own_encode(e, x)[0], own_encode(e, x)[0]), "both outputs come from the μ head"),
    "no biases": (lambda e, x: ((torch.relu(x @ e.hidden.weight.T) @ e.mu.weight.T),
                                (torch.relu(x @ e.hidden.weight.T) @ e.logvar.weight.T)), "the biases are missing"),
    "sigmoid": (lambda e, x: (linear(e.mu, torch.sigmoid(linear(e.hidden, x))),
                              linear(e.logvar, torch.sigmoid(linear(e.hidden, x)))), "not a sigmoid"),
    "one tensor": (lambda e, x: own_encode(e, x)[0], "return two tensors"),
}


# 02 · reparameterize_with
REPARAMETERIZE_OTHERS = [lambda m, lv, e: m + (0.5 * lv).exp() * e, lambda m, lv, e: m + lv.exp().sqrt() * e,
                         lambda m, lv, e: torch.addcmul(m, torch.exp(lv / 2), e),
                         lambda m, lv, e: m.double() + (0.5 * lv.double()).exp() * e.double()]


def in_place_noise(mu, logvar, eps):
    z = mu
    z += torch.exp(0.5 * logvar) * eps
    return z


REPARAMETERIZE_MISTAKES = {
    "forgot the ½": (lambda m, lv, e: m + lv.exp() * e, "Forgot the ½"),
    "no noise": (lambda m, lv, e: m, "z equals μ: add the noise term"),
    "new noise": (lambda m, lv, e: m + (0.5 * lv).exp() * torch.randn_like(m), "you drew new noise"),
    "log σ² as σ": (lambda m, lv, e: m + lv * e, "logarithm"),
    "in place": (in_place_noise, "in-place operation"),
    "detached": (lambda m, lv, e: (m + (0.5 * lv).exp() * e).detach(), "no gradient reaches"),
    "minus": (lambda m, lv, e: m - (0.5 * lv).exp() * e, "plus, not minus"),
    "½ log σ² as σ": (lambda m, lv, e: m + 0.5 * lv * e, "logarithm"),
    "unscaled ε": (lambda m, lv, e: m + e, "ε is not scaled"),
    "no μ": (lambda m, lv, e: (0.5 * lv).exp() * e, "μ is missing"),
    "square root of log σ²": (lambda m, lv, e: m + lv.sqrt() * e, "NaN"),
    "multiplied": (lambda m, lv, e: m * (0.5 * lv).exp() * e, "added, not multiplied"),
}


# 03 · gaussian_kl
def own_kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(dim=1)


def per_dimension(terms):
    return -0.5 * terms.sum(dim=1)


KL_OTHERS = [own_kl, lambda m, lv: -0.5 * (1 + lv - m ** 2 - lv.exp()).double().sum(dim=1),
             lambda m, lv: torch.distributions.kl_divergence(
                 torch.distributions.Normal(m, (0.5 * lv).exp()), torch.distributions.Normal(0.0, 1.0)).sum(1)]
KL_MISTAKES = {
    "forgot the ½": (lambda m, lv: 2 * own_kl(m, lv), "forgot the ½"),
    "sign": (lambda m, lv: -own_kl(m, lv), "sign"),
    "summed over the batch": (lambda m, lv: own_kl(m, lv).sum(), "summed over the batch as well"),
    "σ for σ²": (lambda m, lv: per_dimension(1 + lv - m ** 2 - (0.5 * lv).exp()), "not σ"),
    "σ² = exp(2·log σ²)": (lambda m, lv: per_dimension(1 + lv - m ** 2 - (2 * lv).exp()), "not exp(2 · log σ²)"),
    "per dimension": (lambda m, lv: -0.5 * (1 + lv - m ** 2 - lv.exp()), "one KL per latent dimension"),
    "no 1": (lambda m, lv: per_dimension(lv - m ** 2 - lv.exp()), "forgot the 1"),
    "mean over dimensions": (lambda m, lv: -0.5 * (1 + lv - m ** 2 - lv.exp()).mean(1), "averaged over the latent"),
    "mean over the batch": (lambda m, lv: own_kl(m, lv).mean(), "averaged over the batch"),
    "μ not squared": (lambda m, lv: per_dimension(1 + lv - m - lv.exp()), "μ², not μ"),
    "log σ² term missing": (lambda m, lv: per_dimension(1 - m ** 2 - lv.exp()), "the log σ² term is missing"),
    "μ² missing": (lambda m, lv: per_dimension(1 + lv - lv.exp()), "the μ² term is missing"),
    "log σ² for σ²": (lambda m, lv: per_dimension(1 + lv - m ** 2 - lv), "not log σ² again"),
    "lab's KL": (lambda m, lv: vae_lab.kl_divergence(m, lv), "write it yourself: you called vae_lab.kl_divergence"),
}


# 04 · training_step
def step_with(loss_of, *, zero_grad="before", step=True, returns="loss"):
    """A training step that trains on loss_of(x, logits, mu, logvar); the switches make the known slips."""
    def training_step(model, optimizer, x):
        logits, mu, logvar = model(x)
        loss = loss_of(x, logits, mu, logvar)
        if zero_grad == "before":
            optimizer.zero_grad()
        loss.backward()
        if zero_grad == "between":
            optimizer.zero_grad()
        if step:
            optimizer.step()
        if returns == "after":
            return vae_loss(x, *model(x)).total.item()
        return {"loss": loss.item(), "tensor": loss, "nothing": None,
                "bce": F.binary_cross_entropy_with_logits(logits, x, reduction="sum").item() / len(x)}[returns]
    return training_step


def bce(x, logits, reduction="none"):
    return F.binary_cross_entropy_with_logits(logits, x, reduction=reduction)


def kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def right_loss(x, logits, mu, logvar):
    return (bce(x, logits).sum(1) + kl(mu, logvar)).mean()


def step_with_own_optimizer(model, optimizer, x):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return step_with(right_loss)(model, optimizer, x)


STEP_OTHERS = [step_with(right_loss), step_with(lambda x, f, m, v: vae_loss(x, f, m, v).total),
               step_with(lambda x, f, m, v: (bce(x, f, "sum") + kl(m, v).sum()) / len(x)),
               step_with(lambda x, f, m, v: F.binary_cross_entropy(torch.sigmoid(f), x, reduction="sum") / len(x)
                         + kl(m, v).mean())]
STEP_MISTAKES = {
    "BCE on probabilities": (step_with(lambda x, f, m, v: (bce(x, torch.sigmoid(f)).sum(1) + kl(m, v)).mean()),
                             "the sigmoid is applied twice"),
    "mean-reduced BCE": (step_with(lambda x, f, m, v: bce(x, f, "mean") + kl(m, v).mean()), "reduction='mean'"),
    "KL summed over the batch": (step_with(lambda x, f, m, v: bce(x, f).sum(1).mean() + kl(m, v).sum()),
                                 "your KL is summed over the batch"),
    "KL left out": (step_with(lambda x, f, m, v: bce(x, f).sum(1).mean()), "the KL term is missing"),
    "loss after the update": (step_with(right_loss, returns="after"), "computed again after optimizer.step()"),
    "zero_grad between backward and step": (step_with(right_loss, zero_grad="between"),
                                            "between loss.backward() and optimizer.step()"),
    "no zero_grad": (step_with(right_loss, zero_grad="never"), "clear the gradients in every step"),
    "no step": (step_with(right_loss, step=False), "call optimizer.step()"),
    "returns the tensor": (step_with(right_loss, returns="tensor"), "as a Python number"),
    "returns nothing": (step_with(right_loss, returns="nothing"), "returns nothing"),
    "summed over the batch": (step_with(lambda x, f, m, v: (bce(x, f).sum(1) + kl(m, v)).sum()),
                              "16 times the lab's"),
    "returns the BCE alone": (step_with(right_loss, returns="bce"), "return only its BCE part"),
    "KL subtracted": (step_with(lambda x, f, m, v: (bce(x, f).sum(1) - kl(m, v)).mean()), "sign"),
    "a new optimizer": (step_with_own_optimizer, "use the optimizer you are given"),
    "lab's train_epoch": (lambda model, optimizer, x: train_epoch(model, optimizer, x, None, torch.Generator(), 1)[0],
                          "write it yourself: you called vae_lab.train.train_epoch"),
}


# 05 · decode_prior_samples
def prior(model, n, generator):
    return model.decode(torch.randn(n, model.config.latent_dim, generator=generator))


def hard_coded_latent_size(model, n, generator):
    z = torch.randn(n, 20, generator=generator)
    return model.decode(z)


PRIOR_OTHERS = [prior, lambda model, n, g: torch.sigmoid(model.decoder(torch.randn(n, model.config.latent_dim,
                                                                                      generator=g))),
                lambda model, n, g: model.decode(torch.normal(0.0, 1.0, (n, model.config.latent_dim), generator=g)),
                lambda model, n, g: prior(model, n, g).double()]
PRIOR_MISTAKES = {
    "logits": (lambda model, n, g: model.decoder(torch.randn(n, model.config.latent_dim, generator=g)), "logits"),
    "generator ignored": (lambda model, n, g: model.decode(torch.randn(n, model.config.latent_dim)),
                          "the generator you are given"),
    "uniform": (lambda model, n, g: model.decode(torch.rand(n, model.config.latent_dim, generator=g)), "torch.randn"),
    "latent size hard-coded": (hard_coded_latent_size, "this check's model has 4 latent dimensions"),
    "(n, 28, 28)": (lambda model, n, g: prior(model, n, g).reshape(n, 28, 28), "rows of 784 pixels, shape (6, 784)"),
    "(n, 1, 28, 28)": (lambda model, n, g: prior(model, n, g).reshape(n, 1, 28, 28), "shape (6, 784)"),
    "one too few": (lambda model, n, g: prior(model, n - 1, g), "asked for 6 images, got 5"),
    "sigmoid twice": (lambda model, n, g: torch.sigmoid(prior(model, n, g)), "the sigmoid is applied twice"),
    "z = 0": (lambda model, n, g: model.decode(torch.zeros(n, model.config.latent_dim)), "z = 0"),
    "n hard-coded": (lambda model, n, g: prior(model, 6, g), "asked for n = 3 images, got 6"),
    "model.sample": (lambda model, n, g: model.sample(n, g), "write it yourself: you called vae_lab.model.VAE.sample"),
    "sample_digits": (lambda model, n, g: sample_digits(model, n, seed=5), "write it yourself: you called "
                                                                          "vae_lab.model.sample_digits"),
}


# 06 · MyVAE
ReferenceVAE = as_student_code(solutions.MyVAE)


class ChunkedVAE(nn.Module):
    """One Linear(400, 40) chunked into μ and log σ²: the same model, a common idiom."""

    def __init__(self):
        super().__init__()
        self.encoder_hidden = nn.Linear(784, 400)
        self.heads = nn.Linear(400, 40)
        self.decoder_hidden = nn.Linear(20, 400)
        self.decoder_out = nn.Linear(400, 784)

    def encode(self, x):
        mu, logvar = self.heads(F.relu(self.encoder_hidden(x))).chunk(2, dim=1)
        return mu, logvar

    def reparameterize(self, mu, logvar):
        return mu + (0.5 * logvar).exp() * torch.randn_like(logvar)

    def decode(self, z):
        return self.decoder_out(F.relu(self.decoder_hidden(z)))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


class SequentialVAE(nn.Module):
    """nn.Sequential blocks, ε drawn with torch.randn of μ's shape."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 400), nn.ReLU())
        self.to_mu, self.to_logvar = nn.Linear(400, 20), nn.Linear(400, 20)
        self.decoder = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))

    def encode(self, x):
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def reparameterize(self, mu, logvar):
        return (0.5 * logvar).exp() * torch.randn(mu.shape) + mu

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def with_method(name, body):
    """The reference MyVAE with one method replaced."""
    return type("Mistake", (ReferenceVAE,), {name: body})


class Wide(ReferenceVAE):
    def __init__(self):
        super().__init__()
        self.hidden, self.mu, self.logvar = nn.Linear(784, 512), nn.Linear(512, 20), nn.Linear(512, 20)


class NoSuperInit(ReferenceVAE):
    def __init__(self):
        self.hidden = nn.Linear(784, 400)


class NoBias(ReferenceVAE):
    def __init__(self):
        super().__init__()
        self.mu = nn.Linear(400, 20, bias=False)


MODEL_OTHERS = [ReferenceVAE, ChunkedVAE, SequentialVAE]
MODEL_MISTAKES = {
    "z = μ": (with_method("reparameterize", lambda self, mu, logvar: mu), "z = μ: add the noise term"),
    "σ² for σ": (with_method("reparameterize", lambda self, mu, logvar: mu + logvar.exp() * torch.randn_like(mu)),
                 "you scaled ε by σ²"),
    "no encoder ReLU": (with_method("encode", lambda self, x: (self.mu(self.hidden(x)), self.logvar(self.hidden(x)))),
                        "the encoder has no ReLU"),
    "sigmoid in decode": (with_method("decode", lambda self, z: torch.sigmoid(self.out(F.relu(self.decoder_hidden(z))))),
                          "decode returns probabilities"),
    "decodes μ": (with_method("forward", lambda self, x: (self.decode(self.encode(x)[0]), *self.encode(x))),
                  "forward decodes μ itself"),
    "layers": (Wide, "expected the lab's layers"),
    "log σ² as σ": (with_method("reparameterize", lambda self, mu, logvar: mu + logvar * torch.randn_like(mu)),
                    "log σ² is a logarithm"),
    "no decoder ReLU": (with_method("decode", lambda self, z: self.out(self.decoder_hidden(z))),
                        "the decoder has no ReLU"),
    "the same noise": (with_method("reparameterize", lambda self, mu, logvar: mu + (0.5 * logvar).exp()
                                   * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))),
                       "two calls gave the same z"),
    "unscaled ε": (with_method("reparameterize", lambda self, mu, logvar: mu + torch.randn_like(mu)),
                   "ε is not scaled"),
    "detached z": (with_method("reparameterize", lambda self, mu, logvar: (mu + (0.5 * logvar).exp()
                                                                           * torch.randn_like(mu)).detach()),
                   "no gradient reaches z"),
    "forward order": (with_method("forward", lambda self, x: (*self.encode(x), self.decode(
        self.reparameterize(*self.encode(x))))), "in that order"),
    "ReLU on the heads": (with_method("encode", lambda self, x: (F.relu(self.mu(F.relu(self.hidden(x)))),
                                                                 F.relu(self.logvar(F.relu(self.hidden(x)))))),
                          "the ReLU belongs to the hidden layer only"),
    "no super().__init__()": (NoSuperInit, "call super().__init__() first"),
    "no bias": (NoBias, "has no bias"),
    "lab's encoder": (with_method("encode", lambda self, x: vae_lab.model.Encoder()(x)),
                      "write it yourself: you called vae_lab.model.Encoder"),
    "lab's reparameterize": (with_method("reparameterize", lambda self, mu, logvar: vae_lab.reparameterize(mu, logvar)),
                             "write it yourself: you called vae_lab.reparameterize"),
}


# 06 · negative_elbo
def softplus_elbo(x, logits, mu, logvar):
    logits, x = logits.double(), x.double()
    variance = torch.exp(logvar.double())
    return torch.mean((F.softplus(logits) - x * logits).sum(1) + 0.5 * (mu.double() ** 2 + variance - 1
                                                                         - logvar.double()).sum(1))


LOSS_OTHERS = [as_student_code(solutions.negative_elbo), softplus_elbo,
               lambda x, f, m, v: (bce(x, f, "sum") + kl(m, v).sum()) / len(x)]
LOSS_MISTAKES = {
    "mean over pixels": (lambda x, f, m, v: bce(x, f, "mean") + kl(m, v).mean(), "mean over pixels"),
    "batch sum": (lambda x, f, m, v: (bce(x, f).sum(1) + kl(m, v)).sum(), "you summed over the batch"),
    "KL per batch": (lambda x, f, m, v: bce(x, f).sum(1).mean() + kl(m, v).sum(), "your KL is per batch"),
    "sigmoid then with_logits": (lambda x, f, m, v: bce(x, torch.sigmoid(f)).sum(1).mean() + kl(m, v).mean(),
                                 "BCE on probabilities after a sigmoid"),
    "log of sigmoid": (lambda x, f, m, v: -(x * torch.log(torch.sigmoid(f)) + (1 - x) * torch.log(1 - torch.sigmoid(f)))
                       .sum(1).mean() + kl(m, v).mean(), "your loss is not finite"),
    "KL mean over dimensions": (lambda x, f, m, v: bce(x, f).sum(1).mean() + kl(m, v).mean() / 20,
                                "averaged the KL over"),
    "no KL": (lambda x, f, m, v: bce(x, f).sum(1).mean(), "the KL term is missing"),
    "KL sign": (lambda x, f, m, v: bce(x, f).sum(1).mean() - kl(m, v).mean(), "sign"),
    "sigmoid then BCE": (lambda x, f, m, v: F.binary_cross_entropy(torch.sigmoid(f), x, reduction="sum") / len(x)
                         + kl(m, v).mean(), "BCE on probabilities after a sigmoid"),
    "per image": (lambda x, f, m, v: bce(x, f).sum(1) + kl(m, v), "return one number"),
    "item": (lambda x, f, m, v: torch.tensor((bce(x, f).sum(1) + kl(m, v)).mean().item()), "differentiable"),
    "arguments swapped": (lambda x, f, m, v: bce(f, x).sum(1).mean() + kl(m, v).mean(), "the arguments are swapped"),
    "BCE per batch": (lambda x, f, m, v: bce(x, f).sum() + kl(m, v).mean(), "your BCE is per batch"),
    "lab's KL": (lambda x, f, m, v: bce(x, f).sum(1).mean() + vae_lab.kl_divergence(m, v).mean(),
                 "write it yourself: you called vae_lab.kl_divergence"),
    "lab's loss": (lambda x, f, m, v: vae_lab.vae_loss(x, f, m, v).total, "write it yourself: you called "
                                                                         "vae_lab.vae_loss"),
}


# 06 · train_my_vae
def loop(model, loss_fn, train_images, test_images, epochs, seed, *, shuffle="seeded", batch_size=128, lr=1e-3,
         zero_grad="before", seed_noise=True, test="no_grad eval", train_mode=True, report="per image"):
    """The reference loop with switches that reproduce the known slips."""
    if seed_noise:
        torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    fixed = torch.randperm(len(train_images), generator=generator) if shuffle == "once" else None
    train_losses, test_losses = [], []
    for epoch in range(epochs):
        if train_mode or epoch == 0:
            model.train()
        order = {"seeded": lambda: torch.randperm(len(train_images), generator=generator),
                 "global": lambda: torch.randperm(len(train_images)),
                 "fresh generator": lambda: torch.randperm(len(train_images),
                                                           generator=torch.Generator().manual_seed(seed)),
                 "once": lambda: fixed, "never": lambda: torch.arange(len(train_images))}[shuffle]()
        total = 0.0
        for batch in order.split(batch_size):
            x = train_images[batch]
            loss = loss_fn(x, *model(x))
            if zero_grad == "before":
                optimizer.zero_grad()
            loss.backward()
            if zero_grad == "between":
                optimizer.zero_grad()
            optimizer.step()
            total += loss.item() * len(x)
        train_losses.append(total / len(train_images) if report == "per image" else loss.item())
        if "eval" in test:
            model.eval()
        with torch.no_grad() if "no_grad" in test else torch.enable_grad():
            test_total = sum(loss_fn(x, *model(x)).item() * len(x) for x in test_images.split(1000))
        test_losses.append(test_total / len(test_images))
    return train_losses, test_losses


def loop_with(**slip):
    return lambda *args: loop(*args, **slip)


def slicing_loop(model, loss_fn, train_images, test_images, epochs, seed):
    """Another way: slices of a shuffled copy, the mean of the batch losses, one test pass in a single batch."""
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    history = ([], [])
    for _ in range(epochs):
        model.train()
        shuffled = train_images[torch.randperm(train_images.shape[0], generator=g)]
        losses = []
        for start in range(0, len(shuffled), 128):
            x = shuffled[start:start + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, *model(x))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history[0].append(sum(losses) / len(losses))
        model.eval()
        with torch.no_grad():
            history[1].append(loss_fn(test_images, *model(test_images)).item())
    return history


LOOP_OTHERS = [as_student_code(solutions.train_my_vae), loop, slicing_loop]
LOOP_MISTAKES = {
    "no zero_grad": (loop_with(zero_grad="never"), "adds up all the old gradients"),
    "zero_grad after backward": (loop_with(zero_grad="between"), "between loss.backward() and optimizer.step()"),
    "test loss with gradients on": (loop_with(test="eval"), "with gradients on"),
    "test loss with gradients on in train mode": (loop_with(test="train"), "with gradients on"),
    "shuffle without the seeded generator": (loop_with(shuffle="global"), "does not come from the seeded generator"),
    "no shuffling": (loop_with(shuffle="never"), "no shuffling"),
    "shuffled once": (loop_with(shuffle="once"), "the same order"),
    "a fresh generator every epoch": (loop_with(shuffle="fresh generator"), "the same order"),
    "batch size": (loop_with(batch_size=100), "mini-batches of 128"),
    "learning rate": (loop_with(lr=1e-2), "learning rate 1e-3"),
    "ε not seeded": (loop_with(seed_noise=False), "two runs with the same seed differ"),
    "test in train mode": (loop_with(test="no_grad"), "still in training mode"),
    "no model.train()": (loop_with(train_mode=False), "call model.train() at the start of every epoch"),
    "last batch's loss": (loop_with(report="last batch"), "the mean of its batches' losses"),
    "lab's fit": (lambda m, l, tr, te, e, s: vae_lab.fit(m, None), "write it yourself: you called vae_lab.fit"),
}


# 07 · linear_interpolation
def path(z0, z1, t):
    return (1 - t[:, None]) * z0 + t[:, None] * z1


def missing_column(z0, z1, steps):
    t = torch.linspace(0, 1, steps)
    return (1 - t) * z0 + t * z1


INTERPOLATION_OTHERS = [lambda z0, z1, s: path(z0, z1, torch.linspace(0, 1, s)),
                        lambda z0, z1, s: torch.stack([z0 + (z1 - z0) * i / (s - 1) for i in range(s)]),
                        lambda z0, z1, s: torch.lerp(z0, z1, torch.linspace(0, 1, s, dtype=torch.float64)[:, None]
                                                     .float()),
                        lambda z0, z1, s: path(z0.double(), z1.double(), torch.linspace(0, 1, s, dtype=torch.float64))]
INTERPOLATION_MISTAKES = {
    "swapped ends": (lambda z0, z1, s: path(z1, z0, torch.linspace(0, 1, s)), "your path runs from z1 to z0"),
    "missing t[:, None]": (missing_column, "t[:, None]"),
    "no end point": (lambda z0, z1, s: path(z0, z1, torch.arange(s) / s), "the last row is not z1"),
    "unnormalised t": (lambda z0, z1, s: path(z0, z1, torch.arange(s).float()), "t runs over 0, 1, …, 6"),
    "a list of rows": (lambda z0, z1, s: [z0 + (z1 - z0) * i / (s - 1) for i in range(s)], "torch.stack"),
    "one row too many": (lambda z0, z1, s: path(z0, z1, torch.linspace(0, 1, s + 1)), "one row too many"),
    "transposed": (lambda z0, z1, s: path(z0, z1, torch.linspace(0, 1, s)).T, "it is transposed"),
    "no start point": (lambda z0, z1, s: path(z0, z1, torch.arange(1, s + 1) / s), "the first row is not z0"),
    "z0 not faded": (lambda z0, z1, s: z0 + torch.linspace(0, 1, s)[:, None] * z1, "z0 must fade out"),
    "lab's interpolate": (lambda z0, z1, s: interpolate(z0, z1, s), "write it yourself: you called "
                                                                   "vae_lab.latent.interpolate"),
}


# 08 · iwae_from_log_weights
def iwae_by_hand(log_w):
    m = log_w.max(dim=0).values
    return m + torch.log(torch.exp(log_w - m).mean(dim=0))


def iwae_through_importance_bounds(log_w):
    """q = p(z) = N(0, I), so log p(z) − log q(z) = 0 and the lab's bound sees exactly these log-weights."""
    n = log_w.shape[1]
    return importance_bounds(torch.zeros(n, 1), torch.zeros(n, 1), lambda z: log_w, len(log_w)).iwae


IWAE_OTHERS = [iwae_by_hand, lambda w: torch.logsumexp(w.double(), dim=0) - math.log(len(w)),
               lambda w: torch.logsumexp(w - math.log(w.shape[0]), dim=0)]
IWAE_MISTAKES = {
    "naive exp": (lambda w: torch.log(torch.exp(w).mean(dim=0)), "underflows to 0"),
    "naive exp in float64": (lambda w: torch.log(torch.exp(w.double()).mean(dim=0)), "underflows to 0"),
    "mean of the log-weights": (lambda w: w.mean(dim=0), "the mean of the log-weights, the ELBO's estimate"),
    "no − log K": (lambda w: torch.logsumexp(w, dim=0), "subtract log K"),
    "wrong dim": (lambda w: torch.logsumexp(w, dim=1) - math.log(w.shape[1]), "reduce over dim=0"),
    "m not added back": (lambda w: torch.log(torch.exp(w - w.max(0).values).mean(0)), "did not add it back"),
    "largest log-weight": (lambda w: w.max(dim=0).values, "the largest log-weight alone"),
    "divided by K": (lambda w: torch.logsumexp(w, dim=0) / len(w), "instead of dividing by K"),
    "keepdim": (lambda w: torch.logsumexp(w, dim=0, keepdim=True) - math.log(len(w)), "no keepdim"),
    "K hard-coded": (lambda w: torch.logsumexp(w, dim=0) - math.log(50), "with K = 1"),
    "lab's bounds": (iwae_through_importance_bounds, "write it yourself: you called vae_lab.evaluate.importance_bounds"),
}


# 09 · count_active_units
UNITS_OTHERS = [lambda mu, t: (mu.var(dim=0) > t).sum(), lambda mu, t: sum(1 for u in range(mu.shape[1])
                                                                           if mu[:, u].var() > t),
                lambda mu, t: int(((mu - mu.mean(0)) ** 2).sum(0).div(len(mu) - 1).gt(t).sum()),
                lambda mu, t: (mu.double().var(dim=0) > t).sum()]
UNITS_MISTAKES = {
    "wrong axis": (lambda mu, t: int((mu.var(dim=1) > t).sum()), "more than the 8 units"),
    "inactive": (lambda mu, t: int((mu.var(dim=0) <= t).sum()), "inactive"),
    "standard deviation": (lambda mu, t: int((mu.std(dim=0) > t).sum()), "standard deviation"),
    "fixed threshold": (lambda mu, t: int((mu.var(dim=0) > 0.01).sum()), "`threshold` argument"),
    "the mask": (lambda mu, t: mu.var(dim=0) > t, "one whole number"),
    "uncentred": (lambda mu, t: int((mu.pow(2).mean(dim=0) > t).sum()), "without centring"),
    "one variance over everything": (lambda mu, t: int(mu.var() > t), "one variance over all the entries"),
    "a fraction": (lambda mu, t: float((mu.var(dim=0) > t).float().mean()), "a whole number of units"),
    "lab's active_units": (lambda mu, t: int(active_units(mu, t).sum()), "write it yourself: you called "
                                                                         "vae_lab.lessons.beta_vae.active_units"),
}


# 10 · write_as_every_digit
def style(model, image, label):
    mu, _ = model.encoder(image[None], torch.tensor([label]))
    return model.decode(mu.expand(10, -1), torch.arange(10))


STYLE_OTHERS = [style, lambda model, image, label: torch.cat([
    model.decode(model.encoder(image.view(1, -1), torch.tensor([label]))[0], torch.tensor([y])) for y in range(10)]),
    lambda model, image, label: style(model, image, label).double()]
STYLE_MISTAKES = {
    "encoded with the target labels": (lambda model, image, label: model.reconstruct(image.repeat(10, 1),
                                                                                     torch.arange(10)),
                                       "once per target digit"),
    "the same digit ten times": (lambda model, image, label: model.reconstruct(image[None], torch.tensor([label]))
                                 .repeat(10, 1), "all ten rows show the same digit"),
    "a sample": (lambda model, image, label: model.decode(reparameterize(
        *model.encoder(image[None], torch.tensor([label]))).repeat(10, 1), torch.arange(10)), "not a sample"),
    "logits": (lambda model, image, label: model.decoder(model.encoder(image[None], torch.tensor([label]))[0]
                                                         .repeat(10, 1), torch.arange(10)), "logits"),
    "(10, 1, 28, 28)": (lambda model, image, label: style(model, image, label).reshape(10, 1, 28, 28),
                        "shape (10, 784)"),
    "label 0": (lambda model, image, label: model.decode(model.encoder(image[None], torch.tensor([0]))[0].repeat(10, 1),
                                                         torch.arange(10)), "you encoded with label 0"),
    "no label": (lambda model, image, label: model.decode(model.encoder(image[None])[0].repeat(10, 1),
                                                          torch.arange(10)), "pass the digit labels too"),
    "rows reversed": (lambda model, image, label: style(model, image, label).flip(0), "from 9 down to 0"),
    "lab's style_transfer": (lambda model, image, label: style_transfer(model, image[None], torch.tensor([label])),
                             "write it yourself: you called vae_lab.latent.style_transfer"),
    "lab's decode_every_digit": (lambda model, image, label: decode_every_digit(
        model, model.encoder(image[None], torch.tensor([label]))[0]), "write it yourself: you called "
                                                                       "vae_lab.latent.decode_every_digit"),
}


# 11 · output_size
def size_with(conv, transposed_formula=lambda n, k, s, p: (n - 1) * s - 2 * p + k):
    return lambda n, k, s, p, transposed=False: transposed_formula(n, k, s, p) if transposed else conv(n, k, s, p)


def floor_conv(n, k, s, p):
    return (n + 2 * p - k) // s + 1


SIZE_OTHERS = [size_with(floor_conv), size_with(lambda n, k, s, p: math.floor((n + 2 * p - k) / s) + 1),
               size_with(lambda n, k, s, p: int((n + 2 * p - k) / s) + 1)]
SIZE_MISTAKES = {
    "round()": (size_with(lambda n, k, s, p: round((n + 2 * p - k) / s) + 1), "round down, not to the nearest"),
    "no + 1": (size_with(lambda n, k, s, p: (n + 2 * p - k) // s), "one short"),
    "one padding": (size_with(lambda n, k, s, p: (n + p - k) // s + 1), "n + 2p"),
    "float division": (size_with(lambda n, k, s, p: (n + 2 * p - k) / s + 1), "divide with //"),
    "transposed n·s": (size_with(floor_conv, lambda n, k, s, p: n * s - 2 * p + k), "n − 1 strides apart"),
    "no padding": (size_with(lambda n, k, s, p: (n - k) // s + 1), "you left out the padding"),
    "ceiling": (size_with(lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1), "round down, not up"),
    "n // s": (size_with(lambda n, k, s, p: n // s), "n // s holds for the lab's layers only"),
    "transposed with the conv formula": (size_with(floor_conv, floor_conv), "that is the convolution's formula"),
    "transposed one padding": (size_with(floor_conv, lambda n, k, s, p: (n - 1) * s - p + k),
                               "crops p pixels from *each* side"),
    "a constant": (lambda n, k, s, p, transposed=False: 3, "n=28, k=4, s=2, p=1 gives 14, you said 3"),
}


# 12 · vamp_log_density
def vamp_terms(z, m, lv, variance=None, normalised=True):
    variance = lv.exp() if variance is None else variance
    return -0.5 * ((z[:, None] - m) ** 2 / variance + ((lv + math.log(2 * math.pi)) if normalised else 0)).sum(-1)


def vamp_by_hand(z, m, lv):
    d = vamp_terms(z, m, lv)
    top = d.max(dim=1, keepdim=True).values
    return (top + torch.log(torch.exp(d - top).mean(dim=1, keepdim=True)))[:, 0]


VAMP_OTHERS = [vamp_by_hand, lambda z, m, lv: torch.logsumexp(vamp_terms(z.double(), m.double(), lv.double()), 1)
               - math.log(m.shape[0]),
               lambda z, m, lv: torch.logsumexp(torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(z[:, None])
                                                .sum(-1) - math.log(len(m)), dim=1)]
VAMP_MISTAKES = {
    "naive exp": (lambda z, m, lv: torch.log(torch.exp(vamp_terms(z, m, lv)).mean(dim=1)), "torch.logsumexp instead"),
    "no − log K": (lambda z, m, lv: torch.logsumexp(vamp_terms(z, m, lv), 1), "subtract log K"),
    "mean of the log densities": (lambda z, m, lv: vamp_terms(z, m, lv).mean(dim=1), "mean of the K log densities"),
    "nearest component": (lambda z, m, lv: vamp_terms(z, m, lv).max(dim=1).values, "nearest component alone"),
    "no log 2π": (lambda z, m, lv: torch.logsumexp(vamp_terms(z, m, lv) + 2 * math.log(2 * math.pi), 1)
                  - math.log(len(m)), "forgot the log 2π"),
    "no normalisation": (lambda z, m, lv: torch.logsumexp(vamp_terms(z, m, lv, normalised=False), 1) - math.log(len(m)),
                         "the normalisation is missing"),
    "σ for σ²": (lambda z, m, lv: torch.logsumexp(vamp_terms(z, m, lv, (0.5 * lv).exp()), 1) - math.log(len(m)),
                 "not by s = exp(½ log s²)"),
    "per component": (lambda z, m, lv: vamp_terms(z, m, lv), "combine the K components (dim=1) with logsumexp"),
    "K hard-coded": (lambda z, m, lv: torch.logsumexp(vamp_terms(z, m, lv), 1) - math.log(5), "with one component"),
    "lab's density": (lambda z, m, lv: vae_lab.prior.log_mixture_density(z, m, lv),
                      "write it yourself: you called vae_lab.prior.log_mixture_density"),
}


# 13 · kl_between_gaussians
def kl_pair(mq, lq, mp, lp):
    return 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(dim=1)


PAIR_OTHERS = [lambda mq, lq, mp, lp: (0.5 * (lp - lq) + (lq.exp() + (mq - mp) ** 2) / (2 * lp.exp()) - 0.5).sum(1),
               lambda mq, lq, mp, lp: torch.distributions.kl_divergence(
                   torch.distributions.Normal(mq, (0.5 * lq).exp()), torch.distributions.Normal(mp, (0.5 * lp).exp())).sum(1),
               lambda mq, lq, mp, lp: kl_pair(mq.double(), lq.double(), mp.double(), lp.double())]
PAIR_MISTAKES = {
    "reversed": (lambda mq, lq, mp, lp: kl_pair(mp, lp, mq, lq), "KL(p ‖ q), the other direction"),
    "standard KL by hand": (lambda mq, lq, mp, lp: 0.5 * (mq ** 2 + lq.exp() - 1 - lq).sum(1), "the KL to N(0, I)"),
    "forgot the ½": (lambda mq, lq, mp, lp: 2 * kl_pair(mq, lq, mp, lp), "forgot the ½"),
    "log term upside down": (lambda mq, lq, mp, lp: 0.5 * (lq - lp + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(1),
                             "upside down"),
    "no division by σ_p²": (lambda mq, lq, mp, lp: 0.5 * (lp - lq + lq.exp() + (mq - mp) ** 2 - 1).sum(1),
                            "divide σ_q² + (μ_q − μ_p)² by the prior's variance"),
    "σ_p for σ_p²": (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / (0.5 * lp).exp() - 1).sum(1),
                     "not by σ_p"),
    "no − 1": (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp()).sum(1), "− 1"),
    "means not squared": (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp)) / lp.exp() - 1).sum(1),
                          "enters squared"),
    "per dimension": (lambda mq, lq, mp, lp: 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1),
                      "one KL per latent dimension"),
    "summed over the batch": (lambda mq, lq, mp, lp: kl_pair(mq, lq, mp, lp).sum(), "summed over the batch"),
    "lab's KL": (lambda mq, lq, mp, lp: vae_lab.loss.gaussian_kl(mq, lq, mp, lp),
                 "write it yourself: you called vae_lab.loss.gaussian_kl"),
}


# 14 · quantize
def nearest(z, e):
    return ((z[:, None, :] - e[None]) ** 2).sum(2).argmin(1)


QUANTIZE_OTHERS = [lambda z, e: (z + (e[torch.cdist(z, e).argmin(1)] - z).detach(), torch.cdist(z, e).argmin(1)),
                   lambda z, e: (z - z.detach() + e[nearest(z, e)].detach(), nearest(z, e)),
                   lambda z, e: (lambda k: (z + (torch.index_select(e, 0, k) - z).detach(), k.int()))(
                       (z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)).argmin(1))]
QUANTIZE_MISTAKES = {
    "no straight-through": (lambda z, e: (e[nearest(z, e)], nearest(z, e)), "none reaches the encoder"),
    "argmax": (lambda z, e: (lambda k: (z + (e[k] - z).detach(), k))(((z[:, None] - e[None]) ** 2).sum(2).argmax(1)),
               "argmax picks the farthest code"),
    "largest dot product": (lambda z, e: (lambda k: (z + (e[k] - z).detach(), k))((z @ e.T).argmax(1)),
                            "largest dot product"),
    "distance over the wrong axis": (lambda z, e: (lambda k: (z + (e[k] - z).detach(), k))(
        ((z[:, None] - e[None]) ** 2).sum(1).argmin(1)), "summed over the wrong axis"),
    "argmin over the batch": (lambda z, e: (lambda k: (z + (e[k] - z).detach(), k))(torch.cdist(z, e).argmin(0)),
                              "the shapes do not fit together (this check quantises 8 vectors"),
    "argmin over the batch, codes unused": (lambda z, e: (z + (e[nearest(z, e)] - z).detach(), torch.cdist(z, e)
                                                          .argmin(0)), "one index per code"),
    "detach on the wrong side": (lambda z, e: (z + (e[nearest(z, e)].detach() - z), nearest(z, e)), "wrong side"),
    "detached whole": (lambda z, e: ((z + e[nearest(z, e)] - z).detach(), nearest(z, e)), "nor the codebook"),
    "gradient to the codebook too": (lambda z, e: (e[nearest(z, e)] + z - z.detach(), nearest(z, e)),
                                     "also sends gradient to the codebook"),
    "codes with an extra axis": (lambda z, e: ((z + (e[nearest(z, e)] - z).detach())[:, None], nearest(z, e)),
                                 "drop the extra dimension"),
    "z_e returned": (lambda z, e: (z, nearest(z, e)), "z_q is z_e itself"),
    "swapped": (lambda z, e: (nearest(z, e), z + (e[nearest(z, e)] - z).detach()), "swapped"),
    "lab's quantize": (lambda z, e: vae_lab.model.quantize(z, e), "write it yourself: you called vae_lab.model.quantize"),
}


EXERCISES = {  # check name: (the check, the reference solution, answers written other ways, mistakes)
    "gap_to_prior": (checks.check_gap_to_prior, solutions.gap_to_prior, GAP_OTHERS, GAP_MISTAKES),
    "encode": (checks.check_encode, solutions.encode, ENCODE_OTHERS, ENCODE_MISTAKES),
    "reparameterize_with": (checks.check_reparameterize, solutions.reparameterize_with, REPARAMETERIZE_OTHERS,
                            REPARAMETERIZE_MISTAKES),
    "gaussian_kl": (checks.check_gaussian_kl, solutions.gaussian_kl, KL_OTHERS, KL_MISTAKES),
    "training_step": (checks.check_training_step, solutions.training_step, STEP_OTHERS, STEP_MISTAKES),
    "decode_prior_samples": (checks.check_prior_samples, solutions.decode_prior_samples, PRIOR_OTHERS, PRIOR_MISTAKES),
    "MyVAE": (checks.check_my_vae, solutions.MyVAE, MODEL_OTHERS, MODEL_MISTAKES),
    "negative_elbo": (checks.check_negative_elbo, solutions.negative_elbo, LOSS_OTHERS, LOSS_MISTAKES),
    "train_my_vae": (checks.check_epoch_loop, solutions.train_my_vae, LOOP_OTHERS, LOOP_MISTAKES),
    "linear_interpolation": (checks.check_linear_interpolation, solutions.linear_interpolation,
                             INTERPOLATION_OTHERS, INTERPOLATION_MISTAKES),
    "iwae_from_log_weights": (checks.check_iwae_from_log_weights, solutions.iwae_from_log_weights, IWAE_OTHERS,
                              IWAE_MISTAKES),
    "count_active_units": (checks.check_active_units, solutions.count_active_units, UNITS_OTHERS, UNITS_MISTAKES),
    "write_as_every_digit": (checks.check_style_transfer, solutions.write_as_every_digit, STYLE_OTHERS,
                             STYLE_MISTAKES),
    "output_size": (checks.check_output_size, solutions.output_size, SIZE_OTHERS, SIZE_MISTAKES),
    "vamp_log_density": (checks.check_vamp_log_density, solutions.vamp_log_density, VAMP_OTHERS, VAMP_MISTAKES),
    "kl_between_gaussians": (checks.check_kl_between_gaussians, solutions.kl_between_gaussians, PAIR_OTHERS,
                             PAIR_MISTAKES),
    "quantize": (checks.check_quantize, solutions.quantize, QUANTIZE_OTHERS, QUANTIZE_MISTAKES),
}
MISTAKES = [(exercise, name) for exercise, (*_, mistakes) in EXERCISES.items() for name in mistakes]
OTHERS = [(exercise, i) for exercise, (_, _, others, _) in EXERCISES.items() for i in range(len(others))]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_solution_written_as_the_student_writes_it_passes(exercise, capsys):
    check, solution, *_ = EXERCISES[exercise]
    passed, out = run(check, as_student_code(solution), capsys)
    assert passed is True and out.startswith("✅"), out


@pytest.mark.parametrize("exercise, index", OTHERS, ids=[f"{e}-{i}" for e, i in OTHERS])
def test_a_correct_answer_written_another_way_passes(exercise, index, capsys):
    check, _, others, _ = EXERCISES[exercise]
    passed, out = run(check, others[index], capsys)
    assert passed is True and out.startswith("✅"), out


@pytest.mark.parametrize("exercise, mistake", MISTAKES, ids=[f"{e}-{m}" for e, m in MISTAKES])
def test_each_likely_mistake_fails_with_a_hint_that_names_it(exercise, mistake, capsys):
    check, _, _, mistakes = EXERCISES[exercise]
    answer, words = mistakes[mistake]
    passed, out = run(check, answer, capsys)
    assert passed is False and out.startswith("❌ Not yet: ") and words in out, out


def test_every_exercise_names_at_least_five_likely_mistakes():
    named = {exercise: len([words for _, words in mistakes.values() if not words.startswith("write it yourself")])
             for exercise, (*_, mistakes) in EXERCISES.items()}
    assert min(named.values()) >= 5, named


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_untouched_stub_is_not_attempted(exercise, capsys):
    check = EXERCISES[exercise][0]
    passed, out = run(check, StubVAE if exercise == "MyVAE" else stub, capsys)
    assert passed is False and out == f"✏️  Exercise not attempted yet: {checks.STUB}\n"


# ---- the guard ----


@pytest.mark.parametrize("exercise", EXERCISES)
def test_importing_the_reference_solution_is_refused(exercise, capsys):
    """`from vae_lab.lessons.solutions import gaussian_kl`, then `check_gaussian_kl(gaussian_kl)`, and the same through
    a wrapper: "write it yourself"."""
    check, solution, *_ = EXERCISES[exercise]
    for answer in (solution, as_wrapper(solution)):
        passed, out = run(check, answer, capsys)
        assert passed is False and out.startswith("❌ Not yet: write it yourself: ") and \
            f"the reference solution vae_lab.lessons.solutions.{solution.__name__}" in out, out


def as_wrapper(solution):
    if inspect.isclass(solution):
        return type("Wrapper", (solution,), {})
    return lambda *args: solution(*args)


def test_an_import_inside_the_answer_is_refused(capsys):
    def gaussian_kl(mu, logvar):
        from vae_lab.lessons.solutions import gaussian_kl as reference
        return reference(mu, logvar)

    passed, out = run(checks.check_gaussian_kl, gaussian_kl, capsys)
    assert not passed and "write it yourself: you called the reference solution" in out


@pytest.mark.parametrize("check, function, name", [
    (checks.check_gap_to_prior, fitted_gaussian_kl, "vae_lab.lessons.autoencoder.fitted_gaussian_kl"),
    (checks.check_encode, Encoder.forward, "vae_lab.model.Encoder.forward"),
    (checks.check_gaussian_kl, kl_divergence, "vae_lab.kl_divergence"),
    (checks.check_prior_samples, VAE.sample, "vae_lab.model.VAE.sample"),
    (checks.check_linear_interpolation, interpolate, "vae_lab.latent.interpolate"),
], ids=lambda v: getattr(v, "__name__", None))
def test_an_answer_that_is_the_labs_function_is_refused(check, function, name, capsys):
    passed, out = run(check, function, capsys)
    assert not passed and f"write it yourself: your answer is {name};" in out


@pytest.mark.parametrize("answer, name", [
    (lambda c: kl_divergence(c.mean(0)[None], c.var(0).log()[None])[0], "vae_lab.kl_divergence"),
    (lambda c: kl_per_dimension(c.mean(0)[None], c.var(0).log()[None]).sum(), "vae_lab.latent.kl_per_dimension"),
    (lambda c: vae_lab.lessons.autoencoder.fitted_gaussian_kl(c), "fitted_gaussian_kl"),
], ids=["kl_divergence", "kl_per_dimension", "attribute chain"])
def test_a_call_of_the_labs_function_is_refused_however_it_is_reached(answer, name, capsys):
    passed, out = run(checks.check_gap_to_prior, answer, capsys)
    assert not passed and "write it yourself: you called" in out and name in out


def test_a_refusal_the_answer_swallows_still_fails(capsys):
    def gaussian_kl(mu, logvar):
        try:
            return kl_divergence(mu, logvar)
        except Exception:
            return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)

    passed, out = run(checks.check_gaussian_kl, gaussian_kl, capsys)
    assert not passed and "write it yourself: you called vae_lab.kl_divergence" in out


def test_an_answer_that_switches_the_guard_off_is_refused(capsys):
    def gaussian_kl(mu, logvar):
        sys.setprofile(None)
        return kl_divergence(mu, logvar)

    passed, out = run(checks.check_gaussian_kl, gaussian_kl, capsys)
    assert not passed and "write it yourself: your code switched off the profile function" in out


def namespaces():
    """Every binding of the lab's modules and classes, by identity."""
    modules = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "vae_lab"}
    bound = {}
    for name, module in modules.items():
        for key, value in list(vars(module).items()):
            bound[(name, key)] = id(value)
            if isinstance(value, type) and value.__module__.startswith("vae_lab"):
                bound.update({(name, key, attribute): id(member) for attribute, member in vars(value).items()})
    return bound


def test_a_check_rebinds_nothing_and_puts_back_the_profiler(capsys):
    before, profiler = namespaces(), sys.getprofile()
    for exercise, (check, solution, _, mistakes) in EXERCISES.items():
        check(solution)
        check(next(answer for name, (answer, _) in mistakes.items() if name.startswith("lab's")) if
              any(name.startswith("lab's") for name in mistakes) else stub)
    capsys.readouterr()
    assert sys.getprofile() is profiler
    after = namespaces()
    assert {key: value for key, value in after.items() if key in before and before[key] != value} == {}


def test_after_a_refused_attempt_every_lab_function_works_in_a_fresh_kernel():
    """The lazy `vae_lab.kl_divergence` is first loaded while a refused answer runs: it is the lab's function after."""
    program = textwrap.dedent("""
        import torch, vae_lab
        from vae_lab.lessons import checks
        assert "kl_divergence" not in vars(vae_lab)
        assert not checks.check_gap_to_prior(lambda c: vae_lab.kl_divergence(c.mean(0)[None], c.var(0).log()[None])[0])
        from vae_lab.loss import kl_divergence
        assert vae_lab.kl_divergence is kl_divergence
        assert torch.equal(vae_lab.kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
        assert checks.check_gaussian_kl(lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(1))
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith("❌ Not yet: write it yourself: you called vae_lab.kl_divergence")


def test_the_lab_may_call_a_refused_function_for_the_student():
    """The loop check's loss calls vae_loss, which the loss check refuses: the lab's own call is not the student's."""
    recorder = checks.LoopRecorder(checks.ProbeVAE())
    guard = checks.Guard([vae_loss], "")
    with guard:
        assert recorder.loss(torch.rand(2, 784), torch.zeros(2, 784), torch.zeros(2, 3), torch.zeros(2, 3)) > 0
        with pytest.raises(checks.WriteItYourself):
            vae_loss(torch.rand(2, 784), torch.zeros(2, 784), torch.zeros(2, 3), torch.zeros(2, 3))
    assert guard.refusal.startswith("write it yourself: you called vae_lab.vae_loss")


def test_checks_leave_the_global_random_state_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for check, solution, *_ in EXERCISES.values():
        check(as_student_code(solution))
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


# ---- an exception in the student's code: one line ----


@pytest.mark.parametrize("check, answer, words", [
    (checks.check_reparameterize, in_place_noise,
     ["RuntimeError at line 3 of in_place_noise (`z += torch.exp(0.5 * logvar) * eps`)", "in-place operation"]),
    (checks.check_prior_samples, hard_coded_latent_size,
     ["ValueError at line 3 of hard_coded_latent_size", "a size written as a number? 20 is the lab's 20 latent "
      "dimensions, but this check's model has 4 latent dimensions"]),
    (checks.check_linear_interpolation, missing_column,
     ["RuntimeError at line 3 of missing_column (`return (1 - t) * z0 + t * z1`)", "make t a column",
      "t[:, None]"]),
], ids=["in-place reparameterization", "hard-coded latent size", "missing column index"])
def test_an_exception_in_the_students_code_is_one_line_saying_where_and_why(check, answer, words, capsys):
    passed, out = run(check, answer, capsys)
    assert passed is False and out.startswith("❌ Not yet: your code raised ")
    assert all(word in out for word in words), out


def test_a_bug_in_the_checks_own_code_is_not_hidden():
    """Only the student's mistakes become one line: an error in the lab's own code (here a body that takes no answer)
    still raises."""
    with pytest.raises(TypeError, match="positional argument"):
        checks.exercise(advice="")(checks.probe_images)(lambda: 1)


# ---- no hint prints the solution ----


def statements(function):
    """The statements of a reference solution's body (without `return`), as written: the code a hint must not show."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    nodes = [node for node in ast.walk(tree) if isinstance(node, ast.stmt) and node is not tree
             and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    texts = [ast.unparse(node.value if isinstance(node, ast.Return) and node.value else node) for node in nodes]
    return [text for text in texts if len(text) > 24]


def teaching_text():
    """What the student edition shows anyway: its prose and stubs (a hint may repeat a line the task itself gives)."""
    return "\n".join("".join(cell["source"]) for path in sorted(STUDENT_DIR.glob("*.ipynb"))
                     for cell in json.loads(path.read_text())["cells"])


def test_no_hint_shows_a_line_of_a_reference_solution(capsys):
    shown = teaching_text()
    for check, _, others, mistakes in EXERCISES.values():
        for answer, _ in mistakes.values():
            check(answer)
        check(stub)
    printed = re.sub(r"\(`[^`]*`\)", "", capsys.readouterr().out)  # an error's line quotes the student's own code
    assert printed.count("❌") >= sum(len(mistakes) for *_, mistakes in EXERCISES.values())
    leaked = {(name, line) for name, (_, solution, _, _) in EXERCISES.items() for line in statements(solution)
              if line in printed and line not in shown}
    assert leaked == set()
    assert all(statements(solution) or inspect.isclass(solution) for _, solution, *_ in EXERCISES.values())


# ---- 06: the training check names the piece that has not passed ----


@pytest.fixture(scope="module")
def trained(small):
    """The reference pieces trained as notebook 06 trains them, one epoch on 1,000 images."""
    config = Config(epochs=1, train_size=1000)
    torch.manual_seed(config.seed + 1)
    model = ReferenceVAE()
    losses = as_student_code(solutions.train_my_vae)(model, as_student_code(solutions.negative_elbo),
                                                     small.train_images, small.test_images, config.epochs, config.seed)
    return capstone.StudentVAE(model), History(train_loss=losses[0], test_loss=losses[1]), config


PIECES = (ReferenceVAE, as_student_code(solutions.negative_elbo), as_student_code(solutions.train_my_vae))


def test_the_trained_reference_lands_near_fit(trained, small, capsys):
    vae, history, config = trained
    assert checks.check_training(vae, history, config, small, *PIECES) is True
    out = capsys.readouterr().out
    assert out.startswith("✅ your VAE's test loss, ") and f"{history.test_loss[-1]:.1f} nats per image" in out


def test_a_failing_piece_is_named_not_called_unattempted(trained, small, capsys):
    vae, history, config = trained
    shipped = vae_lab.load_pretrained("vae")
    kl_per_batch = LOSS_MISTAKES["KL per batch"][0]
    assert not checks.check_training(shipped.model, shipped.history, config, small, PIECES[0], kl_per_batch, PIECES[2])
    out = capsys.readouterr().out
    assert out.startswith("❌ Not yet: your negative_elbo has not passed yet, so the training cell used the lab's VAE")
    assert not checks.check_training(shipped.model, shipped.history, config, small, StubVAE, kl_per_batch, stub)
    out = capsys.readouterr().out
    assert "not attempted" not in out and ("your MyVAE is not written yet, your negative_elbo has not passed yet and "
                                           "your train_my_vae is not written yet") in out


def test_the_training_check_is_not_attempted_when_no_piece_is(small, capsys):
    shipped = vae_lab.load_pretrained("vae")
    assert not checks.check_training(shipped.model, shipped.history, Config(), small, StubVAE, stub, stub)
    assert capsys.readouterr().out.startswith("✏️  Exercise not attempted yet: write MyVAE, negative_elbo and "
                                              "train_my_vae above")


def test_the_training_check_names_a_wrong_test_loss_and_a_model_far_from_fit(trained, small, capsys):
    vae, history, config = trained
    summed = History(train_loss=history.train_loss, test_loss=[1000 * history.test_loss[-1]])
    assert not checks.check_training(vae, summed, config, small, *PIECES)
    assert "average the loss over all test images" in capsys.readouterr().out
    untrained = capstone.StudentVAE(ReferenceVAE())
    truthful = History(train_loss=[543.0], test_loss=[untrained.test_loss(small.test_images)])
    assert not checks.check_training(untrained, truthful, config, small, *PIECES)
    assert "fit's" in capsys.readouterr().out
    shipped = vae_lab.load_pretrained("vae")
    assert not checks.check_training(shipped.model, shipped.history, config, small, *PIECES)
    assert "the model above is the lab's" in capsys.readouterr().out


def test_in_a_notebook_kernel_cells_are_the_students_code_and_shortcuts_are_refused(run_cells):
    """What nbval cannot see, since the notebooks hold correct answers: in a real kernel, a cell's function counts as
    the student's code, the solution imported into a cell is refused, a cell that calls the lab is refused, a mistake
    is one line, and the lab's function works afterwards."""
    cells = ["from vae_lab.lessons import checks\nimport torch, vae_lab",
             "from vae_lab.lessons.solutions import gaussian_kl\nchecks.check_gaussian_kl(gaussian_kl)",
             "def gaussian_kl(mu, logvar):\n    return vae_lab.kl_divergence(mu, logvar)\n\n"
             "checks.check_gaussian_kl(gaussian_kl)",
             "def gaussian_kl(mu, logvar):\n    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)\n    return kl.sum(1)\n\n"
             "checks.check_gaussian_kl(gaussian_kl)",
             "def reparameterize_with(mu, logvar, eps):\n    z = mu\n    z += torch.exp(0.5 * logvar) * eps\n"
             "    return z\n\nchecks.check_reparameterize(reparameterize_with)",
             "print(vae_lab.kl_divergence(torch.ones(1, 2), torch.zeros(1, 2)))"]
    printed = ["".join(output.get("text", "") for output in cell.outputs) for cell in run_cells(cells)]
    assert printed[1].startswith("❌ Not yet: write it yourself: your answer is the reference solution "
                                 "vae_lab.lessons.solutions.gaussian_kl"), printed[1]
    assert printed[2].startswith("❌ Not yet: write it yourself: you called vae_lab.kl_divergence"), printed[2]
    assert printed[3].startswith("✅"), printed[3]
    assert printed[4].startswith("❌ Not yet: your code raised RuntimeError at line 3 of reparameterize_with "
                                 "(`z += torch.exp(0.5 * logvar) * eps`)") and printed[4].count("\n") == 1, printed[4]
    assert printed[5] == "tensor([1.])\n"
