# carelens: `make demo` runs the whole pipeline on the demo cohort; `make test` runs the suite.
# Both create .venv (Python 3.11) and install what they need, system packages included.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup system system-demo services

demo: setup system-demo
	$(BIN)/carelens demo

test: setup system services
	bash scripts/test.sh

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

system:
	bash scripts/system-packages.sh

system-demo:
	bash scripts/system-packages.sh demo

services:
	bash scripts/postgres.sh start
