"""scripts/install_torch.py: the CPU-only wheels where they can be had, PyPI's build otherwise, said in one line."""
import http.server
import importlib.util
import socket
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_torch.py"
PACKAGES = "torch==2.14.1 torchvision==0.29.1"


@pytest.fixture
def installer(monkeypatch):
    """The script as a module, with pip replaced by a recorder of its calls."""
    spec = importlib.util.spec_from_file_location("install_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.calls = []
    monkeypatch.setattr(module, "pip_install", lambda *arguments: module.calls.append(list(arguments)))
    monkeypatch.setattr(module, "has_nvidia_gpu", lambda: False)
    return module


@pytest.fixture
def local_index():
    """A local index that answers 200 for any path, standing in for the CPU-only index."""
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/whl/cpu"
    server.shutdown()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/whl/cpu"


def test_an_unreachable_index_falls_back_to_pypi_at_once_in_one_line(installer, capsys):
    installer.main(PACKAGES, closed_port())
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and "can't be reached" in printed[0] and "TORCH_INDEX=" in printed[0]
    assert installer.calls == [PACKAGES.split()]


def test_a_reachable_index_gives_the_cpu_only_wheels(installer, local_index, capsys):
    installer.main(PACKAGES, local_index)
    assert capsys.readouterr().out == f"torch: installing the CPU-only build from {local_index}\n"
    assert installer.calls == [["--no-deps", "--index-url", local_index, *PACKAGES.split()], PACKAGES.split()]


def test_a_gpu_machine_keeps_the_cuda_build_without_asking_the_index(installer, local_index, monkeypatch, capsys):
    monkeypatch.setattr(installer, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(installer, "reachable", lambda index: pytest.fail("a GPU machine must not probe the index"))
    installer.main(PACKAGES, local_index)
    assert "CUDA" in capsys.readouterr().out and installer.calls == [PACKAGES.split()]


def test_an_empty_index_skips_the_cpu_only_route(installer, capsys):
    installer.main(PACKAGES, "")
    assert "TORCH_INDEX is empty" in capsys.readouterr().out and installer.calls == [PACKAGES.split()]


def test_reachable_answers_within_its_timeout(installer, local_index):
    assert installer.reachable(local_index) and not installer.reachable(closed_port())
    assert not installer.reachable("not a url")
