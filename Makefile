# make book: build the HTML book (quick profile: Fashion-MNIST on the CPU)
# make test: run the test suite
# Both create .venv/ and install everything from pyproject.toml first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
FMNIST_DEB := /usr/share/datasets/fashion-mnist
FMNIST_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install data test book lab browser imagemagick bench convergence clean help

help:
	@echo "make book     build the HTML book into _build/html (PROFILE=quick|paper|smoke)"
	@echo "make test     install, then run the tests"
	@echo "make install  create .venv and install dstlib with its book and test extras"
	@echo "make bench    run the benchmarks in benchmarks/"
	@echo "make browser  install Debian chromium for the book page test, where missing"
	@echo "make lab      open the section notebooks in JupyterLab (same store and results as make book)"
	@echo "make convergence  the quick profile's models after E and 3E epochs (book/reproducing.md)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test]'
	touch $@

# Fashion-MNIST: $DSTLIB_DATA, else the Debian package dataset-fashion-mnist (installed here when possible).
data:
	@dir="$${DSTLIB_DATA:-$(FMNIST_DEB)}"; \
	have() { for f in $(FMNIST_FILES); do [ -f "$$1/$$f" ] || [ -f "$$1/$$f.gz" ] || return 1; done; }; \
	if have "$$dir" || have "$(FMNIST_DEB)"; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing the Debian package dataset-fashion-mnist"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null && have "$(FMNIST_DEB)" && exit 0; \
	fi; \
	echo "Fashion-MNIST not found. Put the four IDX files ($(FMNIST_FILES), each optionally .gz)"; \
	echo "in a folder and set DSTLIB_DATA to it, or install the Debian package dataset-fashion-mnist."; \
	exit 1

test: install data browser imagemagick
	$(BIN)/python -m pytest -q --timeout=900

# Each notebook runs through papermill with params/$(PROFILE)/<name>.yaml into book/sections/ (runs are shared
# through the store: each is trained once, by whichever section asks first), its parameter cells are hidden
# (dstlib.book tidy), the front page's tables are generated from results/$(PROFILE)/, and the book is built
# with warnings as errors. Training progress bars are off (TQDM_DISABLE): a log file gets one line per cell.
SECTIONS := overall corruptions spectral spatial gradcam ood cost augmentation topology video
PAPERMILL_PROGRESS := $(shell [ -t 1 ] && echo --progress-bar || echo --no-progress-bar)
book: install data
	@test -d params/$(PROFILE) || { echo "PROFILE=$(PROFILE) has no folder params/$(PROFILE)"; exit 1; }
	mkdir -p book/sections
	@set -e; for name in $(SECTIONS); do \
	  echo "running $$name ($(PROFILE))"; \
	  TQDM_DISABLE=1 $(BIN)/papermill "notebooks/$$name.ipynb" "book/sections/$$name.ipynb" -f "params/$(PROFILE)/$$name.yaml" --cwd . -k python3 $(PAPERMILL_PROGRESS); \
	done
	$(BIN)/python -m dstlib.book tidy $(SECTIONS:%=book/sections/%.ipynb)
	$(BIN)/python -m dstlib.book summary results/$(PROFILE) book/sections/summary.md
	$(BIN)/jupyter-book build . --warningiserror --keep-going

lab: install data
	$(BIN)/jupyter lab notebooks/

# Headless Chromium for the book's page test (Debian package chromium), installed where missing.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; } || \
	  { echo "no chromium: install the Debian package chromium"; exit 1; }

# ImageMagick's MagickWand for the Fashion-MNIST-C motion-blur oracle (Wand), installed where missing.
imagemagick:
	@ldconfig -p 2>/dev/null | grep -q libMagickWand || { \
	  command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmagickwand-6.q16-6) >/dev/null; } || \
	  echo "no MagickWand: the motion-blur oracle test will be skipped (Debian package libmagickwand-6.q16-6)"

bench: install data
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_step.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_corruptions.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_cbar.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_mnist_c.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_cht.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_train.py --threads 1 --width 0.25 --models resnet34 --batch 32 --steps 12
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_train.py --threads 1 --width 0.25 --models resnet50 --batch 8 --steps 8

convergence: install data
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/convergence.py

clean:
	rm -rf _build book/sections .pytest_cache
