# Entry points: `make core` (set up + the core comparison + report), `make study` (every run + report),
# `make test` (set up + the tests). Runs train two at a time, one torch thread each (params threads: 1).
# One pipeline per dataset: PIPELINE=. (Beauty, the default) or PIPELINE=yelp (`make core PIPELINE=yelp`).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: core study runs repro compare test setup lint

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

setup: $(BIN)/.installed

PIPELINE ?= .
PIPE := $(abspath $(PIPELINE))
DVC := cd $(PIPE) && PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/dvc
TARGETS := $(abspath $(BIN))/python $(abspath tools/targets.py) --repo $(PIPE)
REFIT_CHECK := $(abspath $(BIN))/python $(abspath tools/refit_check.py) --repo $(PIPE)
LOGS := $(abspath logs)/$(if $(filter .,$(PIPELINE)),,$(notdir $(PIPE))_)
LANES ?= 2
# upstream of a run set: recompute the missing splits and text vectors (the same bytes on every machine), then
# the rest, skipping stages whose recorded inputs are unchanged even where their data is missing (committed codes)
# (a refit tokenizer, Yelp's, that reproduced its committed outputs keeps the committed lock: tools/refit_check.py)
# (an empty stage list is an error: `dvc repro` without targets would reproduce the whole pipeline)
NONE = { echo "error: no stages for run set '$(1)' in $(PIPE)" >&2; exit 1; }
UPSTREAM = t=$$($(TARGETS) rebuilt $(1)) && { [ -n "$$t" ] || $(NONE); } && $(DVC) repro $$t && $(REFIT_CHECK) $$t \
	&& t=$$($(TARGETS) upstream $(1)) && { [ -n "$$t" ] || $(NONE); } && $(DVC) repro --allow-missing $$t
# the report, after the decoders' comparison it ends with (skipped where its recorded inputs are unchanged; where
# it cannot run, e.g. its generator's model is not here, the report renders with the committed decoding figures)
REPORT = { $(DVC) repro -s --allow-missing decoding || echo "warning: stage decoding not re-run (see above)"; } \
	&& $(DVC) repro -s report
# one run per lane: its training, then its evaluation; -s = never re-check the shared upstream (built first)
LANE := xargs -P $(LANES) -I{} sh -c 'echo "$$(date +%T) start {}"; ($(DVC) repro -s train_{} && $(DVC) repro -s evaluate_{}) \
	> "$(LOGS)$$(echo {} | tr @ _).log" 2>&1 && echo "$$(date +%T) done {}" || { echo "FAILED {}: see logs/"; exit 255; }'

core: setup
	mkdir -p logs
	$(call UPSTREAM,core)
	$(TARGETS) runs core | $(LANE)
	$(REPORT)

study: setup
	mkdir -p logs
	$(call UPSTREAM,all)
	$(TARGETS) runs all | $(LANE)
	$(REPORT)

repro: study

runs: setup  # `make runs SET=protocol`: the runs of params study.<SET> (and what they need) + the report
	mkdir -p logs
	$(call UPSTREAM,$(SET))
	$(TARGETS) runs $(SET) | $(LANE)
	$(REPORT)

compare: setup  # after both pipelines' reports: per answer of Beauty's report, do Yelp's tests agree?
	cd $(CURDIR) && PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/dvc repro -s compare@yelp

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check lib stages tests tools benchmarks
