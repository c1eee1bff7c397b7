# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
# Each creates .venv when it is missing and installs both distributions built here, editable:
# the client (cspgraph, with its dev extras) and the emulator (packaging/csp-emulator).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMULATOR := packaging/csp-emulator
# A second `make` on the same .venv (another shell, `make -j`) waits for the first one's install
# instead of failing halfway through pip's: util-linux flock where there is one.
LOCK = $$(command -v flock >/dev/null && echo flock $(VENV)/.install.lock)

.PHONY: demo test browser lint typecheck bench bench-cpu bench-quick clean

$(STAMP): pyproject.toml $(EMULATOR)/pyproject.toml VERSION
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cspgraph needs Python 3.11 or newer: set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || { echo "==> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing cspgraph, csp-emulator and the development tools into $(VENV)" \
		"(about 2 minutes the first time, then only when a pyproject.toml changes)"
	$(LOCK) $(BIN)/python -m pip install -q --disable-pip-version-check \
		-e '.[dev,postgres]' -e '$(EMULATOR)'
	@touch $(STAMP)
	@echo "==> installed"

demo: $(STAMP)
	@echo "==> cspgraph demo: the emulator, set-up, onboarding, a fleet sync and its report"
	$(BIN)/cspgraph demo

# The suite runs on TEST_WORKERS pytest-xdist workers (one per core up to 4; `TEST_WORKERS=0`
# runs it in one process). --dist loadgroup keeps the tests that share a module's fixture, or
# name an xdist_group, on one worker (DESIGN.md, "The test suite in parallel").
TEST_WORKERS ?= $$($(PYTHON) -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')

test: $(STAMP) browser lint typecheck
	@echo "==> the test suite (pytest, $(TEST_WORKERS) workers)"
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# The agent sign-in and HTML report tests drive Debian's Chromium through Playwright (Playwright's
# own browser download needs a network this project does not assume).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		APT="$$SUDO apt-get -o DPkg::Lock::Timeout=600"; \
		$$APT install -y -q chromium >/dev/null 2>&1 || \
		{ $$APT update -q >/dev/null && $$APT install -y -q chromium >/dev/null; }; }

lint: $(STAMP)
	@echo "==> lint (ruff)"
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	@echo "==> type check (mypy --strict)"
	$(BIN)/mypy

# The realistic regime (Graph's latency and budgets; fleets of 200 and 5,000), then the CPU view.
bench: $(STAMP)
	$(LOCK) $(BIN)/python -m pip install -q -e '.[dev,postgres,bench]' -e '$(EMULATOR)' && \
		$(BIN)/python -m bench && $(BIN)/python -m bench --cpu

bench-cpu: $(STAMP)
	$(LOCK) $(BIN)/python -m pip install -q -e '.[dev,postgres,bench]' -e '$(EMULATOR)' && \
		$(BIN)/python -m bench --cpu

# For development: one fleet of 40 customers, realistic regime, results/realistic-quick.json.
bench-quick: $(STAMP)
	$(LOCK) $(BIN)/python -m pip install -q -e '.[dev,postgres,bench]' -e '$(EMULATOR)' && \
		$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
