"""A lesson's timing line: printed when the block ends, and masked for nbval by tests/sanitize.cfg."""
import re
import time
from pathlib import Path

from nbval.plugin import get_sanitize_patterns

from vae_lab.lessons.timing import timed

SANITIZE = Path(__file__).parents[1] / "sanitize.cfg"


def test_the_block_prints_its_own_time_and_nbval_sees_no_number(capsys):
    with timed("3 epochs"):
        assert capsys.readouterr().out == ""
        time.sleep(1.1)
    printed = capsys.readouterr().out
    assert re.fullmatch(r"3 epochs took [12] s on this machine\n", printed), printed
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        printed = re.sub(regex, replace, printed)
    assert printed == "3 epochs took TIME on this machine\n"
