# Two commands do everything on a fresh machine:
#   make train   environment + data + train the default model (CONFIG) + test its best checkpoint
#   make test    environment + lint + the test suite
# and `make benchmark`: the timings and accuracies recorded in BENCHMARKS.md (about 20 minutes on a 2-core CPU)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/dropout.yaml
RUN ?= runs/$(basename $(notdir $(CONFIG)))

.PHONY: setup data train test lint benchmark pictures clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev,export]'
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

benchmark: data
	$(BIN)/python scripts/benchmark.py --configs configs/fast.yaml configs/dropout_tuned.yaml configs/best.yaml

# the notes' pictures as PNG files in pictures/, for the latest run of CONFIG (after `make train`)
pictures: data
	for command in edge-filters batch pixels; do $(BIN)/fashion-lightning-viz $$command || exit 1; done
	for command in predictions filters confusion; do \
	  $(BIN)/fashion-lightning-viz $$command --ckpt_path best --root $(RUN) || exit 1; done
	$(BIN)/fashion-lightning-viz curves --logdir $(RUN)

clean:
	rm -rf $(VENV) runs lightning_logs pictures .pytest_cache
