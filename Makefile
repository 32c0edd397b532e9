# The two quick-start commands: `make serve` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test fuzz lint typecheck protos check-protos clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./clients/python
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/lockservice serve

test: $(STAMP)
	$(BIN)/python -m pytest

fuzz: $(STAMP)
	LOCKSERVICE_FUZZ_EXAMPLES=$${LOCKSERVICE_FUZZ_EXAMPLES:-5000} $(BIN)/python -m pytest tests/fuzz

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
