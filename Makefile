# CFAP Orchestration. `make demo` and `make test` are all the set-up a user needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export CFAP_HOME ?= $(CURDIR)/.cfap
export DAGSTER_HOME := $(CFAP_HOME)/dagster

.PHONY: venv demo test ui lint format type-check validate bench audit clean

# checkov (the terraform security scan) lives in its own environment: its pins would
# downgrade the project's own dependencies.
CHECKOV_VENV := $(VENV)/tools/checkov
CHECKOV_VERSION := 3.3.30

venv: $(VENV)/.installed $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	@touch $@

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $@

# Four CLI runs in dependency order. Partitioned assets run as one range each (Dagster
# records every partition of every asset in a partition-range run, so the unpartitioned
# dbt models run on their own).
INCREMENTAL_MARTS := key:marts/fct_marketing_daily or key:marts/fct_marketing_geo_daily or key:marts/fct_orders_daily
# Incremental intermediate tables (daily-partitioned assets too), built with the marts.
INCREMENTAL_INTERMEDIATE := key:staging/int_campaign_spans or key:staging/int_ad_geo_spans or key:staging/int_orders or key:staging/int_klaviyo_message_daily
# Views the marts' relationship tests read, rebuilt beside them so those tests run too.
MART_TEST_PARENTS := key:staging/int_date_spine or key:staging/stg_reference__geo_regions or key:staging/stg_reference__experiment_registry
MATERIALIZE := $(BIN)/dagster asset materialize -m cfap_orchestration.definitions
GEO_READOUTS := key:causal/difference_in_differences or key:causal/synthetic_control

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(eval RANGE := $(shell $(BIN)/python -m cfap_orchestration.demo partition-range))
	$(MATERIALIZE) --select 'group:ingest' --partition-range '$(RANGE)'
	$(MATERIALIZE) --select '(group:reference or group:staging) and not ($(INCREMENTAL_INTERMEDIATE))'
	$(MATERIALIZE) --select '$(INCREMENTAL_MARTS) or $(INCREMENTAL_INTERMEDIATE) or $(MART_TEST_PARENTS)' --partition-range '$(RANGE)'
	$(MATERIALIZE) --select '(group:marts and not ($(INCREMENTAL_MARTS))) or $(MART_TEST_PARENTS)'
	# Measurement: one run per geo experiment (a dynamic partition each), then the rest.
	for experiment in $$($(BIN)/python -m cfap_orchestration.demo register-experiments); do \
		$(MATERIALIZE) --select '$(GEO_READOUTS)' --partition "$$experiment" || exit 1; \
	done
	$(MATERIALIZE) --select '(group:measure and not ($(GEO_READOUTS))) or group:report'
	$(BIN)/python -m cfap_orchestration.demo summary

test: venv
	$(BIN)/pytest

ui: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

type-check: venv
	$(BIN)/mypy

validate: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

# Needs the vulnerability advisory service, which this project's offline CI cannot reach.
audit: venv
	$(BIN)/pip-audit --progress-spinner off --skip-editable

bench: venv
	$(BIN)/python benchmarks/extraction_throughput.py

clean:
	rm -rf $(CFAP_HOME)
