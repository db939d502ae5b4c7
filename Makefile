# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench fuzz soak venv clean help

help:
	@echo "make run    - set up .venv if needed and start epm on the built-in simulator"
	@echo "make test   - set up .venv if needed, then ruff, mypy and the whole pytest suite"
	@echo "make bench  - benchmarks (codec, link, session, UI, report, clinic-server sync); figures go to stdout"
	@echo "make fuzz   - seeded mutation fuzzing (protocol files, wire frames, records database)"
	@echo "make soak   - 300+ sessions on 3 stations with the simulator's faults; matrix, flat resources"
	@echo "make clean  - remove .venv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/epm

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One worker per core (at most 4): the suite waits on conditions, never on the clock, so it
# runs the same side by side; on the 2-core CI machine it takes about half the time.
test: lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

bench: $(STAMP)
	$(BIN)/python -m benchmarks

fuzz: $(STAMP)
	$(BIN)/python -m benchmarks.fuzz

# A clinic's day: 3 station processes, 300+ sessions back to back, every simulator fault at
# least 20 times; prints the fault x outcome matrix and the resource figures, exits 1 on any
# breach (benchmarks/soak, docs/benchmarks.md). About 3 minutes on 2 cores.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
