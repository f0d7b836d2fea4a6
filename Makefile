# The entry points of the README: `make demo`, `make test` and `make bench`.
# Each creates .venv and installs what it needs on first use, and changes nothing outside
# the checkout and the user's caches. `make batteries` (opt-in, as root: it installs system
# packages and may enable Debian's non-free component) adds the external test batteries.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench batteries mutation clean

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seedtree demo

# The controller, loader and isolation tests, run twice more: on the libraries' public API
# alone (SEEDTREE_FAST_PATHS=0: no write into interpreter memory), and on the oldest NumPy,
# torch and joblib that pyproject.toml accepts (.venv-floors).
PORTABLE_TESTS := tests/test_rawmem.py tests/test_bindings.py tests/test_threads_globals.py tests/test_seeding.py \
	tests/test_ambient.py tests/test_torch_loader.py tests/test_loader_samplers.py tests/test_owned_generators.py \
	tests/test_streaming_resume.py
FLOOR_TESTS := tests/test_floors.py tests/test_rawmem.py tests/test_bindings.py tests/test_threads_globals.py \
	tests/test_seeding.py tests/test_ambient.py tests/test_torch_loader.py tests/test_streaming_resume.py
FLOORS := .venv-floors
FLOORS_STAMP := $(FLOORS)/.installed

$(FLOORS_STAMP): pyproject.toml scripts/setup-floors.sh
	bash scripts/setup-floors.sh $(FLOORS)
	touch $(FLOORS_STAMP)

test: $(STAMP) $(FLOORS_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy seedtree
	$(PY) -m pytest -q
	SEEDTREE_FAST_PATHS=0 $(PY) -m pytest -q -p no:cacheprovider $(PORTABLE_TESTS)
	SEEDTREE_FLOORS="$$(cat $(FLOORS)/floors.txt)" PYTHONPATH=$(CURDIR) $(FLOORS)/bin/python -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict  # not --quiet: it hides the warnings that --strict turns into a failure

# Opt-in: TestU01 and dieharder from apt (enabling Debian's non-free component for TestU01
# when it is not enabled yet) and the TestU01 harness, built into .venv/bin. Without them
# their tests skip, saying why. See scripts/install-batteries.sh.
batteries: $(STAMP)
	bash scripts/install-batteries.sh $(VENV)

# The documentation site, built into site/ (strict: a broken reference fails the build).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# Every benchmark script, then one summary table and plot (benchmarks/results/summary.*).
# `make bench QUICK=1` runs the short versions (minutes on 2 cores instead of about an hour).
BENCH_RUN := nice $(PY)
ifdef QUICK
BENCH_ARGS_derive := --n 20000 --repeats 3
BENCH_ARGS_workers := --quick
BENCH_ARGS_throughput := --mib 16 --rounds 256 --repeat 1
BENCH_ARGS_dask_overhead := --tasks 2000 --chunks 4
BENCH_ARGS_battery := --sections power,calibration,speed --roots 4 --calib-mib 16 --speed-mib 64 --budget-seconds 120
BENCH_ARGS_calibration := --roots 20 --mib 4
BENCH_ARGS_hashing := --files 200 --mib 64
BENCH_ARGS_streaming := --samples 8000 --repeats 2
BENCH_ARGS_ray_map := --tasks 400 --rows 20000 --repeats 1
BENCH_ARGS_fuzz := --examples 200
BENCH_ARGS_oracle := --examples 100
BENCH_ARGS_per_sample := --quick
endif
BENCH_SCRIPTS := per_sample derive workers throughput dask_overhead loader_order streaming hashing ray_map battery calibration fuzz oracle

# The peers the benchmarks compare against (grain, webdataset, torchdata: the bench extra),
# installed here only: make test does not need them. constraints.txt keeps torch at its pin.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(foreach s,$(BENCH_SCRIPTS),$(BENCH_RUN) benchmarks/$(s).py $(BENCH_ARGS_$(s)) &&) true
	$(PY) benchmarks/summary.py

# Mutation testing of every module under seedtree/core and seedtree/runtime with mutmut
# (configured in pyproject.toml). Not part of `make test`: a full run takes about 25 minutes on
# 2 cores, starts from scratch and writes the score per module to benchmarks/results/mutation.*.
# `make mutation MUTANTS='seedtree.core.keys.*'` runs one module's mutants again (reusing what
# the last run recorded) and prints its table without touching benchmarks/results/.
# Everything mutmut writes stays in mutants/ (git-ignored).
MUTANTS ?=
mutation: $(STAMP)
	$(PY) -c "import mutmut" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt "mutmut>=3.8"
ifeq ($(MUTANTS),)
	rm -rf mutants
	start=$$(date +%s) && nice -n 10 $(VENV)/bin/mutmut run && \
	$(PY) scripts/mutation_report.py --seconds $$(( $$(date +%s) - start ))
else
	nice -n 10 $(VENV)/bin/mutmut run $(MUTANTS)
	$(PY) scripts/mutation_report.py --out mutants
endif

clean:
	rm -rf $(VENV) $(FLOORS) build site *.egg-info mutants
