# Entry points: `make core` (set up + the core comparison + report), `make study` (every run + report),
# `make test` (set up + the tests). Runs train two at a time, one torch thread each (params threads: 1).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: core study runs repro test setup lint

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(BIN)/.installed

DVC := PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc
TARGETS := $(BIN)/python stages/targets.py
LANES ?= 2
# one run per lane: its training, then its evaluation; -s = never re-check the shared upstream (built first)
LANE := xargs -P $(LANES) -I{} sh -c 'echo "$$(date +%T) start {}"; ($(DVC) repro -s train_{} && $(DVC) repro -s evaluate_{}) \
	> "logs/$$(echo {} | tr @ _).log" 2>&1 && echo "$$(date +%T) done {}" || { echo "FAILED {}: see logs/"; exit 255; }'

core: setup
	mkdir -p logs
	$(DVC) repro parse preprocess $$($(TARGETS) upstream core)
	$(TARGETS) runs core | $(LANE)
	$(DVC) repro -s report

study: setup
	mkdir -p logs
	$(DVC) repro parse preprocess $$($(TARGETS) upstream all)
	$(TARGETS) runs all | $(LANE)
	$(DVC) repro -s report

repro: study

runs: setup  # `make runs SET=protocol`: the runs of params study.<SET> (and what they need) + the report
	mkdir -p logs
	$(DVC) repro parse preprocess $$($(TARGETS) upstream $(SET))
	$(TARGETS) runs $(SET) | $(LANE)
	$(DVC) repro -s report

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check lib stages tests
