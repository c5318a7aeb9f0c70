"""Every exercise's check, notebooks 00–14, and the one way to write one.

A check takes the student's answer (a function, or notebook 06's class), prints one line, and returns True only for ✅:

- ✅ what the answer got right;
- ❌ a hint that names the mistake in the student's words and never shows the reference code;
- ✏️ not attempted: the answer still raises the stub's `NotImplementedError`.

How to write a new check (notebook NN, exercise ``thing``), in a section of its own at the end of this module:

    @exercise(lab_function, advice="compute … yourself with torch", sizes="this check's model has 4 latent dimensions")
    def check_thing(answer: Callable[[torch.Tensor], torch.Tensor]) -> str:
        '''Compare ``answer(x)`` with `lab_function` on …'''
        x = torch.randn(6, 4, generator=seeded(12))                 # small inputs, seeded, never the global RNG
        expected = lab_function(x)
        result = expect_tensor(answer(x.clone()), (6,), "one value per image")
        known_slip(result, [(-expected, "sign: …"), (2 * expected, "twice too large: forgot the ½?")])
        if not close(result, expected):
            raise Mistake("the values differ from …: the general hint, in words, no solution code")
        return "your thing matches the lab's …"                    # the ✅ sentence

- The body calls ``answer`` as often as it likes, raises `Mistake` for ❌ and returns the ✅ sentence. Helpers:
  `expect_tensor` (type and shape, with a hint per wrong shape), `number` (a Python number or a one-element tensor),
  `known_slip` (names a mistake by the value it gives: list the five mistakes students most likely make, and more),
  `close` (float64, the one `TOLERANCE`), `seeded` (a fresh generator).
- `exercise` does the rest, the same for every check. While the body runs, `Guard` refuses, with "write it yourself"
  and ``advice``, an answer that is or calls one of the lab functions named (or anything in `lessons.solutions`);
  it watches calls, so nothing in the lab is swapped out. An exception in the student's code becomes one ❌ line:
  what failed, where in their function and the likely cause (``sizes`` lets it name a hard-coded size, ``causes``
  adds message patterns of the check's own). A function that returns None gets ❌ "returns nothing". The caller's
  random state is kept. ``check.verdict(answer)`` gives the `Verdict` without printing it; a check whose input is
  not one answer (06's trained model) builds its `Verdict` with `judge` and prints it with `report`.
- In the notebook the check cell is ``passed = checks.check_thing(thing)``, then the hidden ``assert passed, …``.
  Its tests go in tests/lessons/test_checks.py: the reference solution passes (compiled as student code with
  `as_student_code`), answers written other ways pass, each likely mistake gets its hint, the stub is ✏️, the lab's
  function is refused.
"""
from __future__ import annotations

import functools
import inspect
import linecache
import math
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType, TracebackType
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .. import PUBLIC
from ..config import Config, LabError
from ..data import MNIST
from ..evaluate import importance_bounds
from ..history import History
from ..latent import decode_every_digit, interpolate, kl_per_dimension, style_transfer
from ..loss import (gaussian_kl, gaussian_kl_per_unit, kl_divergence, log_normal, log_prior, reconstruction_loss,
                   vae_loss)
from ..model import VAE, Decoder, Encoder, VectorQuantizer, quantize, reparameterize, sample_digits
from ..prior import GaussianMixturePrior, log_mixture_density
from ..train import evaluate_loss, fit, iwae_loss, train_epoch, training_loss
from . import capstone
from .autoencoder import fitted_gaussian_kl
from .beta_vae import active_units
from .setup import LessonError

TOLERANCE = 1e-4  # relative and absolute, in float64: float32 rounding passes, every named slip lies far outside


# ---- the verdict ----


class Mistake(Exception):
    """A named slip: the check stops and prints ❌ with this hint."""


class WriteItYourself(LessonError):
    """The answer is, or called, the lab's own code for the step the exercise asks the student to write."""


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: ``mark`` is ✅, ❌ or ✏️, ``text`` the sentence printed after it."""

    mark: str
    text: str

    @property
    def passed(self) -> bool:
        return self.mark == PASSED

    @property
    def attempted(self) -> bool:
        return self.mark != NOT_ATTEMPTED

    def __str__(self) -> str:
        return {PASSED: f"✅ {self.text}", MISTAKE: f"❌ Not yet: {self.text}",
                NOT_ATTEMPTED: f"✏️  Exercise not attempted yet: {self.text}"}[self.mark]


PASSED, MISTAKE, NOT_ATTEMPTED = "✅", "❌", "✏️"
STUB = "replace the `raise NotImplementedError` with your code, then rerun."


def close(answer: Any, expected: Any) -> bool:
    """True when ``answer`` has the shape of ``expected`` and the same values, compared in float64 within `TOLERANCE`
    (numbers and 0-d tensors compare as numbers)."""
    try:
        a, b = (torch.as_tensor(v.detach() if isinstance(v, torch.Tensor) else v, dtype=torch.float64)
                for v in (answer, expected))
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE))


def known_slip(result: Any, slips: Iterable[tuple[Any, str]]) -> None:
    """Raise `Mistake` with the hint of the first slip whose value ``result`` is `close` to."""
    for value, hint in slips:
        if close(result, value):
            raise Mistake(hint)


def expect_tensor(result: Any, shape: tuple[int, ...], what: str, fixes: dict[tuple[int, ...], str] | None = None
                  ) -> torch.Tensor:
    """``result`` if it is a tensor of ``shape``; else `Mistake` naming what came back (``fixes`` adds a hint per shape)."""
    if not isinstance(result, torch.Tensor):
        raise Mistake(f"return {what} as one torch.Tensor, got {type(result).__name__}")
    if tuple(result.shape) != shape:
        got = tuple(result.shape)
        extra = (fixes or {}).get(got, "")
        raise Mistake(f"expected {what}, shape {shape}, got {got}" + (f": {extra}" if extra else ""))
    return result


# ---- where code comes from: the student's, the lab's, or a library's ----


LAB_DIR = os.path.realpath(Path(__file__).resolve().parents[1])
SOLUTIONS_FILE = Path(__file__).with_name("solutions.py")
SOLUTIONS_FILES = {str(SOLUTIONS_FILE), os.path.realpath(SOLUTIONS_FILE)}  # as imported, and with links resolved
SOLUTIONS_MODULE = f"{__package__}.solutions"
STANDARD_LIBRARY = tuple(sorted({os.path.realpath(sysconfig.get_paths()[name]) + os.sep
                                 for name in ("stdlib", "platstdlib")}))
PACKAGE_DIRS = re.compile(r"[/\\](site|dist)-packages[/\\]")  # pip's and Debian's (Colab's) installed packages


@functools.lru_cache(maxsize=4096)
def origin(filename: str) -> str:
    """'lab' for vae_lab's files; 'library' for Python's own and installed packages' (torch, IPython); else 'student':
    a notebook cell, a script or a test."""
    if filename.startswith("<frozen"):
        return "library"
    path = os.path.realpath(filename)
    if path.startswith(LAB_DIR + os.sep):
        return "lab"
    return "library" if path.startswith(STANDARD_LIBRARY) or PACKAGE_DIRS.search(path) else "student"


def called_by_student(frame: FrameType | None) -> bool:
    """True when the nearest caller outside the libraries, from ``frame`` outwards, is the student's code."""
    while frame is not None:
        kind = origin(frame.f_code.co_filename)
        if kind != "library":
            return kind == "student"
        frame = frame.f_back
    return False


# ---- the guard: the lab's own code for the exercise is refused, nothing rebound ----


TORCH_NAMES = {nn.Linear.forward: "a layer itself, such as encoder.hidden(x) (nn.Linear's forward)",
               F.linear: "F.linear"}


def lab_name(function: Any) -> str:
    """How the student reached ``function``: 'vae_lab.kl_divergence', 'vae_lab.model.VAE.sample', 'F.linear'."""
    function = inspect.unwrap(function)
    if function in TORCH_NAMES:
        return TORCH_NAMES[function]
    module, name = getattr(function, "__module__", "") or "", getattr(function, "__qualname__", repr(function))
    if module == f"vae_lab.{PUBLIC.get(name, '')}":
        return f"vae_lab.{name}"
    return f"{module}.{name}"


def refused_codes(refused: Sequence[Any]) -> tuple[dict[CodeType, str], dict[int, str]]:
    """The code objects of the refused Python functions (every function of a refused class) and the ids of the
    refused built-ins (such as F.linear), each with the name a refusal gives."""
    codes, builtins = {}, {}
    for item in refused:
        members = [member for member in vars(item).values() if callable(member)] if inspect.isclass(item) else [item]
        for member in members:
            code = getattr(inspect.unwrap(member), "__code__", None)
            if code is not None:
                codes[code] = lab_name(item if inspect.isclass(item) else member)
            else:
                builtins[id(member)] = lab_name(member)
    return codes, builtins


