"""The static site: one HTML page per numbered notebook, figures embedded, and an index listing them in order."""
import re
import shutil

import nbformat
import pytest

pytest.importorskip("nbconvert", reason="nbconvert is missing: pip install -e '.[dev]'")

from vae_lab.tools.series import series  # noqa: E402
from vae_lab.tools.site import build_site, describe, main  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return build_site(out_dir=out)


def test_the_index_lists_every_notebook_in_order_with_its_title_and_sentence(site):
    index = site.read_text()
    links = re.findall(r'<li><strong><a href="([^"]+)">([^<]+)</a></strong><br/>\s*(.*?)</li>', index, re.S)
    assert [href for href, _, _ in links] == [p.with_suffix(".html").name for p in series()]
    for (href, title, summary), notebook in zip(links, series()):
        assert re.fullmatch(r"\d\d · .+", title), f"{notebook.name}: the title comes from '# NN · Title'"
        assert len(summary) > 20 and "colab" not in summary.lower(), f"{notebook.name}: the sentence below the title"
        assert (site.parent / href).is_file()


def test_every_page_embeds_its_figures_and_shows_its_title(site):
    for notebook in series():
        page = (site.parent / notebook.with_suffix(".html").name).read_text()
        figures = re.findall(r'<img[^>]+src="data:image/png;base64,', page)
        assert figures, f"{notebook.name}: no embedded figure; does it hold the outputs of a full run?"
        assert f"<title>{describe(notebook).title}</title>" in page
        assert 'href="index.html"' in page


def test_hidden_solution_cells_stay_folded(site):
    for notebook in series():
        cells = nbformat.read(notebook, as_version=4).cells
        hidden = [c for c in cells if c.metadata.get("jupyter", {}).get("source_hidden")]
        page = (site.parent / notebook.with_suffix(".html").name).read_text()
        folded = re.findall(r'<details class="vae-lab-hidden">.*?</details>', page, re.S)
        assert len(folded) == len(hidden), f"{notebook.name}: every cell with hidden code is folded"
        assert all("jp-CodeCell" in cell for cell in folded)


def test_describe_reads_the_title_and_the_sentence_and_names_the_fix(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# 09 · A test\n\nYou will learn\none thing.\n\n[![Open In Colab](badge.svg)](url)")])
    nbformat.write(notebook, tmp_path / "09_test.ipynb")
    lesson = describe(tmp_path / "09_test.ipynb")
    assert (lesson.title, lesson.summary, lesson.page) == ("09 · A test", "You will learn one thing.", "09_test.html")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), tmp_path / "10_bad.ipynb")
    with pytest.raises(ValueError, match="should open with a markdown cell '# NN · Title'"):
        describe(tmp_path / "10_bad.ipynb")


def test_main_builds_from_any_notebooks_folder(tmp_path, capsys):
    shutil.copy(series()[0], tmp_path)
    assert main([str(tmp_path / "site"), "--notebooks", str(tmp_path)]) == 0
    written = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert written == [series()[0].with_suffix(".html").name, "index.html"]
    assert "index.html" in capsys.readouterr().out
