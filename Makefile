# SPS: set-up, tests, benchmarks and lint. Every target uses the project's own venv.
PY      ?= .venv/bin/python
PYTEST  ?= .venv/bin/pytest
JOBS    ?= 2

.PHONY: setup test test-slow formal bench lint demo clean

setup: ## venv with the package and its dev tools; Icarus Verilog from Debian if missing
	python3 -m venv .venv
	.venv/bin/pip install -q -e '.[dev]'
	@command -v iverilog >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq iverilog >/dev/null; \
	  else echo "note: install Icarus Verilog (iverilog) for the Icarus tests"; fi; }

test: ## the default suite (slow tests excluded), in parallel
	$(PYTEST) -n $(JOBS) -m "not slow" -q

test-slow: ## the slow tests (synthesis, whole networks)
	$(PYTEST) -n $(JOBS) -m slow -q

formal: ## prove the formal contracts (SymbiYosys, k-induction), ~2-3 min; work in build/formal
	$(PY) -m sim_tests.formal -j $(JOBS)

bench: ## benchmarks, JSON on stdout
	$(PY) -m sps.bench

lint:
	.venv/bin/ruff check compiler sps_hw boards energy explore sps sim_tests

demo: ## the main job on the built-in demo network
	rm -rf out/demo && mkdir -p out
	.venv/bin/sps compile demo -o out/demo
	$(PY) -c "import numpy as np; np.save('out/x.npy', np.random.default_rng(0).integers(-128, 128, (1, 16, 16)).astype(np.int8))"
	.venv/bin/sps golden out/demo --input out/x.npy -o out/y.npy --compare
	.venv/bin/sps sim out/demo --input out/x.npy -o out/y_rtl.npy
	.venv/bin/sps run out/demo --port sim:icebreaker --input out/x.npy -o out/y_board.npy
	$(PY) -c "import numpy as np; y = np.load('out/y.npy'); \
	  assert all(np.array_equal(y, np.load(f'out/{n}.npy')) for n in ('y_rtl', 'y_board')); \
	  print('golden model, RTL and simulated iCEBreaker agree to the bit')"

clean:
	rm -rf out build sim_build .pytest_cache .hypothesis