class Guard:
    """While active, a call from the student's code into a refused function (or into `lessons.solutions`) raises
    `WriteItYourself` and is remembered, so that swallowing the error does not help.

    It watches calls with a profile function (`sys.setprofile`, this thread only, the previous one put back): no
    module, class or global is rebound, so the lab works the same during and after a check. A refused function the
    lab calls on the student's behalf (the loop check's loss, say) is not the student's call and runs.
    """

    def __init__(self, refused: Sequence[Any], advice: str) -> None:
        self.codes, self.builtins = refused_codes(refused)
        self.advice = advice
        self.refusal: str | None = None

    def message(self, name: str, called: bool = True) -> str:
        return f"write it yourself: {'you called' if called else 'your answer is'} {name}; {self.advice}"

    def watch(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            name = self.codes.get(code) or (f"the reference solution {SOLUTIONS_MODULE}.{code.co_name}"
                                            if code.co_filename in SOLUTIONS_FILES else None)
            caller = frame.f_back
        elif event == "c_call":
            name, caller = self.builtins.get(id(arg)), frame
        else:
            return
        if name is not None and called_by_student(caller):
            self.refusal = self.refusal or self.message(name)
            raise WriteItYourself(self.refusal)

    def __enter__(self) -> Guard:
        self.previous = sys.getprofile()
        sys.setprofile(self.watch)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.refusal is None and sys.getprofile() != self.watch:  # only a refusal itself unsets it
            self.refusal = (f"write it yourself: your code switched off the profile function through which the check "
                            f"sees its calls; {self.advice}")
        sys.setprofile(self.previous)


def refused_answer(answer: Any, refused: Sequence[Any]) -> str | None:
    """The name of the lab function ``answer`` is (through partials, bound methods and decorators), if it is refused
    or comes from `lessons.solutions`; else None."""
    target = answer
    while isinstance(target, functools.partial) or inspect.ismethod(target):
        target = target.func if isinstance(target, functools.partial) else target.__func__
    target = inspect.unwrap(target) if callable(target) else target
    unwrapped = [inspect.unwrap(item) for item in refused]
    for item in inspect.getmro(target) if inspect.isclass(target) else [target]:  # a class, and what it inherits
        if getattr(item, "__module__", None) == SOLUTIONS_MODULE:
            return f"the reference solution {SOLUTIONS_MODULE}.{getattr(item, '__qualname__', '')}"
        if any(item is refused_item for refused_item in unwrapped):
            return lab_name(item)
    return None


# ---- an exception in the student's code, in one line ----


IN_PLACE = re.compile(r"in-place operation|inplace", re.I)
SHAPES = re.compile(r"shapes cannot be multiplied|must match the size of tensor|size mismatch|is invalid for input of "
                    r"size|expects latents of shape|do not match|Expected size|Dimension out of range|"
                    r"index \d+ is out of bounds", re.I)
DTYPES = re.compile(r"dtype|scalar type", re.I)
LAB_SIZES = {20: "the lab's 20 latent dimensions", 400: "the lab's 400 hidden units", 128: "the lab's batches of 128"}


def likely_cause(error: BaseException, sizes: str) -> str:
    """The usual reason for ``error`` in an exercise: an in-place change autograd needs undone, shapes that do not fit
    (a size written as a number, such as the lab's 20, where this check uses another), a dtype or a name."""
    text = str(error)
    if IN_PLACE.search(text):
        return ("an in-place operation (+=, *=, x[...] = ...) changed a tensor that autograd still needs, such as an "
                "input that requires its gradient: build a new tensor (z = mu + ...) instead of changing one in place")
    if "backward through the graph a second time" in text:
        return "backward() ran twice on one forward pass: compute the loss afresh for every backward()"
    if SHAPES.search(text):
        mentioned, own = set(re.findall(r"\d+", text)), set(re.findall(r"\d+", sizes))
        coded = [number for number in LAB_SIZES if str(number) in mentioned and str(number) not in own]
        if coded:
            return (f"a size written as a number? {coded[0]} is {LAB_SIZES[coded[0]]}, but {sizes}: take every size "
                    "from the inputs (their .shape, or model.config)")
        return f"the shapes do not fit together ({sizes})" if sizes else "the shapes do not fit together"
    if isinstance(error, NameError):
        return "run the cell that defines or imports that name first, or import it in your cell"
    if isinstance(error, TypeError) and "positional argument" in text:
        return "the check calls your function with the arguments of the stub's signature: keep them as given"
    if DTYPES.search(text):
        return "two tensors of different dtypes meet: keep the computation in the inputs' dtype (float32)"
    return ""


def one_line(error: BaseException, sizes: str, causes: dict[str, str]) -> str:
    """An exception in the student's code as one hint: what failed, where, and the likely cause."""
    frames = student_places(error.__traceback__)
    message = (str(error).strip().splitlines() or [""])[0]
    message = message if len(message) <= 240 else message[:237] + "..."
    cause = next((hint for pattern, hint in causes.items() if re.search(pattern, str(error))), "") \
        or likely_cause(error, sizes)
    place = f" at {frames[-1]}" if frames else ""
    return f"your code raised {type(error).__name__}{place}: {message}" + (f"; {cause}" if cause else "")


def student_places(tb: TracebackType | None) -> list[str]:
    """Where each frame of ``tb`` that runs the student's code is, outermost first."""
    places = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if origin(code.co_filename) == "student":
            source = linecache.getline(code.co_filename, tb.tb_lineno, tb.tb_frame.f_globals).strip()
            name = getattr(code, "co_qualname", code.co_name)
            places.append(f"line {tb.tb_lineno - code.co_firstlineno + 1} of {name}"
                          + (f" (`{source}`)" if source else ""))
        tb = tb.tb_next
    return places


def raised_by_stub(error: BaseException) -> bool:
    """True for the stub's own `raise NotImplementedError`: raised in the student's code itself."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return isinstance(error, NotImplementedError) and tb is not None and origin(tb.tb_frame.f_code.co_filename) == "student"


# ---- the decorator every check is made with ----


def returning(answer: Callable[..., Any]) -> Callable[..., Any]:
    """``answer`` as a check calls it: a result of None (a function with no `return`) is a `Mistake`."""
    name = getattr(answer, "__name__", "function")

    def called(*args: Any, **kwargs: Any) -> Any:
        result = answer(*args, **kwargs)
        if result is None or result is Ellipsis:
            raise Mistake(f"your {name} returns nothing: end it with `return` and the value the exercise asks for")
        return result
    return called


def judge(run: Callable[[], str], guard: Guard, sizes: str = "", causes: dict[str, str] | None = None) -> Verdict:
    """The verdict on ``run``, a check's body applied to the answer, with ``guard`` watching and the random state kept:
    its ✅ sentence, its `Mistake`, a refusal, the stub, or an exception in the student's code as one line."""
    try:
        with torch.random.fork_rng(devices=[]), guard:
            outcome = Verdict(PASSED, run())
    except (Mistake, WriteItYourself) as mistake:
        outcome = Verdict(MISTAKE, str(mistake))
    except Exception as error:
        if raised_by_stub(error):
            outcome = Verdict(NOT_ATTEMPTED, STUB)
        elif student_places(error.__traceback__) or isinstance(error, LabError):
            outcome = Verdict(MISTAKE, one_line(error, sizes, causes or {}))
        else:
            raise
    return Verdict(MISTAKE, guard.refusal) if guard.refusal else outcome


def report(verdict: Verdict) -> bool:
    """Print ``verdict`` as its one line; True only for ✅."""
    print(verdict)
    return verdict.passed


def exercise(*refused: Any, advice: str, sizes: str = "", causes: dict[str, str] | None = None
             ) -> Callable[[Callable[[Any], str]], Callable[[Any], bool]]:
    """Make ``body`` a check: it prints the verdict and returns True only for ✅. ``refused`` (and `lessons.solutions`)
    get "write it yourself: …; ``advice``"; ``sizes`` names the check's sizes and ``causes`` maps an error message
    pattern to its likely cause, for an exception in the student's code. ``check.verdict(answer)`` gives the `Verdict`
    without printing it."""
    def decorate(body: Callable[[Any], str]) -> Callable[[Any], bool]:
        def verdict(answer: Any) -> Verdict:
            guard = Guard(refused, advice)
            if not callable(answer):
                return Verdict(MISTAKE, f"pass your function (or class) itself, got {type(answer).__name__}")
            name = refused_answer(answer, refused)
            if name is not None:
                return Verdict(MISTAKE, guard.message(name, called=False))
            given = answer if inspect.isclass(answer) else returning(answer)
            return judge(lambda: body(given), guard, sizes, causes)

        @functools.wraps(body)
        def check(answer: Any) -> bool:
            return report(verdict(answer))

        check.verdict = verdict  # type: ignore[attr-defined]
        return check
    return decorate


def seeded(seed: int) -> torch.Generator:
    """A fresh generator with ``seed``: a check's inputs never depend on the global random state."""
    return torch.Generator().manual_seed(seed)


def number(result: Any, what: str) -> float:
    """``result`` as a float: a Python number or a one-element tensor; else `Mistake` saying what to return."""
    if isinstance(result, bool) or not isinstance(result, (int, float, torch.Tensor)) or (
            isinstance(result, torch.Tensor) and result.numel() != 1):
        shape = f" of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else ""
        raise Mistake(f"return {what}, got {type(result).__name__}{shape}")
    return float(result)


# ---- 00_from_autoencoder_to_vae ----


def known_codes() -> torch.Tensor:
    """1,000 codes in 6 dimensions whose means and (unbiased) variances are exactly (0, 2, −1, 0.5, 3, 0) and
    (1, 4, 0.25, 9, 1, 0.5)."""
    means = torch.tensor([0.0, 2.0, -1.0, 0.5, 3.0, 0.0], dtype=torch.float64)
    variances = torch.tensor([1.0, 4.0, 0.25, 9.0, 1.0, 0.5], dtype=torch.float64)
    noise = torch.randn(1000, 6, generator=seeded(12), dtype=torch.float64)
    return ((noise - noise.mean(dim=0)) / noise.std(dim=0) * variances.sqrt() + means).float()


def half_sum(mean_term: Any, variance: torch.Tensor, log_term: Any) -> float:
    """½ Σ_j (mean_term_j + variance_j − 1 − log_term_j): the fitted Gaussian's KL to N(0, I), or a slip of it."""
    return 0.5 * float((mean_term + variance - 1 - log_term).sum())


def code_moments(codes: torch.Tensor, unbiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each dimension's mean and variance (over N − 1, or N) of ``codes``, in float64."""
    return codes.double().mean(dim=0), codes.double().var(dim=0, unbiased=unbiased)


def gap_slips(codes: torch.Tensor, unbiased: bool) -> list[tuple[float, str]]:
    """The value each likely slip gives on ``codes``, with the variance over N − 1 (or N), and the hint naming it."""
    m, s2 = code_moments(codes, unbiased)
    exact = half_sum(m ** 2, s2, s2.log())
    return [
        (-exact, "sign: a KL is never negative; it is ½ Σ (m² + s² − 1 − log s²)"),
        (2 * exact, "twice too large: forgot the ½ in front of the sum?"),
        (exact / len(m), "you averaged over the dimensions; the KL of independent dimensions is their sum"),
        (half_sum(0, s2, s2.log()), "the codes' means are missing: a cloud centred away from 0 is far from N(0, I) "
                                    "too, add m_j²"),
        (half_sum(m, s2, s2.log()), "the mean enters squared: m_j², not m_j (a negative mean costs as much as a "
                                    "positive one)"),
        (half_sum(m ** 2, s2.sqrt(), s2.sqrt().log()), "you used the standard deviation s where the formula has the "
                                                       "variance s²"),
        (half_sum(m ** 2, s2, s2.sqrt().log()), "the log term is log s², the log of the variance, not log s"),
        (half_sum(m ** 2, s2, 0), "forgot the − log s² term"),
        (exact + len(m) / 2, "forgot the − 1 inside the sum: ½ Σ (m² + s² − 1 − log s²)"),
    ]


@exercise(kl_divergence, kl_per_dimension, fitted_gaussian_kl,
          advice="compute each dimension's mean m and variance s² over the codes (dim=0), then ½ Σ (m² + s² − 1 − log s²) "
                 "with torch",
          sizes="this check's codes are 1,000 rows of 6 dimensions")
def check_gap_to_prior(answer: Callable[[torch.Tensor], torch.Tensor | float]) -> str:
    """Compare ``answer(codes)`` with `fitted_gaussian_kl` on 1,000 codes with known means and variances (the variance
    over N or over N − 1 both pass)."""
    codes = known_codes()
    result = answer(codes.clone())
    if isinstance(result, torch.Tensor) and result.numel() == codes.shape[1]:
        raise Mistake("that is one number per dimension; add them up: the KL of independent dimensions is their sum")
    if isinstance(result, torch.Tensor) and result.numel() == len(codes):
        raise Mistake("that is one number per code; take each dimension's mean and variance across the codes, dim=0, "
                      "not across dimensions")
    value = number(result, "one number (a float or a 0-d tensor)")
    expected = fitted_gaussian_kl(codes)
    m, biased_variance = code_moments(codes, unbiased=False)
    if not (close(value, expected) or close(value, half_sum(m ** 2, biased_variance, biased_variance.log()))):
        known_slip(value, gap_slips(codes, unbiased=True) + gap_slips(codes, unbiased=False))
        raise Mistake(f"expected {expected:.3f} nats for these codes, got {value:.3f}: take m and s² per dimension "
                      "(dim=0), then ½ Σ (m² + s² − 1 − log s²)")
    return f"your gap matches the lab's: {expected:.3f} nats for 1,000 codes whose means and variances are known."


# ---- 01_data_and_encoder ----


@exercise(Encoder.forward, nn.Linear.forward, F.linear,
          advice="compute each layer by hand, x @ W.T + b with the layer's .weight and .bias, and the ReLU with torch.relu",
          sizes="this check's encoder is the lab's 784 → 400 → 20, on a batch of 5 images",
          causes={r"5x784 and 400x784|5x400 and 20x400": "nn.Linear stores its weight as (out, in), such as (400, 784), "
                                                         "so a layer computes x @ W.T + b"})
def check_encode(answer: Callable[[Encoder, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Compare ``answer(encoder, x)`` with the lab's encoder on a seeded 784 → 400 → 20 encoder and 5 random images;
    calling the layers (encoder(x), encoder.hidden(x), F.linear) is refused: the exercise computes them by hand."""
    torch.manual_seed(1)
    encoder = Encoder(latent_dim=20, hidden_dim=400)
    x = torch.rand(5, 784, generator=seeded(1))
    with torch.no_grad():
        heads = lambda h: (encoder.mu(h), encoder.logvar(h))
        mu, logvar = encoder(x)
        hidden = encoder.hidden(x)
        no_bias = lambda layer, v: v @ layer.weight.T
    result = answer(encoder, x.clone())
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
        raise Mistake("return two tensors, μ then log σ², as a tuple")
    expect_tensor(result[0], (5, 20), "μ, one row per image and one column per latent dimension",
                  {(20, 5): "it is transposed: put the batch first, x @ W.T + b",
                   (5, 400): "that is the hidden layer h: pass it through the μ head as well"})
    expect_tensor(result[1], (5, 20), "log σ², shaped like μ", {(5, 400): "that is the hidden layer h: pass it "
                                                                         "through the log σ² head as well"})
    with torch.no_grad():
        slips = [
            ((logvar, mu), "μ and log σ² are swapped: return μ first, then log σ²"),
            (heads(hidden), "you skipped the ReLU: h = relu(x @ W.T + b) before the two heads"),
            (heads(torch.sigmoid(hidden)), "the hidden layer's nonlinearity is the ReLU, relu(x @ W.T + b), not a sigmoid"),
            ((mu, (0.5 * logvar).exp()), "that second output is σ; return log σ² itself, the head's output "
                                         "(σ and σ² come later)"),
            ((mu, logvar.exp()), "that second output is σ²; return log σ² itself, the head's output"),
            ((mu.relu(), logvar.relu()), "the ReLU belongs to the hidden layer only: μ and log σ² can be negative, "
                                         "so the heads have no ReLU"),
            ((mu, mu), "both outputs come from the μ head: log σ² has a head of its own, encoder.logvar"),
            ((no_bias(encoder.mu, torch.relu(no_bias(encoder.hidden, x))),
              no_bias(encoder.logvar, torch.relu(no_bias(encoder.hidden, x)))),
             "the biases are missing: each layer computes x @ W.T + b, with its .bias"),
        ]
    known_slip(torch.stack(list(result)), [(torch.stack(list(pair)), hint) for pair, hint in slips])
    if close(result[0], mu) and not close(result[1], logvar):
        raise Mistake("μ is right; log σ² is not: apply the logvar head to the same h, and return its output as it is")
    if not close(result[0], mu):
        raise Mistake("μ differs from the lab's: h = relu(x @ W₁.T + b₁), then μ = h @ W_μ.T + b_μ")
    return "your encoder matches the lab's: μ and log σ², both of shape (5, 20)."


# ---- 02_reparameterization ----


@exercise(reparameterize, advice="compute z = μ + σ·ε yourself with torch, σ from log σ², using the eps you are given",
          sizes="this check's μ, log σ² and ε are 4 rows of 20 dimensions")
def check_reparameterize(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare ``answer(mu, logvar, eps)`` with `vae_lab.reparameterize` (same ε), then check that gradients reach μ
    and log σ² (values first, so that z = μ is told to add the noise)."""
    mu, logvar = (2 * torch.randn(2, 4, 20, generator=seeded(3))).unbind()
    mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()  # leaves, as an encoder's outputs
    eps = torch.randn(mu.shape, generator=seeded(2))
    z = expect_tensor(answer(mu, logvar, eps.clone()), (4, 20), "z, one entry per latent dimension like μ")
    m, log_var = mu.detach(), logvar.detach()
    sigma = torch.exp(0.5 * log_var)
    expected = reparameterize(m, log_var, generator=seeded(2))
    if not torch.isfinite(z).all():
        raise Mistake("your z holds NaN or inf: log σ² can be negative, so take no square root or log of it; "
                      "σ = exp(½ · log σ²)")
    known_slip(z, [
        (m + log_var.exp() * eps, "you scaled ε by the variance σ² = exp(log σ²); scale it by σ = exp(½ · log σ²). "
                                  "Forgot the ½?"),
        (m + log_var * eps, "log σ² is a logarithm: undo it with exp before multiplying by ε, σ = exp(½ · log σ²)"),
        (m + 0.5 * log_var * eps, "log σ² is a logarithm: undo it with exp before multiplying by ε, "
                                  "σ = exp(½ · log σ²)"),
        (m, "z equals μ: add the noise term σ · ε"),
        (m - sigma * eps, "sign: z = μ + σ · ε (plus, not minus)"),
        (m + eps, "ε is not scaled: multiply it by σ = exp(½ · log σ²) first"),
        (sigma * eps, "μ is missing: the noise σ · ε is added to the mean, z = μ + σ · ε"),
        (m * sigma * eps, "μ and the noise are added, not multiplied: z = μ + σ · ε"),
    ])
    if not close(z, expected):
        drawn = (z.detach() - m) / sigma
        if 0.5 < drawn.std() < 1.5:
            raise Mistake("you drew new noise: use the eps you are given, so that the check can compare your z with "
                          "the lab's")
        raise Mistake("z differs from the lab's: z = μ + exp(½ · log σ²) · ε, elementwise, with the eps you are given")
    reached = torch.autograd.grad(z.sum(), (mu, logvar), allow_unused=True) if z.grad_fn is not None else (None, None)
    if any(gradient is None for gradient in reached):
        raise Mistake("z has the right values, but no gradient reaches μ and log σ²: build z from mu and logvar with "
                      "tensor arithmetic (no .detach(), .item(), .numpy() or torch.no_grad())")
    return "z = μ + σ·ε, matching vae_lab.reparameterize, and gradients reach μ and log σ²."


# ---- 03_loss ----


def expect_one_kl_per_image(result: object, expected: torch.Tensor) -> torch.Tensor:
    """``result`` as one KL per image of the check's batch of 6, or a hint: summed or averaged over the batch, or one KL
    per latent dimension of the 20."""
    if isinstance(result, torch.Tensor) and result.dim() == 0:
        known_slip(result, [(expected.sum(), "you summed over the batch as well: one KL per image, so sum over the "
                                             "latent dimensions only (dim=1)"),
                            (expected.mean(), "you averaged over the batch: one KL per image, so sum over the latent "
                                              "dimensions only (dim=1) and leave the batch")])
    return expect_tensor(result, (6,), "one KL per image", {
        (): "one KL per image: sum over the latent dimensions only (dim=1), not over the batch as well",
        (6, 20): "that is one KL per latent dimension; sum over dim=1 to get one number per image"})


@exercise(kl_divergence, advice="compute −½ Σ (1 + log σ² − μ² − σ²) over the latent dimensions (dim=1) with torch",
          sizes="this check's batch has 6 posteriors of 20 dimensions")
def check_gaussian_kl(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare ``answer(mu, logvar)`` with `vae_lab.kl_divergence` on a random batch of 6 posteriors in 20 dimensions."""
    mu, logvar = torch.randn(2, 6, 20, generator=seeded(3)).unbind()
    expected = kl_divergence(mu, logvar)
    kl = expect_one_kl_per_image(answer(mu.clone(), logvar.clone()), expected)
    one_per_dimension = lambda terms: -0.5 * terms.sum(dim=1)
    known_slip(kl, [
        (-expected, "sign: the KL is never negative; it is −½ Σ (1 + log σ² − μ² − σ²), with the minus in front"),
        (2 * expected, "twice too large: forgot the ½ in front of the sum?"),
        (expected / 20, "you averaged over the latent dimensions; the KL of independent dimensions is their sum (dim=1)"),
        (expected + 10, "forgot the 1 inside the sum: −½ Σ (1 + log σ² − μ² − σ²) (it adds −½ per dimension)"),
        (one_per_dimension(1 + logvar - mu.pow(2) - (0.5 * logvar).exp()),
         "the last term is the variance σ² = exp(log σ²), not σ = exp(½ log σ²)"),
        (one_per_dimension(1 + logvar - mu.pow(2) - (2 * logvar).exp()),
         "log σ² is already the log of the variance: σ² = exp(log σ²), not exp(2 · log σ²), which is σ⁴"),
        (one_per_dimension(1 + logvar - mu - logvar.exp()), "the mean enters squared: μ², not μ"),
        (one_per_dimension(1 - mu.pow(2) - logvar.exp()), "the log σ² term is missing: −½ Σ (1 + log σ² − μ² − σ²)"),
        (one_per_dimension(1 + logvar - logvar.exp()), "the μ² term is missing: a posterior centred away from 0 "
                                                       "costs KL too"),
        (one_per_dimension(1 + logvar - mu.pow(2) - logvar), "the last term is σ² = exp(log σ²), not log σ² again"),
    ])
    if not close(kl, expected):
        raise Mistake("the values differ from the closed form −½ Σ (1 + log σ² − μ² − σ²): compare each of its four "
                      "terms with yours")
    return "your closed-form KL matches vae_lab.kl_divergence on all 6 posteriors."


# ---- 04_training ----


STEP_BATCH = 16  # images per step of check_training_step; it takes three steps
STEP_SIZES = "this check's model has 4 latent dimensions and 32 hidden units, and its batches have 16 images"


def lab_batch_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The negative ELBO of a batch: per-image BCE (from logits) plus KL, averaged over the images."""
    return vae_loss(x, logits, mu, logvar).total


# What each slip trains on, from the model's (logits, μ, log σ²), and the hint that names it.
TRAINING_SLIPS: list[tuple[Callable[..., torch.Tensor], str]] = [
    (lambda x, f, m, v: lab_batch_loss(x, torch.sigmoid(f), m, v),
     "the sigmoid is applied twice: model(x) returns logits, and the BCE from logits applies the sigmoid itself, so "
     "pass it the logits, not torch.sigmoid of them"),
    (lambda x, f, m, v: F.binary_cross_entropy_with_logits(f, x) + kl_divergence(m, v).mean(),
     "your BCE is averaged over the 784 pixels (reduction='mean'): sum it over each image's pixels, then average over "
     "the images (notebook 03's sum-vs-mean pitfall: the mean lets the KL win)"),
    (lambda x, f, m, v: reconstruction_loss(f, x).mean() + kl_divergence(m, v).sum(),
     "your KL is summed over the batch while the BCE is averaged: average the KL over the images too, so both are "
     "in nats per image"),
    (lambda x, f, m, v: reconstruction_loss(f, x).mean(), "the KL term is missing: the negative ELBO is the BCE "
                                                          "plus the KL"),
    (lambda x, f, m, v: reconstruction_loss(f, x).mean() - kl_divergence(m, v).mean(),
     "sign: the negative ELBO is BCE + KL, and the KL is never negative"),
    (lambda x, f, m, v: (reconstruction_loss(f, x) + kl_divergence(m, v)).sum(),
     f"your loss is {STEP_BATCH} times the lab's: it is summed over the batch of {STEP_BATCH} images. Average it over "
     "the images, so the loss is in nats per image and the learning rate means the same for every batch size"),
]


@dataclass
class StepRun:
    """What three calls of a training step did to a fresh small VAE: the numbers returned, the gradient each
    optimizer.step() saw (None where no weight had one), flattened, and how many backward passes ran."""

    results: list[Any]
    gradients: list[torch.Tensor | None]
    backwards: int
    moved: bool


def flat_gradient(model: nn.Module) -> torch.Tensor | None:
    """Every weight's gradient in one vector (a missing one as zeros); None when no weight has a gradient."""
    if all(p.grad is None for p in model.parameters()):
        return None
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


def run_steps(step: Callable[..., Any], images: torch.Tensor) -> StepRun:
    """Call ``step(model, optimizer, x)`` on three batches from a fresh 4-latent VAE and Adam, ε seeded."""
    model = VAE(Config(latent_dim=4, hidden_dim=32, seed=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gradients: list[torch.Tensor | None] = []
    backwards: list[None] = []
    optimizer.register_step_pre_hook(lambda *_: gradients.append(flat_gradient(model)))
    model.decoder.out.bias.register_hook(lambda grad: backwards.append(None))
    start = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(4)
    results = [step(model, optimizer, batch) for batch in images.split(STEP_BATCH)]
    moved = any(not torch.equal(p, q) for p, q in zip(model.parameters(), start))
    return StepRun(results, gradients, len(backwards), moved)


def step_on(loss_of: Callable[..., torch.Tensor], returned: str = "loss", clear: bool = True) -> Callable[..., float]:
    """A training step on ``loss_of(x, *model(x))`` that returns the 'loss', its 'bce' part, or the loss computed
    'after' the update; ``clear=False`` leaves the gradients to add up."""
    def step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
        logits, mu, logvar = model(x)
        loss = loss_of(x, logits, mu, logvar)
        if clear:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if returned == "after":
            return lab_batch_loss(x, *model(x)).item()
        return reconstruction_loss(logits, x).mean().item() if returned == "bce" else loss.item()
    return step


def same_gradients(yours: list[torch.Tensor | None], lab: list[torch.Tensor | None], steps: int) -> bool:
    """True when the first ``steps`` gradients agree, each measured against the lab's largest entry."""
    if len(yours) < steps or len(lab) < steps:
        return False
    pairs = list(zip(yours, lab))[:steps]
    return all(a is not None and b is not None and close(a / b.abs().max(), b / b.abs().max()) for a, b in pairs)


@exercise(train_epoch, fit, advice="write the step from the loss, the optimizer's two calls and backward()",
          sizes=STEP_SIZES)
def check_training_step(answer: Callable[[VAE, torch.optim.Optimizer, torch.Tensor], float]) -> str:
    """Run ``answer(model, optimizer, x)`` and the lab's step on three batches of 16; compare the numbers returned and
    the gradient each optimizer.step() applies (the same gradients and the same Adam give the same weights)."""
    images = torch.rand(3 * STEP_BATCH, 784, generator=seeded(4))
    lab = run_steps(step_on(lab_batch_loss), images)
    run = run_steps(answer, images)
    if any(isinstance(result, torch.Tensor) for result in run.results):
        raise Mistake("return the loss as a Python number, loss.item(), not the tensor: a tensor keeps the step's "
                      "whole graph alive, and the history of losses is plain numbers")
    if not all(isinstance(result, (int, float)) and not isinstance(result, bool) for result in run.results):
        kinds = sorted({type(result).__name__ for result in run.results})
        raise Mistake(f"return the loss as one Python number (loss.item()), got {', '.join(kinds)}")
    if not run.gradients and run.moved:
        raise Mistake("use the optimizer you are given: a new one in every step starts Adam afresh each time")
    if not run.gradients:
        raise Mistake("the weights did not move: after loss.backward(), call optimizer.step() to apply the update")
    if run.backwards == 0:
        raise Mistake("optimizer.step() finds no gradients: call loss.backward() before it")
    if all(gradient is None or not gradient.any() for gradient in run.gradients):
        raise Mistake("you call optimizer.zero_grad() between loss.backward() and optimizer.step(): it clears the "
                      "gradients backward() just computed, so the step has nothing to apply and the weights never "
                      "move. Clear them before backward()")
    if len(run.gradients) != len(lab.gradients):
        raise Mistake(f"one optimizer.step() per call: three calls made {len(run.gradients)} steps")
    trained_right = same_gradients(run.gradients, lab.gradients, 1)
    if trained_right and close(run.results, lab.results) and same_gradients(run.gradients, lab.gradients, 3):
        return "your step matches the lab's: the same three losses and the same weights afterwards."
    if trained_right:
        for step, hint in [(step_on(lab_batch_loss, returned="after"),
                            "the loss you return is computed again after optimizer.step(): return the loss of the "
                            "forward pass you stepped on, the one before the update"),
                           (step_on(lab_batch_loss, returned="bce"),
                            "you train on the whole loss but return only its BCE part: return the total, BCE + KL"),
                           (step_on(lab_batch_loss, clear=False),
                            "the first step matches but the next ones drift: clear the gradients in every step, "
                            "before backward(); otherwise each backward() adds its gradients to the previous step's")]:
            variant = run_steps(step, images)
            if close(run.results, variant.results) and same_gradients(run.gradients, variant.gradients, 3):
                raise Mistake(hint)
        raise Mistake("the first step trains on the right loss, but the numbers you return or the later steps differ "
                      "from the lab's: one forward pass, one backward() and one optimizer.step() per call, and return "
                      "that step's loss")
    for loss_of, hint in TRAINING_SLIPS:
        if same_gradients(run.gradients, run_steps(step_on(loss_of), images).gradients, 1):
            raise Mistake(hint)
    raise Mistake("the gradient of your loss differs from the lab's: train on the negative ELBO of the batch (the BCE "
                  "summed over each image's pixels, from logits, plus the KL, averaged over the images)")


# ---- 05_generation ----


def image_rows(result: Any, n: int, what: str) -> torch.Tensor:
    """``result`` if it is ``n`` images of shape (n, 784); else `Mistake` naming the shape it has."""
    if isinstance(result, torch.Tensor) and result.numel() == n * 784 and tuple(result.shape) != (n, 784):
        raise Mistake(f"return {what} as rows of 784 pixels, shape ({n}, 784), got {tuple(result.shape)}: "
                      "flatten each image with .reshape(n, 784), as the lab's plots expect")
    if isinstance(result, torch.Tensor) and result.dim() == 2 and result.shape[1] == 784 and result.shape[0] != n:
        raise Mistake(f"asked for {n} images, got {result.shape[0]} rows: one row per image, n of them")
    return expect_tensor(result, (n, 784), what)


@exercise(VAE.sample, sample_digits,
          advice="draw the codes from N(0, I) yourself with torch.randn, passing it the generator, then decode them with "
                 "model.decode",
          sizes="this check's model has 4 latent dimensions (model.config.latent_dim) and it asks for n = 6 images")
def check_prior_samples(answer: Callable[[VAE, int, torch.Generator], torch.Tensor]) -> str:
    """Compare ``answer(model, n, generator)`` with ``model.sample(n, generator)`` on a small VAE, same seed, for n = 6
    (twice: the same seed must give the same images) and n = 3."""
    model = VAE(Config(latent_dim=4, hidden_dim=32, seed=0)).eval()
    expected = model.sample(6, generator=seeded(5))
    result, again = answer(model, 6, seeded(5)), answer(model, 6, seeded(5))
    images = image_rows(result, 6, "six images").detach()
    if not (isinstance(again, torch.Tensor) and torch.equal(images, again.detach().reshape(images.shape))):
        raise Mistake("two calls with the same seed gave different images: draw z with the generator you are given, "
                      "torch.randn(..., generator=generator), so that your samples are reproducible")
    if images.min() < 0 or images.max() > 1:
        raise Mistake("some values lie outside [0, 1], so these are logits: decode with model.decode(z), which turns "
                      "them into pixel probabilities")
    with torch.no_grad():
        known_slip(images, [
            (model.decode(torch.rand(6, 4, generator=seeded(5))), "z came from the uniform torch.rand; the prior is the "
                                                                  "standard normal N(0, I): use torch.randn"),
            (torch.sigmoid(expected), "the sigmoid is applied twice: model.decode already returns pixel probabilities"),
            (model.decode(torch.zeros(6, 4)), "all six images are the decoding of z = 0: draw a different z for each "
                                              "image from N(0, I)"),
        ])
    if not close(images, expected):
        raise Mistake("the images differ from the lab's: draw z of shape (n, latent_dim) from the standard normal with "
                      "the generator, then decode it with model.decode")
    fewer = answer(model, 3, seeded(5))
    if isinstance(fewer, torch.Tensor) and len(fewer) != 3:
        raise Mistake(f"asked for n = 3 images, got {len(fewer)}: draw n codes, the argument, not a fixed number")
    if not close(fewer, model.sample(3, generator=seeded(5))):
        raise Mistake("n = 6 works but n = 3 does not: take every size from the arguments")
    return "your samples from the prior match the lab's model.sample: same z, same digits."


# ---- 06_your_own_vae: the model ----


LAB = capstone.LAB  # the lab's settings: 784 → 400 → 20, batches of 128, Adam at 1e-3
FIVE_LAYERS = sorted([(784, LAB.hidden_dim), (LAB.hidden_dim, LAB.latent_dim), (LAB.hidden_dim, LAB.latent_dim),
                      (LAB.latent_dim, LAB.hidden_dim), (LAB.hidden_dim, 784)])
CHUNKED_LAYERS = sorted([(784, LAB.hidden_dim), (LAB.hidden_dim, 2 * LAB.latent_dim), (LAB.latent_dim, LAB.hidden_dim),
                         (LAB.hidden_dim, 784)])  # one 400 → 40 layer, chunked into μ and log σ²
MODEL_SIZES = "this check's MyVAE is the lab's 784 → 400 → 20 → 400 → 784, on batches of 6 images"


def is_affine(f: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when f maps the midpoint of a and b to the midpoint of f(a) and f(b), as a network without ReLU does."""
    return close(f((a + b) / 2), (f(a) + f(b)) / 2)


def reparameterization_hint(model: nn.Module) -> None:
    """Probe ``model.reparameterize`` with μ = 3, σ = 2 on 20,000 draws: first the values (spread and mean), then fresh
    noise, then the gradients; `Mistake` at the first thing wrong."""
    mu = torch.full((1000, 20), 3.0, requires_grad=True)
    logvar = torch.full((1000, 20), math.log(4.0), requires_grad=True)
    z = expect_tensor(model.reparameterize(mu, logvar), (1000, 20), "reparameterize(μ, log σ²): z of μ's shape")
    spread, centre = z.detach().std().item(), z.detach().mean().item()
    spreads = {0.0: "z = μ: add the noise term σ·ε",
               4.0: "you scaled ε by σ² = exp(log σ²); scale it by σ = exp(½ log σ²)",
               math.log(4.0): "log σ² is a logarithm: undo it, σ = exp(½ log σ²), before multiplying by ε",
               0.5 * math.log(4.0): "log σ² is a logarithm: undo it, σ = exp(½ log σ²), before multiplying by ε",
               1.0: "ε is not scaled: z = μ + σ·ε with σ = exp(½ log σ²)"}
    for wrong, hint in spreads.items():
        if abs(spread - wrong) < 0.05:
            raise Mistake(hint)
    if abs(spread - 2.0) > 0.05 or abs(centre - 3.0) > 0.05:
        raise Mistake(f"with μ = 3 and σ = 2 your z has mean {centre:.2f} and spread {spread:.2f}; z = μ + σ·ε with "
                      "ε drawn from the standard normal, torch.randn_like")
    if torch.equal(z, model.reparameterize(mu, logvar)):
        raise Mistake("two calls gave the same z: draw fresh noise in every call with torch.randn_like")
    if z.grad_fn is None:
        raise Mistake("no gradient reaches z: build it from mu and logvar with tensor arithmetic (no .detach() or "
                      "no_grad)")


def forward_hint(model: nn.Module, x: torch.Tensor) -> None:
    """Check that ``model(x)`` is (decode(reparameterize(μ, log σ²)), μ, log σ²) and that every weight gets a gradient."""
    torch.manual_seed(8)
    output = model(x)
    torch.manual_seed(8)
    mu, logvar = model.encode(x)
    expected = model.decode(model.reparameterize(mu, logvar))
    if not (isinstance(output, (tuple, list)) and len(output) == 3 and all(isinstance(t, torch.Tensor) for t in output)):
        raise Mistake("forward(x) returns three tensors: the logits, then μ, then log σ²")
    logits, out_mu, out_logvar = output
    if tuple(logits.shape) != (len(x), 784):
        raise Mistake(f"forward(x) returns (logits, μ, log σ²) in that order; its first tensor has shape "
                      f"{tuple(logits.shape)}, not the logits' ({len(x)}, 784)")
    if not (close(out_mu, mu) and close(out_logvar, logvar)):
        raise Mistake("forward(x) returns (logits, μ, log σ²) in that order, with μ and log σ² from self.encode(x)")
    if close(logits, model.decode(mu)):
        raise Mistake("forward decodes μ itself: decode z = self.reparameterize(μ, log σ²), the noisy code")
    if not close(logits, expected):
        raise Mistake("forward should decode z = self.reparameterize(mu, logvar) and return those logits, then μ "
                      "and log σ²")
    (logits.sum() + out_mu.sum() + out_logvar.sum()).backward()
    missing = [name for name, weight in model.named_parameters() if weight.grad is None]
    if missing:
        raise Mistake(f"no gradient reaches {', '.join(missing)}: use every layer in forward")


@exercise(VAE, Encoder, Decoder, reparameterize, advice="build it from nn.Linear layers, F.relu and torch.randn_like",
          sizes=MODEL_SIZES,
          causes={r"cannot assign module before Module.__init__\(\) call":
                  "call super().__init__() first in __init__, before creating the layers"})
def check_my_vae(model_class: type) -> str:
    """Probe the student's ``MyVAE``: its layers (five, or four with one 400 → 40 head chunked into μ and log σ²),
    encode, reparameterize (μ = 3, σ = 2), decode and forward."""
    torch.manual_seed(0)
    model = model_class()
    if not isinstance(model, nn.Module):
        raise Mistake("MyVAE must be an nn.Module: class MyVAE(nn.Module), with super().__init__() first in __init__")
    layers = sorted((m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
    if layers not in (FIVE_LAYERS, CHUNKED_LAYERS):
        raise Mistake(f"expected the lab's layers (in, out): 784 → 400, 400 → 20 for μ and 400 → 20 for log σ² (or one "
                      f"400 → 40 layer split into the two), 20 → 400, 400 → 784; got {layers}")
    if any(isinstance(m, nn.Linear) and m.bias is None for m in model.modules()):
        raise Mistake("some nn.Linear has no bias: leave bias=True, as the maths above has b₁, b_μ, b_σ, b₂ and b₃")
    x = torch.rand(2, 6, 784, generator=seeded(6))
    encoded = model.encode(x[0])
    if not (isinstance(encoded, (tuple, list)) and len(encoded) == 2 and all(isinstance(t, torch.Tensor)
                                                                               for t in encoded)):
        raise Mistake("encode(x) returns two tensors, μ then log σ²")
    mu, logvar = encoded
    if tuple(mu.shape) != (6, 20) or tuple(logvar.shape) != (6, 20):
        raise Mistake(f"encode(x) returns μ and log σ², each of shape (N, 20); got {tuple(mu.shape)} and "
                      f"{tuple(logvar.shape)}")
    if torch.equal(mu, logvar):
        raise Mistake("μ and log σ² are the same tensor: each has its own 400 → 20 layer (or its own half of one "
                      "400 → 40 layer)")
    if is_affine(lambda images: model.encode(images)[0], x[0], x[1]):
        raise Mistake("the encoder has no ReLU: h = F.relu(self.<hidden layer>(x)) before the μ and log σ² layers")
    if (mu.detach() >= 0).all() and (logvar.detach() >= 0).all():
        raise Mistake("μ and log σ² are never negative: the ReLU belongs to the hidden layer only, not to the heads")
    reparameterization_hint(model)
    z = 3 * torch.randn(2, 6, 20, generator=seeded(7))
    logits = expect_tensor(model.decode(z[0]), (6, 784), "decode(z): 784 logits per image")
    if logits.min() >= 0 and logits.max() <= 1:
        raise Mistake("decode returns probabilities: return the logits (no sigmoid); the loss works from logits")
    if is_affine(model.decode, z[0], z[1]):
        raise Mistake("the decoder has no ReLU: h = F.relu(self.<hidden layer>(z)) before the 400 → 784 layer")
    forward_hint(model, x[0])
    return ("your MyVAE has the lab's layers, draws z = μ + σ·ε, and returns (logits, μ, log σ²) with gradients "
            "reaching every weight.")


# ---- 06_your_own_vae: the loss ----


@exercise(vae_loss, reconstruction_loss, kl_divergence,
          advice="compute the BCE with F.binary_cross_entropy_with_logits and the KL −½ Σ(1 + log σ² − μ² − σ²) with torch",
          sizes="this check's batch has 8 images of 784 pixels and 20 latent dimensions")
def check_negative_elbo(negative_elbo: Callable[..., torch.Tensor]) -> str:
    """Compare ``negative_elbo(x, logits, mu, logvar)`` with the negative ELBO on a fixed batch of 8, whose logits
    include ±30, where sigmoid rounds to 0 or 1 in float32; name the known slips."""
    generator = seeded(9)
    x = torch.rand(8, 784, generator=generator)
    logits = 4 * torch.randn(8, 784, generator=generator)
    logits[:, :10] = 30.0 * torch.sign(logits[:, :10])
    mu, logvar = torch.randn(2, 8, 20, generator=generator).unbind()
    result = negative_elbo(x.clone(), *[t.clone().requires_grad_() for t in (logits, mu, logvar)])
    if not isinstance(result, torch.Tensor):
        raise Mistake(f"return the loss as a torch.Tensor (so that .backward() works), got {type(result).__name__}")
    if result.numel() != 1:
        raise Mistake(f"return one number, the mean over the batch; got shape {tuple(result.shape)}: average the "
                      "per-image losses")
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = kl_divergence(mu, logvar)
    right = reconstruction_loss(logits, x).mean() + kl.mean()
    value = result.reshape(())
    if close(value, right):
        if result.grad_fn is None:
            raise Mistake("the loss must stay differentiable: no .item(), .detach() or no_grad")
        return ("your loss is the negative ELBO in nats per image: BCE summed over pixels plus the closed-form KL, "
                "averaged over the batch.")
    if not torch.isfinite(value):
        raise Mistake("your loss is not finite: log(sigmoid(logits)) breaks where sigmoid rounds to 0 or 1 (logits "
                      "beyond ±17); compute the BCE from logits, e.g. F.binary_cross_entropy_with_logits")
    sigmoid_first = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(1).mean() + kl.mean()
    known_slip(value, [
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
    ])
    raise Mistake(f"your loss is {value.item():.2f} where the negative ELBO is {right.item():.2f} nats per image: "
                  "BCE summed over the 784 pixels (from logits) plus −½ Σ(1 + log σ² − μ² − σ²), averaged over the batch")


# ---- 06_your_own_vae: the epoch loop ----


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


@dataclass(frozen=True)
class LossCall:
    """One call of the loss: 'train' or 'test' images (by their ids), the loss, and whether gradients were recorded
    and the model was in training mode."""

    split: str
    ids: list[int]
    loss: float
    grad_enabled: bool
    training: bool


@dataclass(frozen=True)
class Step:
    """One optimizer.step(): the optimizer's kind and learning rate, and the gradient it stepped on: 'fresh' (from the
    latest backward() alone), 'none' or 'zero' (cleared after backward), or 'stale' (old gradients added in)."""

    optimizer: str
    lr: float
    gradient: str


class LoopRecorder:
    """Records what a student's training loop does to a `ProbeVAE`: which images each loss call saw, with which
    settings, and each step's optimizer, learning rate and gradient."""

    def __init__(self, model: ProbeVAE) -> None:
        self.model = model
        self.events: list[LossCall | Step] = []
        self.parameter = model.decoder.out.bias  # one weight is enough to see what the optimizer steps on
        self.fresh_grad: torch.Tensor | None = None  # its gradient from the latest backward() alone
        self.parameter.register_hook(self.keep_fresh_grad)

    def keep_fresh_grad(self, grad: torch.Tensor) -> None:
        self.fresh_grad = grad.clone()

    def loss(self, x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The negative ELBO per image, averaged over the batch; records the batch's images and the settings."""
        ids = torch.round(x[:, 0].detach() * ID_SCALE).long().tolist()
        value = vae_loss(x, logits, mu, logvar).total
        self.events.append(LossCall("train" if ids[0] < TRAIN_PROBE else "test", ids, value.item(),
                                    torch.is_grad_enabled(), self.model.training))
        return value

    def step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not any(p is self.parameter for group in optimizer.param_groups for p in group["params"]):
            return
        grad, fresh = self.parameter.grad, self.fresh_grad
        state = ("none" if grad is None else "zero" if not grad.any() else
                 "fresh" if fresh is not None and torch.allclose(grad, fresh) else "stale")
        self.events.append(Step(type(optimizer).__name__, optimizer.param_groups[0]["lr"], state))


def probe_images() -> tuple[torch.Tensor, torch.Tensor]:
    """300 training and 50 test images whose first pixel says which image they are."""
    images = torch.rand(TRAIN_PROBE + TEST_PROBE, 784, generator=seeded(10))
    images[:, 0] = torch.arange(TRAIN_PROBE + TEST_PROBE) / ID_SCALE
    return images[:TRAIN_PROBE], images[TRAIN_PROBE:]


def record_loop(train_my_vae: Callable[..., Any], epochs: int, seed: int, state: int) -> tuple[Any, LoopRecorder]:
    """Run the student's loop on a fresh `ProbeVAE` and the probe images, from the global random state ``state``
    (a notebook's state is whatever ran before); return its result and what it did."""
    model = ProbeVAE()
    recorder = LoopRecorder(model)
    train_images, test_images = probe_images()
    handle = register_optimizer_step_pre_hook(recorder.step)
    try:
        torch.manual_seed(state)
        result = train_my_vae(model, recorder.loss, train_images, test_images, epochs, seed)
    finally:
        handle.remove()
    return result, recorder


def epochs_of(events: list[LossCall | Step]) -> list[list[LossCall | Step]]:
    """Split the events into epochs: each ends with its test batches."""
    epochs: list[list[LossCall | Step]] = []
    current: list[LossCall | Step] = []
    for event in events:
        if current and isinstance(event, LossCall) and event.split == "train" and \
                isinstance(current[-1], LossCall) and current[-1].split == "test":
            epochs.append(current)
            current = []
        current.append(event)
    return epochs + ([current] if current else [])


def mean_loss(batches: list[LossCall]) -> list[float]:
    """The two fair averages of the batches' losses: per image (weighted by batch size) and per batch."""
    sizes = torch.tensor([len(call.ids) for call in batches], dtype=torch.float64)
    losses = torch.tensor([call.loss for call in batches], dtype=torch.float64)
    return [(sizes @ losses / sizes.sum()).item(), losses.mean().item()]


def seeded_orders(seed: int, epochs: int) -> list[list[int]]:
    """The orders of the probe images that `torch.randperm` with a generator seeded ``seed`` gives, epoch by epoch."""
    shuffle = seeded(seed)
    return [torch.randperm(TRAIN_PROBE, generator=shuffle).tolist() for _ in range(epochs)]


def epoch_hint(epoch: list[LossCall | Step], reported: tuple[float, float]) -> list[int]:
    """Check one epoch of the loop (batches, steps, test pass, reported losses); `Mistake` at the first slip.
    Returns the order in which the epoch visited the training images."""
    train = [e for e in epoch if isinstance(e, LossCall) and e.split == "train"]
    test = [e for e in epoch if isinstance(e, LossCall) and e.split == "test"]
    sizes, order = [len(call.ids) for call in train], [i for call in train for i in call.ids]
    if sizes != [128, 128, TRAIN_PROBE - 256]:
        raise Mistake(f"use mini-batches of 128 images (the last one smaller); on 300 images your batches had {sizes}")
    if sorted(order) != list(range(TRAIN_PROBE)):
        raise Mistake("each epoch visits every training image exactly once: index the images with a permutation, "
                      "torch.randperm(n, generator=shuffle), not with random draws")
    if sum(isinstance(e, Step) for e in epoch) != len(train):
        raise Mistake("take exactly one optimizer step per mini-batch")
    if sorted(i for call in test for i in call.ids) != list(range(TRAIN_PROBE, TRAIN_PROBE + TEST_PROBE)):
        raise Mistake("compute the test loss on all the test images, once after each epoch")
    if any(isinstance(e, Step) for e in epoch[epoch.index(test[0]):]):
        raise Mistake("never step the optimizer on test images: they only measure the model")
    if any(call.grad_enabled for call in test):
        raise Mistake("the test loss is computed with gradients on: wrap the test pass in `with torch.no_grad():`, "
                      "which the measurement does not need and which otherwise keeps a graph for every test batch")
    if any(call.training for call in test):
        raise Mistake("the model is still in training mode during the test pass: call model.eval() before it (and "
                      "model.train() before the next epoch's batches)")
    if not all(call.training for call in train):
        raise Mistake("the training batches run in eval mode: call model.train() at the start of every epoch, after "
                      "the previous epoch's model.eval()")
    for name, value, batches in (("train", reported[0], train), ("test", reported[1], test)):
        if not any(math.isclose(value, fair, rel_tol=1e-4) for fair in mean_loss(batches)):
            raise Mistake(f"your {name} loss of an epoch should be the mean of its batches' losses, per image; you "
                          f"reported {value:.2f} where the batches average {mean_loss(batches)[0]:.2f}")
    return order


def loop_hint(train_my_vae: Callable[..., Any]) -> None:
    """What is first wrong with ``train_my_vae(model, loss_fn, train_images, test_images, epochs, seed)``, judged from
    two epochs on 300 probe images with a small model; `Mistake` at the first slip."""
    result, recorder = record_loop(train_my_vae, 2, 5, state=11)
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and
            all(isinstance(losses, (tuple, list)) and len(losses) == 2 for losses in result)):
        raise Mistake("return two lists, one number per epoch each: the train losses, then the test losses")
    reported = [(number(train, "one number per epoch"), number(test, "one number per epoch"))
                for train, test in zip(*result)]
    steps = [event for event in recorder.events if isinstance(event, Step)]
    if not steps:
        raise Mistake("the weights never moved: create torch.optim.Adam(model.parameters(), lr=1e-3) and call "
                      "optimizer.step() after loss.backward() for every batch")
    if steps[0].optimizer != "Adam" or steps[0].lr != LAB.lr:
        raise Mistake(f"use Adam with learning rate 1e-3, as fit does; you used {steps[0].optimizer} with learning "
                      f"rate {steps[0].lr:g}")
    if any(step.gradient in ("none", "zero") for step in steps):
        raise Mistake("you call optimizer.zero_grad() between loss.backward() and optimizer.step(): it clears the "
                      "gradients backward() just computed, so the step has nothing to apply. Clear them before "
                      "backward()")
    if any(step.gradient == "stale" for step in steps):
        raise Mistake("call optimizer.zero_grad() in every step, before backward(): otherwise each step adds up all "
                      "the old gradients")
    epochs = epochs_of(recorder.events)
    if len(epochs) != 2:
        raise Mistake("after each epoch, compute the test loss on the test images (in eval mode, under "
                      "torch.no_grad())")
    orders = [epoch_hint(epoch, losses) for epoch, losses in zip(epochs, reported)]
    if orders[0] == list(range(TRAIN_PROBE)):
        raise Mistake("no shuffling: the batches follow the images in order; draw a new order with torch.randperm at "
                      "the start of every epoch")
    if orders[0] == orders[1]:
        raise Mistake("every epoch visits the images in the same order: draw a new permutation at the start of every "
                      "epoch, from one generator created once before the loop")
    if orders != seeded_orders(5, 2):
        raise Mistake("your shuffle does not come from the seeded generator: create shuffle = "
                      "torch.Generator().manual_seed(seed) once, and draw each epoch's order with "
                      "torch.randperm(len(train_images), generator=shuffle)")
    again, recorder_again = record_loop(train_my_vae, 2, 5, state=12)
    if [e.loss for e in recorder_again.events if isinstance(e, LossCall)] != \
            [e.loss for e in recorder.events if isinstance(e, LossCall)]:
        raise Mistake("two runs with the same seed differ: seed the noise ε with torch.manual_seed(seed) at the start, "
                      "so that the run does not depend on what ran before it")


@exercise(fit, train_epoch, evaluate_loss, training_loss,
          advice="loop over shuffled batches with torch.randperm and torch.optim.Adam yourself",
          sizes="this check's model is a small 784 → 8 → 2 VAE, trained for 2 epochs on 300 images in batches of 128")
def check_epoch_loop(train_my_vae: Callable[..., Any]) -> str:
    """Train a small VAE with the student's loop for two epochs on 300 probe images and inspect every batch and step."""
    loop_hint(train_my_vae)
    return ("your loop shuffles every epoch, takes one Adam step per batch of 128, and reports the train and test loss "
            "per image.")


# ---- 06_your_own_vae: the trained model ----


PIECES = ("MyVAE", "negative_elbo", "train_my_vae")


def pieces_verdict(model_class: Any, negative_elbo: Any, train_my_vae: Any) -> Verdict | None:
    """None when all three pieces of the capstone pass their checks; else the training check's verdict, naming each
    piece that has not passed (✏️ only when none of the three is attempted yet)."""
    verdicts = dict(zip(PIECES, (check_my_vae.verdict(model_class), check_negative_elbo.verdict(negative_elbo),
                                 check_epoch_loop.verdict(train_my_vae))))
    if not any(verdict.attempted for verdict in verdicts.values()):
        return Verdict(NOT_ATTEMPTED, "write MyVAE, negative_elbo and train_my_vae above; once all three pass their "
                                      "checks, the training cell trains your VAE, and this check compares it with fit.")
    waiting = [f"your {name} " + ("is not written yet" if not verdict.attempted else "has not passed yet")
               for name, verdict in verdicts.items() if not verdict.passed]
    if not waiting:
        return None
    listed = waiting[0] if len(waiting) == 1 else ", ".join(waiting[:-1]) + " and " + waiting[-1]
    fix = "make it pass its check above" if len(waiting) == 1 else "make each pass its check above"
    return Verdict(MISTAKE, f"{listed}, so the training cell used the lab's VAE instead of yours: {fix}, then rerun "
                            "the training cell and this one")


def compare_with_fit(trained: capstone.StudentVAE, history: History, config: Config, data: MNIST) -> str:
    """The ✅ sentence when the student's trained VAE lands near `fit` on the same settings; else `Mistake`."""
    yours, measured = history.test_loss[-1], trained.test_loss(data.test_images)
    if not math.isclose(yours, measured, rel_tol=0.02):
        raise Mistake(f"your loop reports a test loss of {yours:.1f} but the model's negative ELBO per test image is "
                      f"{measured:.1f}: average the loss over all test images, per image")
    reference = capstone.fit_test_loss(config, data)
    margin = capstone.tolerance(config, reference)
    if abs(yours - reference) >= margin.nats:
        raise Mistake(f"your model's test loss is {yours:.1f} nats per image, fit's {reference:.1f} ({margin.reason}): "
                      "compare each layer, the loss and the loop with the lab's (notebook 04)")
    return (f"your VAE's test loss, {yours:.1f} nats per image, is within {margin.nats:.1f} nat of fit's "
            f"{reference:.1f} on the same settings ({margin.reason}).")


def check_training(trained: Any, history: History, config: Config, data: MNIST, model_class: Any, negative_elbo: Any,
                   train_my_vae: Any) -> bool:
    """Compare the student's trained VAE with `fit` on the same settings; when a piece has not passed (so the lab's
    VAE was trained instead), name that piece."""
    waiting = pieces_verdict(model_class, negative_elbo, train_my_vae)
    if waiting is not None:
        return report(waiting)
    if not isinstance(trained, capstone.StudentVAE):
        return report(Verdict(MISTAKE, "your three pieces pass, but the model above is the lab's: rerun the training "
                                       "cell, then this one"))
    return report(judge(lambda: compare_with_fit(trained, history, config, data), Guard((), ""), sizes=MODEL_SIZES))


# ---- 07_latent_space ----


@exercise(interpolate, advice="compute z(t) = (1 − t)·z0 + t·z1 yourself with torch, for evenly spaced t from 0 to 1",
          sizes="this check's codes z0 and z1 have 20 dimensions and it asks for 7 steps",
          causes={r"size of tensor a \((7|20)\) must match the size of tensor b \((7|20)\)":
                  "t holds one value per step (7) and z0 one per dimension (20), so they do not broadcast: make t a "
                  "column of shape (steps, 1), t[:, None], so that each row gets its own t"})
def check_linear_interpolation(answer: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> str:
    """Compare ``answer(z0, z1, steps)`` with `vae_lab.latent.interpolate` on two random 20-D codes and 7 steps."""
    z0, z1 = torch.randn(2, 20, generator=seeded(6))
    result = answer(z0.clone(), z1.clone(), 7)
    if isinstance(result, (list, tuple)) and all(isinstance(row, torch.Tensor) for row in result):
        raise Mistake("return one tensor, not a list of rows: stack them with torch.stack")
    path = expect_tensor(result, (7, 20), "one row per step, (steps, d)", {
        (20, 7): "it is transposed: one row per step, so t must be a column, t[:, None]",
        (6, 20): "one row short: steps = 7 rows, both ends included",
        (8, 20): "one row too many: steps = 7 rows, from z0 to z1 with both ends included"})
    line = lambda t: (1 - t[:, None]) * z0 + t[:, None] * z1
    known_slip(path, [
        (line(torch.linspace(1, 0, 7)), "your path runs from z1 to z0: at t = 0 the row must be z0, so z0 is weighted "
                                        "by 1 − t and z1 by t"),
        (line(torch.arange(7) / 7), "the last row is not z1: t must reach 1 at the last step; take 7 evenly spaced "
                                    "values from 0 to 1 with both ends included, as torch.linspace gives"),
        (line(torch.arange(1, 8) / 7), "the first row is not z0: t must start at 0; take 7 evenly spaced values from "
                                       "0 to 1 with both ends included, as torch.linspace gives"),
        (line(torch.arange(7.0)), "t runs over 0, 1, …, 6: it must go from 0 to 1, in 7 evenly spaced values"),
        (z0 + torch.linspace(0, 1, 7)[:, None] * z1, "z0 must fade out as z1 fades in: weight z0 by 1 − t, "
                                                     "not by 1"),
    ])
    if not (close(path[0], z0) and close(path[-1], z1)):
        raise Mistake("the first row must be z0 (t = 0) and the last z1 (t = 1)")
    if not close(path, interpolate(z0, z1, 7)):
        raise Mistake("the ends are right but the middle is not: z(t) = (1 − t)·z0 + t·z1 with evenly spaced t, a "
                      "straight line")
    return "your path from z0 to z1 matches vae_lab.latent.interpolate."


# ---- 08_evaluation ----


LOG_WEIGHT_CENTRES = (-90.0, -100.0, -200.0, -800.0)  # one image per centre: exp underflows for all but the first two


@exercise(importance_bounds, iwae_loss, advice="compute the log of the mean weight yourself, stably: torch.logsumexp "
                                               "over the K samples, then account for the mean",
          sizes="this check's log-weights are K = 50 samples (rows) for 4 images (columns)")
def check_iwae_from_log_weights(answer: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """Compare ``answer(log_w)`` with logsumexp − log K on log-weights (50, 4) near −90, −100, −200 and −800, where
    exp underflows to 0 (in float32 below about −104, in float64 below about −745); K = 1 must give log w itself."""
    log_w = torch.tensor(LOG_WEIGHT_CENTRES) + 3 * torch.randn(50, 4, generator=seeded(7))
    wide = log_w.double()
    expected = torch.logsumexp(wide, dim=0) - math.log(len(log_w))
    result = expect_tensor(answer(log_w.clone()), (4,), "one value per image", {
        (50,): "that is one value per sample: reduce over dim=0, the K samples, not over the images",
        (): "one value per image: reduce over the K samples only (dim=0)",
        (1, 4): "one value per image, shape (N,): reduce dim=0 away (no keepdim)"})
    if not torch.isfinite(result).all():
        raise Mistake("your bound is −inf for some images: exp of a log-weight near −800 underflows to 0 (float32 "
                      "already below about −104), and log 0 = −inf. Subtract the largest log-weight m before "
                      "exponentiating and add it back after the log, or use torch.logsumexp")
    top = wide.max(dim=0).values
    known_slip(result, [
        (expected + math.log(len(log_w)), "close: that is log Σ w. The bound averages the weights, so subtract log K"),
        (wide.mean(dim=0), "that is the mean of the log-weights, the ELBO's estimate: the IWAE bound is the log of the "
                           "mean weight, log (1/K) Σ exp(ℓ_k), which lies above it (Jensen)"),
        (top, "that is the largest log-weight alone: add the log of the mean of exp(ℓ − m) to it"),
        (expected - top, "you subtracted the largest log-weight m inside the exp but did not add it back after the log"),
        (torch.logsumexp(wide, dim=0) / len(log_w), "the mean belongs inside the log: subtract log K instead of "
                                                    "dividing by K"),
    ])
    if not close(result, expected):
        raise Mistake("the values differ from log (1/K) Σ_k exp(ℓ_k): subtract the largest log-weight m, exponentiate, "
                      "average over the K samples, take the log, add m back")
    single = answer(log_w[:1].clone())
    if not close(single, log_w[0]):
        raise Mistake("with K = 1 the bound must be the log-weight itself: check how you count K (len(log_w), the "
                      "number of rows)")
    return "L_K matches, and with K = 1 it is the log-weight itself (the ELBO's estimate)."


# ---- 09_beta_vae ----


@exercise(active_units, advice="compute the variance of μ across images yourself and count the units above the "
                               "threshold",
          sizes="this check's μ has 1,000 images (rows) of 8 units (columns)")
def check_active_units(answer: Callable[[torch.Tensor, float], int]) -> str:
    """Compare ``answer(mu, threshold)`` with `vae_lab.beta_vae.active_units` on 8 units with known Var_n(μ), at two
    thresholds."""
    variances = torch.tensor([4.0, 1.0, 0.2, 0.05, 0.02, 0.005, 0.001, 0.0])
    means = torch.tensor([0.0, 0.5, -1.0, 0.0, 2.0, 0.0, 3.0, 1.5])
    noise = torch.randn(1000, 8, generator=seeded(8))
    mu = (noise - noise.mean(dim=0)) / noise.std(dim=0) * variances.sqrt() + means  # exactly these variances
    thresholds = (0.01, 0.1)
    expected = tuple(int(active_units(mu, t).sum()) for t in thresholds)
    results = [answer(mu.clone(), t) for t in thresholds]
    if any(isinstance(r, torch.Tensor) and r.dim() == 1 for r in results):
        raise Mistake("that is one value per unit (or per image); return how many units are active, one whole number")
    values = [number(r, "the number of active units, one whole number") for r in results]
    if any(v != int(v) for v in values):
        raise Mistake(f"expected a whole number of units, got {values[0]:g}: count the active units, not their "
                      "fraction or their variance")
    counts = tuple(int(v) for v in values)
    slips = {
        tuple(int((mu.var(dim=0) <= t).sum()) for t in thresholds):
            "you counted the inactive units; a unit is active when its variance is *above* the threshold",
        tuple(int((mu.std(dim=0) > t).sum()) for t in thresholds):
            "you compared the standard deviation with the threshold; Burda et al. compare the variance Var_n(μ_u)",
        tuple(int((mu.pow(2).mean(dim=0) > t).sum()) for t in thresholds):
            "you used the mean of μ² without centring; a unit whose μ is 3 for every image carries no information: "
            "take the variance across images",
        tuple(int(mu.var() > t) for t in thresholds):
            "you took one variance over all the entries of μ: take one per unit, across the images (dim=0)",
        (expected[0], expected[0]):
            "the threshold 0.1 gave the same count as 0.01: use the `threshold` argument instead of a fixed 0.01",
    }
    if max(counts) > mu.shape[1]:
        raise Mistake(f"you counted {max(counts)}, more than the {mu.shape[1]} units: take the variance across images "
                      "(dim=0, one value per unit), not across units")
    if counts != expected:
        raise Mistake(slips.get(counts, f"expected {expected[0]} active units at threshold 0.01 and {expected[1]} at "
                                        f"0.1, got {counts[0]} and {counts[1]}: count the units u with Var_n(μ_nu) > "
                                        "threshold"))
    return f"your count matches vae_lab.beta_vae.active_units: {expected[0]} of 8 units are active at threshold 0.01."


# ---- 10_conditional_vae ----


@exercise(style_transfer, decode_every_digit,
          advice="encode the image once with its own label, then decode that one code with each of the ten labels, "
                 "with model.encoder and model.decode",
          sizes="this check's conditional model has 4 latent dimensions and one image of digit 3")
def check_style_transfer(answer: Callable[[VAE, torch.Tensor, int], torch.Tensor]) -> str:
    """Compare ``answer(model, image, label)`` with `vae_lab.latent.style_transfer` on a small seeded conditional VAE."""
    model = VAE(Config(conditional=True, latent_dim=4, hidden_dim=32, seed=0)).eval()
    image, label = torch.rand(784, generator=seeded(9)), 3
    expected = style_transfer(model, image[None], torch.tensor([label]))
    result, again = answer(model, image.clone(), label), answer(model, image.clone(), label)
    images = image_rows(result, 10, "ten images, one per digit").detach()
    if not (isinstance(again, torch.Tensor) and torch.equal(images, again.detach().reshape(images.shape))):
        raise Mistake("two calls gave different images: decode the mean μ of q(z|x, y), not a sample z = μ + σ·ε")
    if images.min() < 0 or images.max() > 1:
        raise Mistake("some values lie outside [0, 1], so these are logits: decode with model.decode(z, labels), "
                      "which gives pixels")
    digits = torch.arange(10)
    with torch.no_grad():
        encoded_with = lambda labels: model.encoder(image.repeat(len(labels), 1), labels)[0]
        known_slip(images, [
            (model.decode(encoded_with(digits), digits),
             "you encoded the image once per target digit, with that digit's label: take the style from one encoding, "
             "with the image's own label y, and change only the label you decode with"),
            (model.reconstruct(image[None], torch.tensor([label])).repeat(10, 1),
             "all ten rows show the same digit: decode the one code with a different label per row, 0 to 9"),
            (model.decode(encoded_with(torch.tensor([0])).repeat(10, 1), digits),
             "you encoded with label 0: encode with the image's own label, the `label` argument"),
            (model.decode(encoded_with(torch.tensor([label])).repeat(10, 1), digits.flip(0)),
             "the rows run from 9 down to 0: row y should show digit y, so decode with the labels in order 0…9"),
        ])
    if not close(images, expected):
        raise Mistake("the images differ from the lab's: encode the image once, with its own label, take the mean μ "
                      "(no sample), and decode that one code with each label 0…9 in turn")
    return "your style transfer matches vae_lab.conditional.style_transfer: one style z, ten digits."


# ---- 11_conv_vae ----


CONV_CASES = ((28, 4, 2, 1), (14, 4, 2, 1), (28, 3, 1, 1), (28, 5, 1, 0), (28, 3, 2, 0), (7, 3, 2, 1),
              (29, 4, 2, 1), (28, 5, 3, 0))  # (n, k, s, p); the last two tell rounding down from rounding to nearest
TRANSPOSED_CASES = ((7, 4, 2, 1), (14, 4, 2, 1), (7, 3, 2, 1), (4, 5, 1, 2), (5, 2, 2, 0))
CONV_SLIPS = {
    lambda n, k, s, p: (n + 2 * p - k) // s: "one short: count the first position of the kernel too, the + 1",
    lambda n, k, s, p: (n + p - k) // s + 1: "the padding adds p pixels on *each* side of the image: n + 2p",
    lambda n, k, s, p: (n - k) // s + 1: "you left out the padding: it adds p pixels on each side, n + 2p",
    lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1: "round down, not up: a step that would take the kernel past the "
                                                    "padded edge is not made, ⌊(n + 2p − k) / s⌋ + 1",
    lambda n, k, s, p: round((n + 2 * p - k) / s) + 1: "round down, not to the nearest: a step that would take the "
                                                       "kernel past the padded edge is not made, ⌊(n + 2p − k) / s⌋ + 1",
    lambda n, k, s, p: n // s: "n // s holds for the lab's layers only (k = 2p + s); use ⌊(n + 2p − k) / s⌋ + 1",
}
TRANSPOSED_SLIPS = {
    lambda n, k, s, p: n * s - 2 * p + k: "n inputs are n − 1 strides apart: (n − 1)·s − 2p + k",
    lambda n, k, s, p: (n + 2 * p - k) // s + 1: "that is the convolution's formula; a transposed convolution runs it "
                                                 "backwards, n = (n_out + 2p − k) / s + 1, so n_out = (n − 1)·s − 2p + k",
    lambda n, k, s, p: (n - 1) * s - p + k: "the padding crops p pixels from *each* side of the output: − 2p",
    lambda n, k, s, p: (n - 1) * s + k: "you left out the padding: it crops p pixels from each side, − 2p",
    lambda n, k, s, p: n * s: "n·s holds for the lab's layers only (k = 2p + s); use (n − 1)·s − 2p + k",
}


def torch_output_size(n: int, kernel: int, stride: int, padding: int, transposed: bool) -> int:
    """The side length torch's conv2d (or conv_transpose2d) gives an n×n image: the ground truth of the exercise."""
    layer = F.conv_transpose2d if transposed else F.conv2d
    return layer(torch.zeros(1, 1, n, n), torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding).shape[-1]


def size_hint(sizes: list[Any], cases: tuple[tuple[int, int, int, int], ...], transposed: bool,
              slips: dict[Callable[[int, int, int, int], int], str]) -> str:
    """No hint ("") when ``sizes`` match torch on ``cases``; else the hint of the slip that gives them, or the
    differences."""
    truth = [torch_output_size(*case, transposed) for case in cases]
    if sizes == truth:
        return ""
    known = next((text for formula, text in slips.items() if sizes == [formula(*case) for case in cases]), "")
    return known or "torch says " + "; ".join(
        f"n={n}, k={k}, s={s}, p={p} gives {right}, you said {size}"
        for (n, k, s, p), size, right in zip(cases, sizes, truth) if size != right)


@exercise(advice="compute the sizes yourself, with integer arithmetic")
def check_output_size(answer: Callable[[int, int, int, int, bool], int]) -> str:
    """Compare ``answer(n, kernel, stride, padding, transposed)`` with the side lengths torch's conv2d and
    conv_transpose2d give, for the lab's four layers and nine others."""
    conv = [answer(*case, False) for case in CONV_CASES]
    transposed = [answer(*case, True) for case in TRANSPOSED_CASES]
    wrong_type = [size for size in conv + transposed if not isinstance(size, int) or isinstance(size, bool)]
    if wrong_type:
        raise Mistake(f"return a whole number (an int), got {wrong_type[0]!r} of type {type(wrong_type[0]).__name__}; "
                      "divide with //, which rounds down, not with /")
    hint = size_hint(conv, CONV_CASES, False, CONV_SLIPS)
    if hint:
        raise Mistake(hint)
    hint = size_hint(transposed, TRANSPOSED_CASES, True, TRANSPOSED_SLIPS)
    if hint:
        raise Mistake(f"the convolutions are right, the transposed ones not yet: {hint}")
    return (f"your sizes match torch for all {len(CONV_CASES) + len(TRANSPOSED_CASES)} layers, including the lab's "
            "28 → 14 → 7 and 7 → 14 → 28.")


# ---- 12_learned_priors ----


VAMP_SIZES = "this check's codes are 6 latents of 4 dimensions, its prior has K = 5 components of 4 dimensions"


def gaussian_log_densities(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, variance: torch.Tensor | None = None,
                           normalised: bool = True) -> torch.Tensor:
    """log N(z_n; m_k, diag s_k²) for every code n and component k, (N, K), in float64; ``variance`` replaces s_k²
    in the square and ``normalised=False`` drops log s² + log 2π, to build the slips."""
    z, means, logvars = z.double(), means.double(), logvars.double()
    variance = logvars.exp() if variance is None else variance.double()
    terms = (z[:, None, :] - means).pow(2) / variance + ((logvars + math.log(2 * math.pi)) if normalised else 0)
    return -0.5 * terms.sum(dim=-1)


@exercise(log_mixture_density, GaussianMixturePrior, log_normal, log_prior,
          advice="compute the K Gaussian log densities with torch (broadcast z[:, None, :] against the (K, D) "
                 "components), then combine them with torch.logsumexp",
          sizes=VAMP_SIZES)
def check_vamp_log_density(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare ``answer(z, means, logvars)`` with log (1/K) Σ_k N(z; m_k, s_k²) for 6 codes and 5 components, one
    code so far from every component that exp() of its log densities is 0 even in float64; then the known answer:
    with K = 1 it is that one Gaussian's log density."""
    generator = seeded(12)
    z, means = torch.randn(6, 4, generator=generator), torch.randn(5, 4, generator=generator)
    logvars = torch.randn(5, 4, generator=generator) - 1
    z[5] = 40.0  # far from every component: log densities near −10,000
    densities = gaussian_log_densities(z, means, logvars)
    expected = torch.logsumexp(densities, dim=1) - math.log(5)
    result = expect_tensor(answer(z.clone(), means.clone(), logvars.clone()), (6,), "one log density per code", {
        (6, 5): "that is one log density per code and component: combine the K components (dim=1) with logsumexp",
        (5,): "one log density per code z, not per component: reduce over the K components",
        (6, 4): "the Gaussian's log density sums over the D dimensions before the components are combined",
        (6, 5, 4): "sum the log density over the D dimensions, then combine the K components"})
    if not torch.isfinite(result[:5]).all():
        raise Mistake("some values are not finite: check the division by the variance exp(log s²)")
    if not torch.isfinite(result[5]):
        raise Mistake("the code far from every component gets −inf: exp() of a log density near −10,000 is 0 even in "
                      "float64, and log 0 = −inf. Combine the K log densities with torch.logsumexp instead of "
                      "log(sum(exp(...)))")
    known_slip(result, [
        (expected + math.log(5), "that is log Σ_k N(z; m_k, s_k²): the prior is the *average* of its K components, "
                                 "so subtract log K"),
        (densities.mean(dim=1), "that is the mean of the K log densities; the prior is the log of the mean density, "
                                "log (1/K) Σ_k exp(ℓ_k), which is larger (Jensen): use logsumexp − log K"),
        (densities.max(dim=1).values, "that is the nearest component alone: add every component's share with logsumexp"),
        (densities.max(dim=1).values - math.log(5), "that keeps only the nearest component: logsumexp adds every "
                                                    "component's share"),
        (expected + 2 * math.log(2 * math.pi), "forgot the log 2π: each of the D dimensions adds −½ log 2π"),
        (torch.logsumexp(gaussian_log_densities(z, means, logvars, normalised=False), 1) - math.log(5),
         "the normalisation is missing: each dimension adds −½ (log s² + log 2π)"),
        (torch.logsumexp(gaussian_log_densities(z, means, logvars, logvars.mul(0.5).exp()), 1) - math.log(5),
         "divide the square by the variance s² = exp(log s²), not by s = exp(½ log s²)"),
        (torch.logsumexp(gaussian_log_densities(z, means, logvars, logvars), 1) - math.log(5),
         "log s² is a logarithm: divide the square by the variance exp(log s²), not by log s²"),
    ])
    if not close(result, expected):
        raise Mistake("the values differ from log (1/K) Σ_k N(z; m_k, s_k²): compute each component's log density "
                      "−½ Σ_d [(z_d − m_kd)² / s_kd² + log s_kd² + log 2π], then logsumexp over k, minus log K")
    single = expect_tensor(answer(z[:5].clone(), means[:1].clone(), logvars[:1].clone()), (5,),
                           "one log density per code")
    if not close(single, densities[:5, 0]):
        raise Mistake("with one component (K = 1) the prior must be that Gaussian's log density: take the K from the "
                      "components' shape, means.shape[0], instead of a fixed number")
    return ("your log p(z) matches the VampPrior's on all 6 codes, stays finite far from every component, and with "
            "K = 1 is the Gaussian's log density.")


# ---- 13_hierarchy_of_latents ----


KL_PAIRS_SIZES = "this check's batch has 6 pairs of Gaussians in 20 dimensions"


@exercise(gaussian_kl, gaussian_kl_per_unit,
          advice="compute ½ Σ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1] over the latent dimensions "
                 "(dim=1) with torch",
          sizes=KL_PAIRS_SIZES)
def check_kl_between_gaussians(answer: Callable[..., torch.Tensor]) -> str:
    """Compare ``answer(mu_q, logvar_q, mu_p, logvar_p)`` with `vae_lab.loss.gaussian_kl` on 6 pairs of diagonal
    Gaussians in 20 dimensions, then the known answers: 0 when q = p, and 03's KL when p = N(0, I)."""
    mu_q, logvar_q, mu_p, logvar_p = torch.randn(4, 6, 20, generator=seeded(13)).unbind()
    args = lambda: (mu_q.clone(), logvar_q.clone(), mu_p.clone(), logvar_p.clone())
    expected = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
    kl = expect_one_kl_per_image(answer(*args()), expected)
    per_unit = lambda terms: 0.5 * terms.sum(dim=1)
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    known_slip(kl, [
        (gaussian_kl(mu_p, logvar_p, mu_q, logvar_q), "that is KL(p ‖ q), the other direction: the loss needs "
                                                      "KL(q ‖ p), the expectation under q"),
        (kl_divergence(mu_q, logvar_q), "that is the KL to N(0, I), notebook 03's: here the prior p(z₁|z₂) has its own "
                                        "μ_p and σ_p²"),
        (2 * expected, "twice too large: forgot the ½ in front of the sum?"),
        (-expected, "sign: the KL is never negative; check the order log σ_p² − log σ_q²"),
        (per_unit(logvar_q - logvar_p + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1),
         "the log-variance term is upside down: log σ_p² − log σ_q², the prior's first"),
        (per_unit(logvar_p - logvar_q + var_q + (mu_q - mu_p).pow(2) - 1),
         "divide σ_q² + (μ_q − μ_p)² by the prior's variance σ_p²"),
        (per_unit(logvar_p - logvar_q + (var_q + (mu_q - mu_p).pow(2)) / logvar_p.mul(0.5).exp() - 1),
         "divide by the variance σ_p² = exp(log σ_p²), not by σ_p = exp(½ log σ_p²)"),
        (per_unit(logvar_p - logvar_q + (var_q + (mu_q - mu_p).pow(2)) / var_p), "forgot the − 1 inside the sum "
                                                                                 "(it adds ½ per dimension)"),
        (per_unit(logvar_p - logvar_q + (var_q + (mu_q - mu_p)) / var_p - 1), "the means' difference enters squared: "
                                                                             "(μ_q − μ_p)²"),
        (per_unit(logvar_p - logvar_q + (var_q + mu_q.pow(2)) / var_p - 1), "subtract the prior's mean: (μ_q − μ_p)², "
                                                                            "not μ_q²"),
        (expected / 20, "you averaged over the latent dimensions; the KL of independent dimensions is their sum (dim=1)"),
    ])
    if not close(kl, expected):
        raise Mistake("the values differ from ½ Σ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1]: compare "
                      "each term with yours")
    zeros = torch.zeros_like(mu_q)
    same = expect_tensor(answer(mu_q.clone(), logvar_q.clone(), mu_q.clone(), logvar_q.clone()), (6,), "one KL per image")
    standard = expect_tensor(answer(mu_q.clone(), logvar_q.clone(), zeros, zeros.clone()), (6,), "one KL per image")
    if not close(same, torch.zeros(6)) or not close(standard, kl_divergence(mu_q, logvar_q)):
        raise Mistake("right on random pairs, but not 0 when q = p or not 03's KL when p = N(0, I): compute every term "
                      "from the four arguments you are given")
    return ("your KL matches vae_lab.loss.gaussian_kl on all 6 pairs, is 0 when q = p, and is notebook 03's KL when "
            "p = N(0, I).")


# ---- 14_vq_vae ----


QUANTIZE_SIZES = "this check quantises 8 vectors of 3 dimensions with a codebook of K = 5 codes"


def quantize_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """8 encoder outputs (8, 3) and a codebook (5, 3) whose codes have different lengths, so that the largest dot
    product and the nearest code disagree, as do the wrong axis's and the right one's, both leaves of the graph."""
    generator = seeded(14)
    codebook = torch.randn(5, 3, generator=generator) * torch.tensor([[0.3], [1.0], [2.5], [0.6], [4.0]])
    encoded = torch.randn(8, 3, generator=generator) * 1.5
    return encoded.requires_grad_(), codebook.requires_grad_()


def index_slips(encoded: torch.Tensor, codebook: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The indices that the likely slips pick, each with its hint."""
    squares = (encoded[:, None, :] - codebook[None]).pow(2).detach()
    return [
        (squares.sum(dim=2).argmax(dim=1), "argmax picks the farthest code: the nearest code has the smallest "
                                           "distance, so take the argmin"),
        ((encoded @ codebook.T).argmax(dim=1), "the largest dot product z·e is not the nearest code when codes differ "
                                               "in length: compare squared distances ‖z − e‖²"),
        (squares.sum(dim=1).argmin(dim=1), "the distance is summed over the wrong axis: sum the squared differences "
                                           "over the D dimensions of each vector, then take the argmin over the K codes"),
    ]


def gradient_hint(encoded_grad: torch.Tensor | None, codebook_grad: torch.Tensor | None, upstream: torch.Tensor) -> None:
    """Raise `Mistake` unless the gradient z_q receives reaches z_e unchanged and the codebook gets none."""
    reaches_encoder = encoded_grad is not None and bool(encoded_grad.abs().sum() > 0)
    reaches_codebook = codebook_grad is not None and bool(codebook_grad.abs().sum() > 0)
    if not reaches_encoder and reaches_codebook:
        raise Mistake("your z_q has the right values, but its gradient goes to the codebook and none reaches the "
                      "encoder: that is e_k without the straight-through estimator. Write z_q so that its value is e_k "
                      "while its gradient passes to z_e unchanged, as in the maths above")
    if encoded_grad is not None and not reaches_encoder:
        raise Mistake("the gradient to z_e cancels to 0: the detach is on the wrong side, around e_k alone. Stop the "
                      "gradient of the whole difference e_k − z_e, so that z_e keeps its own")
    if not reaches_encoder:
        raise Mistake("no gradient reaches the encoder's z_e (nor the codebook): z_q was computed under "
                      "torch.no_grad() or detached whole; only the difference e_k − z_e is detached")
    if reaches_codebook:
        raise Mistake("your z_q also sends gradient to the codebook: the straight-through z_q passes its gradient to "
                      "z_e only (the codebook term of the loss moves the codes), so detach the difference e_k − z_e")
    if not close(encoded_grad, upstream):
        raise Mistake("the gradient reaching z_e is not the gradient z_q received: straight-through passes it "
                      "unchanged (∂z_q/∂z_e = I), so z_e must enter z_q once, with weight 1")


@exercise(quantize, VectorQuantizer, advice="compute the squared distances to every code with torch, take the "
          "argmin over the codes, and build z_q with .detach()", sizes=QUANTIZE_SIZES)
def check_quantize(answer: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> str:
    """Compare ``answer(encoded, codebook)`` with nearest-neighbour quantisation on 8 vectors and 5 codes: the
    indices, the values of z_q (the chosen codes), and the straight-through gradient, which reaches z_e unchanged and
    leaves the codebook to its own loss term."""
    encoded, codebook = quantize_inputs()
    expected_indices = torch.cdist(encoded.detach(), codebook.detach()).argmin(dim=1)
    result = answer(encoded, codebook)
    if not isinstance(result, tuple) or len(result) != 2:
        raise Mistake(f"return two things, z_q and the indices (return quantized, indices), got "
                      f"{type(result).__name__}" + (f" of {len(result)}" if isinstance(result, tuple) else ""))
    quantized, indices = result
    if isinstance(quantized, torch.Tensor) and isinstance(indices, torch.Tensor) and not quantized.is_floating_point() \
            and indices.is_floating_point():
        raise Mistake("the two are swapped: return z_q first, then the indices")
    indices = expect_tensor(indices, (8,), "one code index per vector", {
        (5,): "that is one index per code: take the argmin over the K codes (dim=1 of the (N, K) distances)",
        (8, 5): "those are the distances to every code (or a one-hot): take their argmin over the codes",
        (8, 1): "drop the extra dimension: one index per vector, shape (N,)"})
    if indices.is_floating_point():
        raise Mistake("the indices must be integers (argmin gives them); they index the codebook")
    indices = indices.long()
    for slip, hint in index_slips(encoded, codebook):
        if torch.equal(indices, slip) and not torch.equal(slip, expected_indices):
            raise Mistake(hint)
    if not torch.equal(indices, expected_indices):
        raise Mistake("some indices are not the nearest code: k = argmin_j ‖z_e − e_j‖² for each vector")
    quantized = expect_tensor(quantized, (8, 3), "z_q, one D-vector per encoder output", {
        (3, 8): "transposed: one row per vector, (N, D), as the encoder outputs come in",
        (8, 1, 3): "drop the extra dimension: one code vector per encoder output, (N, D)",
        (1, 8, 3): "drop the extra dimension: one code vector per encoder output, (N, D)",
        (8, 5, 3): "that is every code for every vector: keep only the chosen one, codebook[indices]",
        (5, 3): "that is the whole codebook: pick the chosen code of each vector, codebook[indices]"})
    if close(quantized, encoded):
        raise Mistake("z_q is z_e itself: its value must be the chosen code e_k, so the decoder sees only codebook "
                      "vectors")
    if not close(quantized, codebook[expected_indices]):
        raise Mistake("the values of z_q are not the chosen codes e_k: z_q = codebook[indices] in value")
    upstream = torch.randn(8, 3, generator=seeded(15))
    try:
        (quantized * upstream).sum().backward()
    except RuntimeError:
        raise Mistake("no gradient reaches the encoder's z_e (nor the codebook): z_q was computed under "
                      "torch.no_grad() or detached whole; only the difference e_k − z_e is detached") from None
    gradient_hint(encoded.grad, codebook.grad, upstream)
    return ("your quantiser picks the nearest of the 5 codes for all 8 vectors, returns their values, and passes "
            "the gradient straight through to the encoder, none to the codebook.")

