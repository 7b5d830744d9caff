# Set-up on a fresh machine is two commands: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast test-binder lint bench lab labextension setup clean

# The editable install builds the JupyterLab extension with npm (ci/setup-node.sh installs Debian's
# nodejs and npm as root); without npm it goes on without the extension and says so.
$(STAMP): pyproject.toml labextension/package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	@sh ci/setup-node.sh
	@if command -v npm >/dev/null 2>&1; then \
		echo "$(PY) -m pip install -q -e '.[dev]'"; $(PY) -m pip install -q -e '.[dev]'; \
	else \
		echo "npm is not on PATH: installing without the JupyterLab extension (its tests are skipped);"; \
		echo "install nodejs and npm, then run 'make labextension'"; \
		HATCH_JUPYTER_BUILDER_SKIP_NPM=1 $(PY) -m pip install -q -e '.[dev]'; \
	fi
	touch $(STAMP)

## demo: submit a sample training script to the local cluster, stream it, show metrics and outputs
demo: $(STAMP)
	$(PY) examples/demo.py

## setup: system components the tests talk to (sshd, Slurm, Azurite, Chromium, OpenMPI), torch and
## mpi4py in $(VENV); idempotent, root only where a Debian package is missing
setup: $(STAMP)
	@for f in ci/setup-*.sh; do [ -f "$$f" ] || continue; echo "== $$f"; VENV=$(abspath $(VENV)) bash "$$f" || exit 1; done

## lint: ruff, mypy, the import contracts (no cycles; node/, compute/, datastores/, view/ stay in their
## lanes), docs/reference up to date with the docstrings, and the lab extension's TypeScript
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/gen_reference.py --check
	@if [ -x labextension/node_modules/.bin/tsc ]; then echo "cd labextension && npx --no-install tsc --noEmit"; \
		cd labextension && npx --no-install tsc --noEmit; \
	else echo "labextension/: not type-checked (no node_modules: npm was missing at install)"; fi

## labextension: rebuild the JupyterLab extension after editing labextension/src (the install built
## it where npm was on PATH)
labextension: $(STAMP)
	cd labextension && { [ -d node_modules ] || npm install --no-audit --no-fund; } && npm run build

## test: everything — lint, unit, end-to-end, real servers, recipes under nbval, benchmarks in quick
## mode (README.md: what it needs, how long it takes); the binder build is test-binder's
## Strict about temp files: a tmpXXXXXXXX or torchelastic_* folder a test leaves in the machine's temp
## folder (not the session's own) fails the run; BATCHAI_TEST_TMP_STRICT=0 only reports it.
test: setup lint
	BATCHAI_TEST_TMP_STRICT=$${BATCHAI_TEST_TMP_STRICT:-1} \
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
