"""The site edition (vae_lab.tools.site_edition), notebook by notebook, without a browser: the student's stubs with the
outputs kept, except those that would give an answer away; widget views as pictures; no badge, no complete-edition link.
"""
from __future__ import annotations

import json

import nbformat
import pytest

from vae_lab.tools.series import series
from vae_lab.tools.site_edition import (CONTROLS_CLASS, SNAPSHOT_CLASS, WIDGET_VIEW, is_check, is_solution,
                                        site_notebook, write_site_edition)
from vae_lab.tools.student_edition import CODE_STUB, student_notebook

LESSONS = {path.name for path in series()}


@pytest.fixture(scope="module", params=series(), ids=lambda path: path.stem)
def editions(request):
    """(complete, site, student) editions of one notebook."""
    complete = nbformat.read(request.param, as_version=4)
    site = site_notebook(nbformat.read(request.param, as_version=4), LESSONS)
    return complete, site, student_notebook(nbformat.read(request.param, as_version=4))


def test_the_site_has_the_student_sources_and_no_marker(editions):
    complete, site, student = editions
    assert [cell.source for cell in site.cells] != [cell.source for cell in complete.cells]
    text = json.dumps(site)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for site_cell, student_cell in zip(site.cells, student.cells, strict=True):
        if is_solution(site_cell) or is_check(site_cell):
            assert site_cell.source == student_cell.source


def test_outputs_stay_except_the_answers_and_checks_and_a_prediction_s_result_is_folded(editions):
    complete, site, _ = editions
    after_prediction = False
    for before, after in zip(complete.cells, site.cells, strict=True):
        if after.cell_type == "markdown":
            after_prediction |= is_solution(before)
            continue
        if is_solution(before) or is_check(before):
            assert after.outputs == []
        else:
            assert len(after.outputs) == len(before.outputs)
            assert ("hide-output" in after.metadata.get("tags", [])) == (after_prediction and bool(before.outputs))
        after_prediction = False


def test_each_widget_view_becomes_a_picture_and_the_widget_state_goes(editions):
    complete, site, _ = editions
    assert "widgets" not in site.metadata
    for before, after in zip(complete.cells, site.cells, strict=True):
        for old, new in zip(before.get("outputs", []), after.get("outputs", [])):
            assert WIDGET_VIEW not in new.get("data", {})
            if WIDGET_VIEW in old.get("data", {}):
                assert SNAPSHOT_CLASS in new.data["text/html"]


def test_the_setup_cell_input_is_hidden_and_no_badge_or_complete_edition_link_is_left(editions):
    _, site, _ = editions
    setup = next(cell for cell in site.cells if cell.cell_type == "code")
    assert "remove-input" in setup.metadata["tags"] and "# Setup:" in setup.source
    markdown = "\n".join(cell.source for cell in site.cells if cell.cell_type == "markdown")
    assert "colab-badge" not in markdown
    assert "/notebooks/0" not in markdown and "/notebooks/1" not in markdown


def test_a_slider_is_drawn_at_its_saved_value_with_the_widget_image():
    latent = nbformat.read(next(path for path in series() if path.name.startswith("07_")), as_version=4)
    pictures = [output.data["text/html"] for cell in site_notebook(latent, LESSONS).cells
                for output in cell.get("outputs", []) if SNAPSHOT_CLASS in output.get("data", {}).get("text/html", "")]
    assert pictures and all(CONTROLS_CLASS in picture for picture in pictures)
    assert all("type='range' disabled" in picture and "src='data:image/png;base64,iVBOR" in picture
               for picture in pictures)


def test_a_link_to_a_lesson_the_series_lacks_becomes_its_text():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 98 · A lesson\n\n[Next: 99](99_missing.ipynb), [back](00_a.ipynb)"),
        nbformat.v4.new_code_cell(CODE_STUB)])
    site = site_notebook(notebook, {"00_a.ipynb"})
    assert site.cells[0].source.endswith("Next: 99, [back](00_a.ipynb)")


def test_writing_the_edition_replaces_the_folder_s_notebooks(tmp_path):
    (tmp_path / "77_old_lesson.ipynb").write_text("{}")
    written = write_site_edition(tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.ipynb")) == sorted(path.name for path in written)
    assert {path.name for path in written} == LESSONS
