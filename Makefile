# Two entry points (see README): `make demo` and `make test`. Everything installs into .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

$(BIN)/selflearn: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the pinned CPU build lies on this machine's disk; anything later must not pull a CUDA build.
	$(BIN)/pip install -q torch==2.13.0 numpy
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/selflearn

install: $(BIN)/selflearn

demo: install
	$(BIN)/selflearn demo

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build src/*.egg-info
