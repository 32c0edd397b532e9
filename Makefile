# The two quick-start commands: `make serve` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast fuzz lint typecheck protos check-protos clean

# A .venv made by another Python than $(PYTHON), or whose interpreter no longer runs, is rebuilt
# from scratch (scripts/venv_state.py says why: `ok`, `missing` or `stale: ...`); `make clean` is
# never needed for that.
VENV_STATE := $(shell $(PYTHON) scripts/venv_state.py $(VENV) 2>/dev/null)
VENV_STALE := $(filter stale:%,$(VENV_STATE))
ifneq ($(VENV_STATE),ok)
.PHONY: $(STAMP)
endif

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(if $(VENV_STALE),@echo "rebuilding $(VENV): $(VENV_STATE)")
	$(PYTHON) -m venv $(if $(VENV_STALE),--clear )$(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./clients/python
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/lockservice serve

# Four workers, each test file kept on one (its module fixtures are built once): most tests wait on
# server processes, fsyncs and timers, so two workers kept only 1 of 2 cores busy (423 s of CPU in
# 446 s); four keep both about 90% busy and end in about 4 minutes. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
# A run starts about 500 Python processes (servers, client verbs, bench workers, pytest workers):
# with PYTHONDONTWRITEBYTECODE set (as on some CI images) each would compile the project's modules
# (and pytest rewrite the tests) anew; cached bytecode saved 3-10% of a run's CPU here.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

test: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile

# The bottom of the pyramid: unit and store-contract tests on memory and SQLite, no processes
# started and no PostgreSQL (markers set in tests/conftest.py: e2e, postgres).
test-fast: $(STAMP)
	$(PYTEST) -m "not e2e and not postgres"

fuzz: $(STAMP)
	LOCKSERVICE_FUZZ_EXAMPLES=$${LOCKSERVICE_FUZZ_EXAMPLES:-5000} $(PYTEST) tests/fuzz

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

check-protos: protos
	git diff --exit-code -- lockservice/v1 || (echo "lockservice/v1 is stale: run make protos and commit" >&2; exit 1)
	test -z "$$(git status --porcelain -- lockservice/v1)" || (echo "lockservice/v1 has files the protos do not generate, or new ones not committed" >&2; exit 1)

clean:
	rm -rf $(VENV)
