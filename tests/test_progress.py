"""Progress bars: text outside a notebook; in a notebook kernel a widget whose stored output ends as the final text."""
import io
import re
from pathlib import Path

from nbval.plugin import get_sanitize_patterns
from tqdm import std

from vae_lab.progress import WIDGET_VIEW, NotebookBar, progress_bar

SANITIZE = Path(__file__).parent / "sanitize.cfg"


def test_outside_a_notebook_the_bar_is_text():
    printed = io.StringIO()
    bar = progress_bar(total=3, unit="batch", desc="training", file=printed)
    assert type(bar) is std.tqdm
    bar.update(3)
    bar.close()
    assert "training: 100%" in printed.getvalue() and "3/3" in printed.getvalue()


def sanitized(text: str) -> str:
    """``text`` as nbval compares it, through tests/sanitize.cfg's regexes."""
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_a_stored_notebook_shows_the_final_bar_as_text_and_keeps_the_widget(run_cells, small, tiny_config):
    """Executed headless (as the stored outputs are), `fit`'s bar and an iterated bar are stored as their last text
    line, not as the "0/N" of their first display; the widget's view stays for a live front end."""
    cells = ["from vae_lab import VAE, Config, fit, load_mnist\nfrom vae_lab.progress import progress_bar",
             f"data = load_mnist().subset(train_size={len(small.train_images)}, test_size=100)\n"
             f"history = fit(VAE(Config(epochs=2, batch_size={tiny_config.batch_size}, hidden_dim=8, latent_dim=2)), "
             "data)",
             "total = sum(progress_bar(range(5), desc='counting'))"]
    stored = run_cells(cells)
    steps = 2 * len(small.train_images) // tiny_config.batch_size
    for cell, start in ((stored[1], f"training: 100%|██████████| {steps}/{steps} ["), (stored[2], "counting: 100%")):
        [output] = cell.outputs
        assert WIDGET_VIEW in output.data
        text = output.data["text/plain"]
        assert text.startswith(start) and "\n" not in text, text
    assert "epoch=2, test_loss=" in stored[1].outputs[0].data["text/plain"]
    assert sanitized(stored[1].outputs[0].data["text/plain"]) == "training: PROGRESS"


def test_a_closed_notebook_bar_updates_its_display_once(monkeypatch):
    """Outside a kernel the widget cannot show, but the bundle it displays and updates can be read."""
    shown = []

    class Handle:
        def update(self, bundle, raw):
            shown.append(("update", bundle["text/plain"]))

    def display(bundle, raw, display_id):
        shown.append(("display", bundle["text/plain"]))
        return Handle()

    monkeypatch.setattr("vae_lab.progress.display", display)
    bar = NotebookBar(total=4, desc="training")
    bar.update(4)
    bar.close()
    bar.close()
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert "0/4" in shown[0][1] and "4/4" in shown[1][1]
