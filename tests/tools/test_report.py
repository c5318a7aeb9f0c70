"""`python -m vae_lab report`: every model scored the same way, and the README shows exactly what it wrote."""
import json
import re
from pathlib import Path

import pytest

from vae_lab.cli import main
from vae_lab.model import build_model
from vae_lab.tools.report import README_END, README_START, build_report, markdown_table, write_report

REFERENCE = {"fd": 0.5, "confidence": 0.99, "class_entropy": 2.3}
from vae_lab.zoo import PRETRAINED_CONFIGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rows(mnist):
    return build_report(mnist.subset(test_size=200), ["vae", "cvae", "vae_binarized"], iwae_samples=4, n_samples=300,
                        progress=False)


def test_every_row_holds_consistent_scores(rows):
    assert [r.name for r in rows] == ["vae", "cvae", "vae_binarized"]
    assert [r.pixels for r in rows] == ["gray", "gray", "binary"]
    for row in rows:
        assert row.parameters == build_model(PRETRAINED_CONFIGS[row.name]).parameter_count()
        assert row.epochs == 10 and row.train_seconds > 0
        assert 40 < row.nll < -row.elbo < 200, "the NLL estimate is below the negative ELBO"
        assert row.fd > 0 and 0.1 <= row.confidence <= 1 and 1.5 < row.class_entropy <= 2.303


def test_the_table_has_a_line_per_model_with_rounded_numbers(rows):
    table = markdown_table(rows, iwae_samples=4, test_images=200, reference=REFERENCE)
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(lines) == 3 and lines[0].startswith("| `vae` | gray | 652,824 | 10 |")
    assert f"{rows[1].nll:.2f}" in lines[1] and "K = 4" in table and "200 test images" in table


def test_write_report_replaces_only_the_readme_section(rows, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    table = markdown_table(rows, 4, 200, REFERENCE)
    write_report(rows, table, tmp_path / "out", readme)
    assert readme.read_text() == f"intro\n{README_START}\n{table}{README_END}\noutro\n"
    assert (tmp_path / "out" / "results.md").read_text() == table
    assert [r["name"] for r in json.loads((tmp_path / "out" / "results.json").read_text())] == ["vae", "cvae", "vae_binarized"]
    assert not list((tmp_path / "out").glob(".*")), "no temporary files are left behind"


def test_a_readme_without_a_results_section_is_named(rows, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="has no results section; add the lines"):
        write_report(rows, "table\n", tmp_path / "out", readme)
    assert readme.read_text() == "no markers here\n"
    readme.write_bytes(f"caf\xe9 {README_START}\n{README_END}\n".encode("latin-1"))  # a README saved in another encoding
    before = readme.read_bytes()
    with pytest.raises(ValueError, match=r"README.md is not UTF-8 text \(byte 3 is 0xe9\); fix its encoding"):
        write_report(rows, "table\n", tmp_path / "out", readme)
    assert readme.read_bytes() == before


def test_unknown_models_are_named(mnist):
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['gan'\]"):
        build_report(mnist, ["vae", "gan"])


def test_the_readme_table_is_the_one_the_report_wrote():
    readme = (ROOT / "README.md").read_text()
    section = re.search(re.escape(README_START) + r"\n(.*?)" + re.escape(README_END), readme, re.S).group(1)
    assert section == (ROOT / "docs" / "results.md").read_text()
    scores = json.loads((ROOT / "docs" / "results.json").read_text())
    assert [r["name"] for r in scores] == list(PRETRAINED_CONFIGS), "the table covers every shipped model"
    for row in scores:
        assert f"| `{row['name']}` | {row['pixels']} | {row['parameters']:,} | {row['epochs']} |" in section
        assert f"| {row['nll']:.2f} |" in section


def test_the_cli_writes_the_table(tmp_path, capsys):
    assert main(["report", "--models", "vae", "--iwae-samples", "2", "--test-size", "100", "--samples", "200",
                 "--out", str(tmp_path)]) == 0
    assert "| `vae` | gray |" in capsys.readouterr().out
    assert (tmp_path / "results.md").is_file() and (tmp_path / "results.json").is_file()


def test_learned_priors_and_two_layers_are_scored_like_every_model(mnist):
    rows = build_report(mnist.subset(test_size=100), ["vamp_prior", "hierarchy"], iwae_samples=4, n_samples=300,
                        progress=False)
    for row in rows:
        assert row.pixels == "binary" and row.epochs == 10
        assert row.parameters == build_model(PRETRAINED_CONFIGS[row.name]).parameter_count()
        assert 40 < row.nll < -row.elbo < 200 and row.fd > 0
