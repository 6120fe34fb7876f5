# Two commands do all the set-up on a fresh machine:
#   make demo   — create .venv, install deepq, train the cartpole preset to a solved agent
#   make test   — create .venv, install deepq with test tools, run the test suite
#   make docs   — build the docs site into build/site (mkdocs build --strict), viewable from the file system
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-peers docs docs-reference docs-serve clean
# mkdocs-material prints an end-of-life banner on every build unless this is set.
export NO_MKDOCS_2_WARNING := 1

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# CPU torch first: a bare torch requirement would pull several GB of CUDA packages.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,docs,video,atari,envpool,minatar,games,distributed,research,export]"
	# deepq's compiled update step (deepq/core/compiled.py): built once here, so no run waits for it.
	$(BIN)/python -m deepq.core.compiled
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deepq train cartpole

# Two workers (pytest-xdist): the tests are single-threaded, so a 2-core machine runs the suite in about half the time.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -c "import stable_baselines3" 2>/dev/null || $(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/speed.py

# deepq beside rejax (JAX) one core each, with FLOPs and the core's sgemm peak; rejax lives in its own
# virtualenv, .venv-jax (benchmarks/peer_env.md).
PEER_VENV := .venv-jax
$(PEER_VENV)/.installed:
	$(PY) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet "jax[cpu]" "rejax==0.1.3" "gymnax<1"
	touch $@

bench-peers: $(STAMP) $(PEER_VENV)/.installed
	$(BIN)/python benchmarks/throughput.py

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# docs/reference/cli.md is generated from the command line; tests/test_docs.py fails when it is stale.
docs-reference: $(STAMP)
	$(BIN)/python -m deepq.cli_reference > docs/reference/cli.md

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

lint: $(STAMP)
	$(BIN)/ruff check deepq tests benchmarks
	$(BIN)/mypy deepq

clean:
	rm -rf $(VENV) runs build/site .pytest_cache .mypy_cache .ruff_cache
