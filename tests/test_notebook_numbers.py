"""No stale numbers: a number the prose of a notebook states must come from that notebook's code, or from elsewhere
on record.

Reviewed-once text goes stale when a computation changes; this test keeps it honest. It reads every markdown cell of
the complete edition and finds the numbers that look measured:

- numbers with a decimal point (``105.6``, ``0.40``);
- ratios: ``4.2×``, ``18 times``, and ranges such as ``5 to 6 times``.

Each one must be backed by one of:

- an output of the same notebook that rounds to it (``105.62`` backs ``105.6``); a ratio must match a printed ratio
  (``4.2×``, ``4.2 times``);
- a literal on an ``assert`` line of the notebook, the place where a notebook states what must hold
  (``assert 4 < conv_step / mlp_step < 5`` backs "4 to 5 times"); a range is backed only this way, with both ends
  on one line, because a range is a claim about where a measurement falls;
- for a decimal (not a ratio): a literal in the notebook's code, which is a setting the prose may restate;
- ``FROM_ELSEWHERE`` below: published numbers and constants, each with its source.

Integers without "×" or "times" (epochs, sizes, seeds) are not checked: they are settings, not measurements.
"""
import json
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from vae_lab.tools.series import series

NOTEBOOKS = series()

# Numbers the notebooks may state without computing them, each with where it comes from.
FROM_ELSEWHERE = {
    "86.76": "Burda, Grosse & Salakhutdinov (2016), Table 1: VAE, one stochastic layer, k = 1",
    "85.54": "Burda et al. (2016), Table 1: IWAE, one stochastic layer, k = 5",
    "84.78": "Burda et al. (2016), Table 1: IWAE, one stochastic layer, k = 50",
    "0.69": "log 2, the entropy of a fair coin in nats",
    "0.9": "Adam's default β₁ (Kingma & Ba 2015; torch.optim.Adam)",
    "0.999": "Adam's default β₂ (Kingma & Ba 2015; torch.optim.Adam)",
    "86.05": "the `best` model's NLL, K = 5000 on all 10,000 binarised test digits: "
             "`python -m vae_lab evaluate vae_lab/pretrained/best.pt --iwae-samples 5000 --binarized` (23 min; README)",
    "92.75": "the `best` model's test ELBO from the same run (README)",
    "87.57": "the same network trained on the ELBO for 200 epochs, same command (README)",
}

NUMBER = r"\d[\d,]*(?:\.\d+)?"
DECIMAL = re.compile(r"(?<![\w.\\])(\d[\d,]*\.\d+)(?![\d.]*\w)")
RATIO = re.compile(rf"(?<![\w.])({NUMBER})(?:\s*×(?!\s*\d)|\s+(?:to|or|–)\s+({NUMBER})\s+times\b|\s+times\b)")
NOT_PROSE = [re.compile(r"```.*?```", re.S), re.compile(r"`[^`]*`"), re.compile(r"\]\([^)]*\)"),
             re.compile(r"arXiv:\S+")]


def plain(number: str) -> str:
    return number.replace(",", "")


def prose(markdown: str) -> str:
    """The markdown without code, link targets and arXiv identifiers, which state no measurement."""
    for pattern in NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    return markdown


def output_text(cell: dict) -> str:
    texts = []
    for output in cell.get("outputs", []):
        texts.append("".join(output.get("text", "")))
        for kind in ("text/plain", "text/markdown", "text/html"):
            texts.append("".join(output.get("data", {}).get(kind, "")))
    return "\n".join(texts)


def rounds_to(computed: str, stated: str) -> bool:
    """True if ``computed``, rounded to as many decimals as ``stated`` has, is ``stated`` (either rounding rule)."""
    places = Decimal(1).scaleb(-len(stated.partition(".")[2]))
    return any(Decimal(computed).quantize(places, rule) == Decimal(stated) for rule in (ROUND_HALF_UP, ROUND_HALF_EVEN))


class Backing:
    """What a notebook's code computes and states: its output numbers and ratios, assert literals and code literals."""

    def __init__(self, cells: list[dict]):
        code = [c for c in cells if c["cell_type"] == "code"]
        outputs = "\n".join(output_text(c) for c in code)
        self.outputs = {plain(n) for n in re.findall(NUMBER, outputs)}
        self.output_ratios = {plain(m.group(1)) for m in RATIO.finditer(outputs)}
        lines = [line for c in code for line in "".join(c["source"]).splitlines()]
        self.assert_lines = [{plain(n) for n in re.findall(NUMBER, line)} for line in lines
                             if line.lstrip().startswith("assert")]
        self.literals = {plain(n) for line in lines for n in re.findall(NUMBER, line.partition("#")[0])}

    def asserted(self, *numbers: str) -> bool:
        return any(set(numbers) <= line for line in self.assert_lines)

    def decimal(self, number: str) -> bool:
        return (number in FROM_ELSEWHERE or self.asserted(number) or number in self.literals
                or any(rounds_to(n, number) for n in self.outputs))

    def ratio(self, low: str, high: str | None) -> bool:
        if high is None:
            return (low in FROM_ELSEWHERE or self.asserted(low)
                    or any(rounds_to(n, low) for n in self.output_ratios))
        return self.asserted(low, high)


def unbacked_numbers(cells: list[dict]) -> list[str]:
    """The prose numbers of a notebook that nothing backs, as 'cell N: text'."""
    backing = Backing(cells)
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = prose("".join(cell["source"]))
        ratios = list(RATIO.finditer(text))
        inside_ratio = {m.start(1) for m in ratios}
        found += [f"cell {index}: {m.group(0)!r}" for m in DECIMAL.finditer(text)
                  if m.start(1) not in inside_ratio and not backing.decimal(plain(m.group(1)))]
        found += [f"cell {index}: {m.group(0)!r}" for m in ratios
                  if not backing.ratio(plain(m.group(1)), m.group(2) and plain(m.group(2)))]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_comes_from_the_code_or_a_source(path):
    unbacked = unbacked_numbers(json.loads(path.read_text())["cells"])
    assert not unbacked, (f"{path.name} states numbers that no output, assert or FROM_ELSEWHERE entry backs: "
                          f"{unbacked}; print them from the code, state them in an assert, or stop restating them")


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "source": text}


def code(source: str, printed: str = "") -> dict:
    return {"cell_type": "code", "source": source, "outputs": [{"output_type": "stream", "text": printed}]}


def test_a_range_the_measurement_left_is_caught():
    measured = code("print(table)", "conv step / MLP step: 4.2×\n")
    assert unbacked_numbers([measured, markdown("A conv step takes about 5 to 6 times as long.")]) \
        == ["cell 1: '5 to 6 times'"]
    assert unbacked_numbers([measured, markdown("A conv step takes about 4.2 times as long.")]) == []
    assert unbacked_numbers([code("assert 4 < conv_step / mlp_step < 5"), markdown("4 to 5 times as long")]) == []


def test_a_decimal_must_round_from_an_output_and_a_ratio_from_a_printed_ratio():
    printed = code("print(loss)", "test loss 105.62, 5.5 million multiply-adds\n")
    assert unbacked_numbers([printed, markdown("It reaches 105.6 nats.")]) == []
    assert unbacked_numbers([printed, markdown("It reaches 105.7 nats.")]) == ["cell 1: '105.7'"]
    assert unbacked_numbers([printed, markdown("It does 5.5× the arithmetic.")]) == ["cell 1: '5.5×'"]
    assert unbacked_numbers([printed, markdown("Burda et al. report 86.76; see `x = 1.5` and arXiv:1312.6114.")]) == []
