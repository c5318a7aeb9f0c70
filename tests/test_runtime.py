"""`import vae_lab` changes nothing process-wide; `configure_process` is what the starter of a process calls."""
import subprocess
import sys

DENORMAL_KEPT = "torch.tensor([1e-40]).mul(1.0).item() != 0"  # False once denormals are flushed to zero


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_the_lab_changes_neither_the_environment_nor_the_float_mode():
    code = ("import os, torch; e = dict(os.environ); m = torch.get_default_dtype(); "
            "import vae_lab, vae_lab.train, vae_lab.evaluate, vae_lab.lessons.setup; from vae_lab import VAE, fit; "
            f"print(dict(os.environ) == e, torch.get_default_dtype() == m, {DENORMAL_KEPT})")
    assert run(code) == "True True True"


def test_configure_process_flushes_denormals_and_sets_the_reproducibility_switches():
    code = ("import os, torch; from vae_lab.runtime import configure_process; configure_process(); "
            f"print(os.environ['MKL_CBWR'], os.environ['MKL_DYNAMIC'], os.environ['OMP_DYNAMIC'], {DENORMAL_KEPT})")
    assert run(code) == "AUTO FALSE FALSE False"



def test_importing_the_lab_loads_no_torch_until_a_name_is_used():
    code = ("import sys, vae_lab; before = 'torch' in sys.modules; from vae_lab import VAE; "
            "print(before, 'torch' in sys.modules, VAE.__module__, sorted(vae_lab.__all__) == sorted(dir(vae_lab))[-15:])")
    assert run(code).split()[:3] == ["False", "True", "vae_lab.model"]
