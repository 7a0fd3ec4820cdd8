# The two commands a newcomer needs:
#   make demo   install, then run `mlq demo` on embedded defaults (no server)
#   make test   install, check services, lint, type-check, validate the compose files
#               and the Kubernetes manifests (offline), run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint unit integration clean

$(BIN)/mlq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/mlq

install: $(BIN)/mlq

demo: install
	$(BIN)/mlq demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.rabbitmq.yml
	$(BIN)/python scripts/validate_manifests.py

unit: install
	$(BIN)/pytest tests/unit

integration: install
	bash scripts/services.sh
	$(BIN)/pytest tests/integration

test: install lint
	bash scripts/services.sh
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mlq .pytest_cache .mypy_cache .ruff_cache
