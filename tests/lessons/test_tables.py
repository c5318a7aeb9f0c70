"""The lessons' plain-text tables (vae_lab.lessons.tables)."""
import pytest

from vae_lab.lessons.tables import text_table


def test_text_table_aligns_numbers_right_and_words_left():
    table = text_table(["", "MLP", "conv", "ratio"], [["parameters", 652824, 258025, "0.40×"],
                                                     ["ELBO", -103.5617, -100.0, "0.97×"],
                                                     ["kind", "Linear", "Conv2d", ""]])
    lines = table.splitlines()
    assert lines[1].split() == ["parameters", "652,824", "258,025", "0.40×"]
    assert lines[2].split() == ["ELBO", "-103.56", "-100.00", "0.97×"]
    assert len({len(line) for line in lines[:3]}) == 1, "header and numeric rows end in one column"
    assert lines[3].index("Linear") == lines[0].index("MLP"), "a column with words is left-aligned"
    with pytest.raises(ValueError, match="every row needs 4 values"):
        text_table(["", "MLP", "conv", "ratio"], [["parameters", 1, 2]])
