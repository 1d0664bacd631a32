# growthlake — the two commands a newcomer needs:
#   make demo   set up, run the closed loop for four weeks (simulated product <-> the whole chain), write the report
#   make test   set up, lint (ruff) and type-check (mypy), run the whole test suite (unit, integration, definitions)
PY ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export GROWTHLAKE_ROOT ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_PORT ?= 3000
DEMO_ARRIVALS ?= 300
DEMO_DAYS ?= 28

.PHONY: install demo run dev test bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,celery]'
	touch $@

# dagster-dbt reads dbt's manifest when the definitions load: `growthlake prepare` parses the project
# offline into $(GROWTHLAKE_ROOT)/_dbt/manifest when it is missing or stale (a no-op otherwise).
install: $(VENV)/.installed
	$(BIN)/growthlake prepare

# A DAGSTER_HOME without a dagster.yaml gets growthlake's (SQLite, the event log pooled:
# orchestration/event_log.py); one that has its own (e.g. PostgreSQL, DEPLOY.md) is left alone.
$(DAGSTER_HOME)/dagster.yaml: | $(VENV)/.installed
	$(BIN)/python -m orchestration.event_log $(DAGSTER_HOME)

# The closed loop: each simulated day the product reads the flags document and the outbox, lands its
# events, and `growthlake run`'s path (the Dagster jobs) ingests them, builds features and decides.
demo: install $(DAGSTER_HOME)/dagster.yaml  ## four simulated weeks of the closed loop, then the board report (demo profile)
	GROWTHLAKE_PROFILE=demo $(BIN)/growthlake loops simulate --days $(DEMO_DAYS) --arrivals $(DEMO_ARRIVALS) \
		--seed 42 --approve --actor demo@growthlake
	GROWTHLAKE_PROFILE=demo $(BIN)/growthlake report

# The venv need not be on PATH: the code location runs the dbt installed beside its Python.
dev: install $(DAGSTER_HOME)/dagster.yaml  ## the Dagster UI on http://127.0.0.1:$(DAGSTER_PORT)
	GROWTHLAKE_PROFILE=$${GROWTHLAKE_PROFILE:-demo} $(BIN)/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT)

test: install
	$(BIN)/ruff check lake growth_loops simulation expectations orchestration tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: install  ## print every benchmark's figures (BENCHMARKS.md); BENCH_FLAGS=--with-10m adds the 10M-event chain
	$(BIN)/python benchmarks/bench_chain.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/bench_hourly.py
	$(BIN)/python benchmarks/bench_event_log.py
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_ingestion.py
	$(BIN)/python benchmarks/bench_pii.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_online_features.py --check
	$(BIN)/python benchmarks/bench_loops.py
	$(BIN)/python benchmarks/bench_gates.py
	$(BIN)/python benchmarks/bench_gates.py --lakes long

clean:
	rm -rf $(VENV) data .dagster_home
