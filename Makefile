# Two entry points (see README.md): `make book` builds the book, `make test` runs the tests.
# Each does all set-up first: a virtual environment, the package, and the data.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# OpenMP's default wait policy (spin briefly, then sleep) is left alone: forcing
# OMP_WAIT_POLICY=PASSIVE made an MLP epoch 1.8x and a CNN epoch 1.2x slower here
# (benchmarks/perf.py). Set it to PASSIVE only when several trainings share few cores.

.PHONY: setup data book book-quick test coverage browser-test benchmark clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

data: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/get-data.sh

# The whole book at the report's settings. First the grid: every missing run trained in
# parallel worker processes (one single-thread worker per core) plus chapter 10's likelihood
# estimates, one progress line per run; then the notebooks, which only read the run cache.
book: data
	mkdir -p _build
	$(BIN)/python -m vae_tut reproduce --out _build/reproduce.md
	$(BIN)/jupyter-book build . -W -n --keep-going

# The same pages in quick mode (1 epoch on 2,048 images), in their own output folder
# so that quick outputs never land in the full book's execution cache.
book-quick: data
	VAE_TUT_QUICK=1 VAE_TUT_PROGRESS=0 $(BIN)/jupyter-book build . -W -n --keep-going --path-output _build_quick

# Static checks (ruff's lint over the repository, its format check and mypy over the package), then unit tests, tests on the
# real data, and every chapter notebook in quick mode, spread over one single-thread pytest worker
# per core (a file's tests, and so a notebook's cells, stay together; files go out in collection
# order, the notebooks first, so that the longest work starts first and the short tests fill the gaps).
test: data
	$(BIN)/ruff check .
	$(BIN)/ruff format --check vae_tut
	$(BIN)/mypy
	VAE_TUT_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbval-lax -m "not browser" -n auto --dist loadfile --no-loadscope-reorder

# Line coverage of vae_tut by the unit tests (worker processes included; see [tool.coverage.run]).
coverage: data
	VAE_TUT_QUICK=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not browser" -n auto --dist loadfile \
	  --cov=vae_tut --cov-report=term-missing tests

# Every page of a built book in headless Chromium, offline: by default the quick build (needs
# `make book-quick` first); `make browser-test BOOK_HTML=_build/html` checks the full one.
BOOK_HTML ?= _build_quick/_build/html
SCREENSHOTS ?= _build_quick/screenshots
browser-test: setup
	$(BIN)/python -m pip install --quiet -e '.[browser]'
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; } \
	  || { echo "browser-test needs Debian's chromium (apt-get install chromium)"; exit 1; }
	VAE_TUT_BOOK_HTML=$(BOOK_HTML) VAE_TUT_SCREENSHOTS=$(SCREENSHOTS) \
	  $(BIN)/python -m pytest -m browser tests/browser

# The performance measurements of benchmarks/perf.py at full size (about 1.5 hours on 2 cores).
benchmark: data
	$(BIN)/python -m benchmarks.perf

clean:
	rm -rf _build _build_quick
