# Two commands do everything on a fresh machine:
#   make train   environment + data + train the default model (CONFIG) + test its best checkpoint
#   make test    environment + lint + the test suite
# and `make benchmark`: the timings and accuracies recorded in BENCHMARKS.md.
# CONFIG may name several config files, layered in order: make train CONFIG="configs/fast.yaml configs/best.yaml"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/dropout.yaml
CONFIGS := $(foreach config,$(CONFIG),--config $(config))
RUN ?= runs/$(basename $(notdir $(lastword $(CONFIG))))

.PHONY: setup data train test lint benchmark pictures clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev,export,sweep]'
	touch $@

data: setup
	PY=$(BIN)/python bash scripts/get_data.sh

train: data
	$(BIN)/fashion-lightning fit $(CONFIGS)
	$(BIN)/fashion-lightning test $(CONFIGS) --ckpt_path best

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

benchmark: data
	$(BIN)/python scripts/benchmark.py --configs configs/fast.yaml configs/fast.yaml,configs/dropout_tuned.yaml \
	  configs/fast.yaml,configs/best.yaml

# the notes' pictures as PNG files in pictures/, for the latest run of CONFIG (after `make train`)
pictures: data
	for command in edge-filters batch pixels; do $(BIN)/fashion-lightning-viz $$command $(CONFIGS) || exit 1; done
	for command in predictions filters confusion; do \
	  $(BIN)/fashion-lightning-viz $$command --ckpt_path best --root $(RUN) || exit 1; done
	$(BIN)/fashion-lightning-viz curves --logdir $(RUN)

clean:
	rm -rf $(VENV) runs lightning_logs pictures .pytest_cache
