"""The two ways to install agree, and the commands the README promises exist."""
import re
from pathlib import Path

import pytest

from vae_lab import VAE, Config
from vae_lab.train import make_optimizer

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement(text: str) -> tuple[str, str]:
    name, bound = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", text).groups()
    return CONDA_TO_PIP.get(name.lower(), name.lower()), bound.replace(" ", "")


def conda_packages() -> dict[str, str]:
    section = (ROOT / "environment.yml").read_text().split("dependencies:\n", 1)[1]
    packages = re.findall(r"^  - ([A-Za-z][^:\n]*)$", section, re.M)
    return dict(requirement(p) for p in packages if p != "pip")


def test_environment_yml_lists_what_pyproject_lists():
    project = pyproject()["project"]
    pip = dict(requirement(r) for r in project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pip.update(requirement(r) for r in extra)
    conda = conda_packages()
    assert conda.pop("python") == project["requires-python"]
    assert conda == pip


def test_environment_yml_installs_the_package_itself_from_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert "  - conda-forge" in text and re.search(r"- pip:\n\s+- -e \.", text)


def test_the_readme_commands_exist_and_ci_calls_the_test_command():
    readme, makefile = (ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()
    assert "make run" in readme and "make test" in readme
    for target in ("setup", "run", "test", "lab", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_the_makefile_torch_pins_satisfy_pyproject():
    pins = dict(re.findall(r"(torch|torchvision)==([\d.]+)", (ROOT / "Makefile").read_text()))
    bounds = dict(requirement(r) for r in pyproject()["project"]["dependencies"])
    for name, version in pins.items():
        low = bounds[name].removeprefix(">=")
        assert tuple(map(int, version.split("."))) >= tuple(map(int, low.split("."))), name


def test_the_torch_floor_has_the_fused_cpu_adam_that_fit_uses():
    """torch 2.4 added fused Adam for CPU tensors (pytorch/pytorch#123074); torch 2.3 refuses fused=True on the CPU."""
    optimizer = make_optimizer(VAE(Config(hidden_dim=4, latent_dim=2)))
    assert optimizer.defaults["fused"] and next(iter(optimizer.param_groups[0]["params"])).device.type == "cpu"
    floors = dict(requirement(r) for r in pyproject()["project"]["dependencies"])
    assert tuple(map(int, floors["torch"].removeprefix(">=").split("."))) >= (2, 4), "fit needs torch>=2.4"
    assert tuple(map(int, floors["torchvision"].removeprefix(">=").split("."))) >= (0, 19), "torchvision 0.19 pairs 2.4"
