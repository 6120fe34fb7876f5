# Two commands do all the set-up on a fresh machine:
#   make demo   — create .venv, install deepq, train the cartpole preset to a solved agent
#   make test   — create .venv, install deepq with test tools, run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# CPU torch first: a bare torch requirement would pull several GB of CUDA packages.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,video,atari,envpool,minatar,games]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deepq train cartpole

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -c "import stable_baselines3" 2>/dev/null || $(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/speed.py

lint: $(STAMP)
	$(BIN)/ruff check deepq tests benchmarks
	$(BIN)/mypy deepq

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
