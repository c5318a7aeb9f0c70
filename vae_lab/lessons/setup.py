"""What every notebook shares: validated parameters, friendly one-line errors, and exercise feedback."""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

from ..config import Config, LabError, is_number, require_int
from ..runtime import configure_process

MNIST_TRAINING_IMAGES = 60_000


class LessonError(LabError, ValueError):
    """A mistake in a notebook's parameters or inputs, shown as one sentence instead of a traceback."""


def setup_notebook() -> None:
    """The first thing a notebook runs: the process-wide switches that make its training repeatable and fast."""
    configure_process()


PAPERMILL_PARAMETERS = "# Parameters\n"  # how papermill's injected cell begins, right after the parameters cell


def assigned_names(source: str) -> set[str]:
    """The names a cell assigns at its top level (``epochs = 10`` → {"epochs"})."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return set()
    return {target.id for node in body if isinstance(node, ast.Assign) for target in node.targets
            if isinstance(target, ast.Name)}


def refuse_unknown_injected_parameters() -> None:
    """Refuse a parameter papermill passed (``-p n_trian 500``) that the notebook's parameters cell does not set.

    Papermill adds such a name in a cell of its own and only warns; the kernel's input history shows that cell and the
    parameters cell just before it. Outside IPython, or without papermill, there is nothing to check.
    """
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    injected = [i for i, source in enumerate(history) if source.startswith(PAPERMILL_PARAMETERS) and i > 0]
    if injected:
        declared = assigned_names(history[injected[-1] - 1])
        unknown = sorted(assigned_names(history[injected[-1]]) - declared)
        if unknown:
            raise LessonError(f"unknown parameter(s) {unknown}: this notebook's parameters are {sorted(declared)}")


def lesson_config(**parameters: Any) -> Config:
    """Validate a notebook's parameters cell and turn it into a `Config`; the parameters are `Config`'s own fields.

    Run under papermill, it also refuses a passed parameter that the notebook does not have.
    """
    refuse_unknown_injected_parameters()
    known = [setting.name for setting in fields(Config)]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise LessonError(f"unknown parameter(s) {unknown}; the parameters cell may set {known}")
    train_size = parameters.get("train_size")
    if is_number(train_size) and train_size > MNIST_TRAINING_IMAGES:
        raise LessonError(f"train_size={train_size} but MNIST has {MNIST_TRAINING_IMAGES} training images; "
                          f"use at most {MNIST_TRAINING_IMAGES} (or None for all)")
    try:
        return Config(**parameters)
    except ValueError as error:
        raise LessonError(f"{error} (fix it in the parameters cell, or pass it with papermill -p)") from None


def whole_number(name: str, value: Any, most: int, least: int = 1) -> int:
    """Check a notebook parameter that counts something: a whole number from ``least`` to ``most``."""
    try:
        return require_int(name, value, minimum=least, maximum=most)
    except ValueError as error:
        raise LessonError(str(error)) from None


def yes_or_no(name: str, value: Any) -> bool:
    """Check a notebook parameter that switches something on or off."""
    if not isinstance(value, bool):
        raise LessonError(f"{name} must be True or False, got {value!r}")
    return value


def runs_root() -> Path:
    """Where notebooks keep their training runs: ``runs/`` of the checkout, else of the working folder (as in Colab)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout / "runs" if (checkout / "pyproject.toml").is_file() else Path.cwd() / "runs"


def changed_settings(config: Config) -> list[str]:
    """The settings of ``config`` that differ from the lab's, as ``name=value`` (``["epochs=1", "seed=3"]``)."""
    defaults = Config().to_dict()
    return [f"{name}={value}" for name, value in config.to_dict().items() if value != defaults[name]]


def run_folder(notebook: str, config: Config) -> Path:
    """The run folder of ``notebook`` for these settings: ``runs/04_training/lab-settings`` for the lab's defaults,
    ``runs/04_training/epochs=1,seed=3`` otherwise. Changed parameters start their own run instead of clashing."""
    return runs_root() / notebook / (",".join(changed_settings(config)) or "lab-settings")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def repository_url() -> str:
    """The repository URL, defined once in pyproject's [project.urls]."""
    for entry in importlib.metadata.metadata("vae-lab").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise LookupError("pyproject.toml has no [project.urls] Repository entry")


def release() -> str:
    """The release the notebooks are written against: the git tag ``v{version}`` of pyproject's [project] version."""
    return f"v{importlib.metadata.version('vae-lab')}"


def colab_url(notebook: str) -> str:
    """The 'Open in Colab' link of ``notebook`` (e.g. 'notebooks/01_data_and_encoder.ipynb') at the release."""
    return repository_url().replace("https://github.com/", "https://colab.research.google.com/github/") \
        + f"/blob/{release()}/{notebook}"


def feedback(passed: bool, success: str, hint: str) -> bool:
    """Print a ✅ with ``success`` or a ❌ with ``hint``; return whether the check passed."""
    print(f"✅ {success}" if passed else f"❌ Not yet: {hint}")
    return passed


