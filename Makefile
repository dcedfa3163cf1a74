# portraitfx — every target bootstraps .venv from scratch when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
comma := ,
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,train,web,scale,portrait
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PIP := $(BIN)/python -m pip --disable-pip-version-check
OPENCV := opencv-contrib-python==4.11.0.86

.PHONY: demo test bench lint format clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "==> setting up $(VENV) with $(PYTHON) (extras: $(EXTRAS))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned to the CPU wheel, so nothing later can pull a CUDA build.
	$(PIP) install -q -c constraints.txt "torch==2.13.0"
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@# Two OpenCV builds share the cv2 folder; make sure the contrib one wins.
	@if $(PIP) show -q opencv-python >/dev/null 2>&1; then \
		$(PIP) install -q --force-reinstall --no-deps $(OPENCV); fi
	$(PIP) check
	@# Browser tests drive Debian's Chromium through Playwright (no browser download).
	@command -v chromium >/dev/null 2>&1 || command -v apt-get >/dev/null 2>&1 && \
		{ command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null || \
		echo "warning: could not install chromium; the browser tests will be skipped"; } || true
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/portraitfx demo --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache build dist src/*.egg-info
