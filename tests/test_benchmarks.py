"""Smoke test of the benchmarks: they run, exit 0 and print well-formed numbers (never timing targets)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NUMBER = r"\d+(?:\.\d+)?"


def run(script: str, *args: str) -> str:
    # One thread: on a busy 2-core machine, two OpenMP threads make every op wait for a descheduled one.
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--threads", "1"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_train_speed_quick_prints_the_ratio_and_the_peak_lines() -> None:
    out = run("train_speed.py", "--quick")
    assert re.search(rf"^speedup vs textbook: {NUMBER}x \(target >= 6x\) (PASS|MISS)$", out, re.M), out
    assert re.search(rf"^achieved {NUMBER} GFLOP/s = {NUMBER}% of measured sgemm peak {NUMBER} GFLOP/s "
                     r"\(target >= 60%\) (PASS|MISS)$", out, re.M), out
    assert re.search(r"^torch \S+ \| \d+ threads \| CPU: .+$", out, re.M), out
    assert re.search(rf"^floor of a batch-128 step: .+ = {NUMBER} ms\. .+ at most {NUMBER} img/s = {NUMBER}x the textbook "
                     rf"loop and {NUMBER}% of the sgemm peak$", out, re.M), out


def test_options_quick_prints_the_table_profile_and_ceiling() -> None:
    out = run("options.py", "--quick")
    assert re.search(rf"^vae_lab now: .+ {NUMBER} +1\.00x", out, re.M), out
    assert len(re.findall(rf"^.+ {NUMBER} +{NUMBER}x +{NUMBER}-{NUMBER}", out, re.M)) >= 8, out
    assert "aten::mm" in out, out
    assert re.search(rf"^ceiling: .+ reaches {NUMBER}% of the sgemm peak; .+ reaches {NUMBER}%$", out, re.M), out


def test_thread_share_quick_prints_each_rules_threads_and_the_median_ratio() -> None:
    result = subprocess.run([sys.executable, str(BENCHMARKS / "thread_share.py"), "--quick", "--load", "0"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"thread_share.py failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(rf"^ +1 \| as it is +\| +{NUMBER} +\d+ \| +{NUMBER} +\d+ \| +{NUMBER}x$", result.stdout, re.M), \
        result.stdout
    assert re.search(rf"^median old/new, as it is: {NUMBER}x \(min {NUMBER}x, max {NUMBER}x\)$", result.stdout, re.M)


def test_best_model_quick_prints_one_row_per_choice_with_its_gain() -> None:
    out = run("best_model.py", "--quick")
    rows = re.findall(rf"^((?:ELBO|\+ ).+?) +\d+ +{NUMBER}(?: +(-?{NUMBER}))?$", out, re.M)
    assert [label.split(",")[0] for label, _ in rows] == ["ELBO", "+ IWAE bound", "+ second stochastic layer z2 (30 units)",
                                                          "+ VampPrior over z2 (200 pseudo-inputs)"], out
    assert rows[0][1] == "" and all(gain for _, gain in rows[1:]), "every row after the first shows its gain"
