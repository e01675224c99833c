# Two entry points (the README's Quickstart): `make demo` and `make test`.
# Both create .venv with the pinned dependency set (constraints.txt) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_WORKERS ?= 2
DEMO_MINUTES ?= 7

.PHONY: demo test interop install clean

$(BIN)/.installed: setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(BIN)/.installed

# The main job: synthetic data (built once) -> train D-PoSE tiny on this CPU -> eval -> out/dpose/.
demo: $(BIN)/.installed
	$(BIN)/hmrjax quickstart --out out/dpose --minutes $(DEMO_MINUTES)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not interop" tests

# Interop tier: CPU torch 2.13.0 (a local wheel on the project machines) + smplx + FrEIA (reference flows).
interop: $(BIN)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt "torch==2.13.0" smplx FrEIA
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m interop tests

clean:
	rm -rf $(VENV) out
