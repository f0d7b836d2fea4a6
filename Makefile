# The two entry points of the README: `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench clean

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seedtree demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict  # not --quiet: it hides the warnings that --strict turns into a failure

# The documentation site, built into site/ (strict: a broken reference fails the build).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) benchmarks/derive.py

clean:
	rm -rf $(VENV) build site *.egg-info
