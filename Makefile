# mpdash — make run (serve the dashboard), make test (the whole suite, browser tests included).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run setup dev chromium test test-fast bench soak clean

run: setup
	$(BIN)/python app.py --port $(PORT)

setup: $(VENV)/.runtime

dev: $(VENV)/.dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Debian's chromium drives the browser tests; never a downloaded browser.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian's chromium (for the browser tests)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

test: dev chromium
	MPDASH_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

# Without the browser tests: handy while editing the engine. "-m" here replaces the
# "-m \"not soak\"" of pytest.ini's addopts, so the soak is deselected again.
test-fast: dev
	$(BIN)/python -m pytest -m "not browser and not soak"

# Glances (the competitor figure) lives in its own venv so it never touches the app's pins.
bench: dev benchmarks/.venv/.glances
	$(BIN)/python -m benchmarks

benchmarks/.venv/.glances:
	$(PYTHON) -m venv benchmarks/.venv
	benchmarks/.venv/bin/pip install -q glances==4.5.8
	touch $@

soak: dev
	$(BIN)/python -m pytest -m soak -p no:randomly -s tests/test_soak.py

clean:
	rm -rf $(VENV) .pytest_cache
