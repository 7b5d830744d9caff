# Set-up on a fresh machine is two commands: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast test-binder lint bench lab labextension setup clean

$(STAMP): pyproject.toml labextension/package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## demo: submit a sample training script to the local cluster, stream it, show metrics and outputs
demo: $(STAMP)
	$(PY) examples/demo.py

## setup: system components the tests talk to (sshd, Slurm, Azurite, Chromium, OpenMPI), torch and
## mpi4py in $(VENV); idempotent, root only where a Debian package is missing
setup: $(STAMP)
	@for f in ci/setup-*.sh; do [ -f "$$f" ] || continue; echo "== $$f"; VENV=$(abspath $(VENV)) bash "$$f" || exit 1; done

## lint: ruff, mypy and the import contracts (no cycles; node/, compute/, datastores/, view/ stay in their lanes)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	cd labextension && npx --no-install tsc --noEmit

## labextension: rebuild the JupyterLab extension after editing labextension/src (the install built it)
labextension: $(STAMP)
	cd labextension && npm run build

## test: everything — lint, unit, end-to-end, real servers, recipes under nbval, benchmarks in quick
## mode (README.md: what it needs, how long it takes); the binder build is test-binder's
test: setup lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not binder" tests recipes --nbval-lax --durations=15
	BENCH_QUICK=1 $(MAKE) --no-print-directory bench

## test-fast: unit and local-cluster tests only (a couple of minutes, no root)
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q tests/test_spec.py tests/test_snapshot.py tests/test_runs.py tests/test_faults.py \
		tests/test_clusters.py tests/test_cli.py tests/test_extending.py tests/node

## test-binder: binder/ built into a fresh virtualenv, every recipe run there (2-5 minutes; CI runs it)
test-binder: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m binder tests/test_binder.py

## bench: the benchmarks (ratios against baselines measured in the same run)
bench: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for f in bench/bench_*.py; do m=$$(basename $$f .py); echo "== $$f"; \
		TMPDIR=$$tmp $(PY) -m bench.$$m $${BENCH_QUICK:+--quick} || exit 1; done

## lab: JupyterLab on the recipes, with the local cluster as the default
lab: $(STAMP)
	$(VENV)/bin/jupyter lab recipes/

clean:
	rm -rf $(VENV) .batchai .cache
