"""Numbers printed as aligned plain-text tables, so a notebook's stored outputs read like a table and nbval can compare them."""
from __future__ import annotations

import re
from typing import Sequence

NUMBER = re.compile(r"[-+−]?[\d,]*\.?\d+ ?[×%]?")  # how text_table recognises a number written as text


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned plain text. Integers get thousands separators (652,824), floats two decimals, anything else
    is shown as it is; a column whose filled cells are all numbers (or read like "5.53×", "-3.2", "87%") is
    right-aligned, any other column left-aligned."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} values, one per column of the header {list(header)}")
    show = lambda value: f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
        else f"{value:.2f}" if isinstance(value, float) else str(value)
    cells = [[show(value) for value in row] for row in rows]
    numeric = [all(NUMBER.fullmatch(row[i]) for row in cells if row[i]) and any(row[i] for row in cells)
               for i in range(len(header))]
    cells = [list(header)] + cells
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) if right else cell.ljust(width)
                       for cell, width, right in zip(row, widths, numeric)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