def attempt(answer: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """Call a student's function; (False, None) with a nudge when it still holds the ``...`` stub."""
    try:
        result = answer(*args)
    except NotImplementedError:
        print("✏️  Exercise not attempted yet: replace the `raise NotImplementedError` with your code, then rerun.")
        return False, None
    if result is None or result is Ellipsis:
        print("✏️  Exercise not attempted yet: your function returns nothing; fill in the `...` and rerun.")
        return False, None
    return True, result


class WriteItYourself(LessonError):
    """An exercise's answer called the lab's own version of the code the exercise asks the student to write."""


Check = Callable[[Callable[..., Any]], bool]
Namespace = ModuleType | type | dict[str, Any]


def _lab_namespaces() -> list[Namespace]:
    """Everywhere the lab binds a function: its loaded modules and the classes they define (whose methods live there)."""
    modules = [module for name, module in list(sys.modules.items()) if name == "vae_lab" or name.startswith("vae_lab.")]
    classes = {id(value): value for module in modules for value in vars(module).values()
               if isinstance(value, type) and value.__module__.startswith("vae_lab.")}
    return [*modules, *classes.values()]


def _bindings(functions: Sequence[Callable[..., Any]], namespaces: Sequence[Namespace]
              ) -> list[tuple[Namespace, str, Callable[..., Any]]]:
    """Each (namespace, name, function) where a name in ``namespaces`` is bound to one of ``functions``."""
    wanted = {id(function) for function in functions}
    return [(namespace, name, value) for namespace in namespaces
            for name, value in list((namespace if isinstance(namespace, dict) else vars(namespace)).items())
            if id(value) in wanted]


def _rebind(namespace: Namespace, name: str, value: Callable[..., Any]) -> None:
    """Bind ``name`` to ``value`` in a globals dict, a module or a class."""
    if isinstance(namespace, dict):
        namespace[name] = value
    else:
        setattr(namespace, name, value)


def _lab_name(function: Callable[..., Any], lab: Sequence[Namespace]) -> str:
    """The shortest dotted name under which the ``lab`` namespaces offer ``function``: 'vae_lab.kl_divergence',
    'vae_lab.model.VAE.sample'."""
    names = [f"{namespace.__name__}.{name}" if isinstance(namespace, ModuleType)
             else f"{namespace.__module__}.{namespace.__qualname__}.{name}"
             for namespace, name, _ in _bindings([function], lab)]
    return min(names, key=len, default=function.__qualname__)


def _refusal(function: Callable[..., Any], advice: str, lab: Sequence[Namespace]) -> str:
    """The one line that tells the student to write ``function`` themselves, and how."""
    return f"write it yourself: you called {_lab_name(function, lab)}; {advice}"


def _stand_in(message: str) -> Callable[..., Any]:
    """A stand-in for a refused function: it raises `WriteItYourself` with ``message`` instead of running."""
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise WriteItYourself(message)

    return refused


@contextmanager
def refusing(functions: Sequence[Callable[..., Any]], advice: str, answer: Callable[..., Any]) -> Iterator[None]:
    """While the block runs, calling any of ``functions`` raises `WriteItYourself`. Each is swapped out wherever it is
    bound: in the lab's modules, on the lab's classes (methods such as `VAE.sample`), and in ``answer``'s globals, where
    a notebook's ``from vae_lab import …`` put it. Everything is put back when the block ends."""
    lab = _lab_namespaces()
    bindings = _bindings(functions, [*lab, getattr(answer, "__globals__", {})])
    stand_ins = {id(function): _stand_in(_refusal(function, advice, lab)) for function in functions}
    try:
        for namespace, name, function in bindings:
            _rebind(namespace, name, stand_ins[id(function)])
        yield
    finally:
        for namespace, name, function in reversed(bindings):
            _rebind(namespace, name, function)


def own_work(*library: Callable[..., Any], solution: Callable[..., Any], advice: str) -> Callable[[Check], Check]:
    """Make a check refuse shortcuts: each call of the student's answer runs inside `refusing` the lab's ``library``
    functions and the reference ``solution``, and an answer that calls one of them, or is one of the ``library``
    functions, gets ❌ "write it yourself: you called …; ``advice``" and False. (The reference ``solution`` itself passes:
    the lab's tests give it to each check.)"""
    def decorate(check: Check) -> Check:
        @functools.wraps(check)
        def checked(answer: Callable[..., Any]) -> bool:
            def guarded(*args: Any) -> Any:
                with refusing([*library, solution], advice, answer):
                    return answer(*args)
            if any(answer is function for function in library):
                return feedback(False, "", _refusal(answer, advice, _lab_namespaces()))
            try:
                return check(guarded)
            except WriteItYourself as error:
                return feedback(False, "", str(error))
        return checked
    return decorate
