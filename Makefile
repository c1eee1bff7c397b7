# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
# Each creates .venv when it is missing and installs the project with its dev extras first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser lint typecheck bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cspgraph needs Python 3.11 or newer: set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || { echo "==> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing cspgraph and its development tools into $(VENV)" \
		"(about 2 minutes the first time, then only when pyproject.toml changes)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,postgres]'
	@touch $(STAMP)
	@echo "==> installed"

demo: $(STAMP)
	@echo "==> cspgraph demo: the emulator, set-up, onboarding, a fleet sync and its report"
	$(BIN)/cspgraph demo

test: $(STAMP) browser lint typecheck
	@echo "==> the test suite (pytest)"
	$(BIN)/pytest

# The agent sign-in and HTML report tests drive Debian's Chromium through Playwright (Playwright's
# own browser download needs a network this project does not assume).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

lint: $(STAMP)
	@echo "==> lint (ruff)"
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	@echo "==> type check (mypy --strict)"
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,postgres,bench]' && $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
