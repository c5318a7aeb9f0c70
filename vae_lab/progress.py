"""Progress bars that read well everywhere: tqdm's widget in a notebook kernel, its text bar elsewhere.

A notebook widget's output stores the text it had when it was first displayed ("0/4690"); the widget's later state
lives in the front end only. The notebook bar is therefore displayed with a display id and, when it closes, that
display is updated: a live notebook keeps showing the widget, and a stored or headless output (nbclient applies
``update_display_data`` to the stored cell) reads as the final text line.
"""
from __future__ import annotations

from typing import Any

from IPython.display import display
from tqdm import auto, std
from tqdm.notebook import tqdm_notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class NotebookBar(tqdm_notebook):
    """tqdm's notebook widget whose display's ``text/plain`` becomes the final bar when it closes."""

    def __init__(self, *args: Any, **options: Any):
        super().__init__(*args, display=False, **options)
        self._handle = None if self.disable else display(self.mimebundle(), raw=True, display_id=True)

    def mimebundle(self) -> dict[str, Any]:
        """The widget's view (version 2.0, the same in ipywidgets 7 and 8) and the bar as one line of text."""
        return {"text/plain": self.container.__repr__(pretty=True),
                WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": self.container.model_id}}

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        super().close()
        if handle is not None:
            handle.update(self.mimebundle(), raw=True)


def progress_bar(*args: Any, **options: Any) -> std.tqdm:
    """A tqdm bar with tqdm's own arguments: the notebook widget where `tqdm.auto` would choose it, else text."""
    if issubclass(auto.tqdm, tqdm_notebook):
        return NotebookBar(*args, **options)
    return std.tqdm(*args, **options)
