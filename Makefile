# Two commands do everything on a fresh machine:
#   make train   environment + data + train the default model (CONFIG) + test its best checkpoint
#   make test    environment + lint + the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/dropout.yaml

.PHONY: setup data train test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $@

data: setup
	PY=$(BIN)/python bash scripts/get_data.sh

train: data
	$(BIN)/fashion-lightning fit --config $(CONFIG)
	$(BIN)/fashion-lightning test --config $(CONFIG) --ckpt_path best

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
